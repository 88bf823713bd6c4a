package directory

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/cqgate/cqgate/internal/origin"
	"github.com/cqgate/cqgate/internal/upstream"
)

// A page cursor is base64url (unpadded) of a flavour prefix and what the
// next request needs:
//
//	r4:<path>?<query>    the R4 Bundle's next link, host and key removed
//	stu3:<query>         the STU3 search parameters with _start
//
// Decoding validates it as strictly as the answer it came from was, so a
// tampered cursor cannot point the client at another host or path, nor
// add the API key, _format or an oversized _count to the query.
const (
	r4CursorPrefix   = "r4:"
	stu3CursorPrefix = "stu3:"
)

// isKeyParam reports whether a query parameter name carries a directory
// API key in one flavour or another; such parameters are never put in a
// cursor nor accepted from one.
func isKeyParam(name string) bool {
	switch strings.ToLower(name) {
	case "apikey", "_apikey", "api_key", "api-key":
		return true
	}
	return false
}

// encodeR4Cursor turns the next link of the answer to reqURL into a
// cursor, or says why the link is not to be followed.
func encodeR4Cursor(base, reqURL *url.URL, next, key string) (string, error) {
	ref, err := url.Parse(strings.TrimSpace(next))
	if err != nil {
		return "", errors.New("the Bundle's next link is not a URL")
	}
	u := reqURL.ResolveReference(ref)
	if !origin.Same(base, u) || u.User != nil {
		return "", fmt.Errorf("the Bundle's next link leads to %s, not to the directory at %s; not following it", describeOrigin(u), describeOrigin(base))
	}
	query := u.RawQuery
	if vals, err := url.ParseQuery(query); err == nil {
		stripped := false
		for name := range vals {
			if isKeyParam(name) {
				delete(vals, name)
				stripped = true
			}
		}
		if stripped {
			query = vals.Encode()
		}
	}
	payload := r4CursorPrefix + u.EscapedPath()
	if query != "" {
		payload += "?" + query
	}
	if upstream.Scrub(payload, key) != payload {
		return "", errors.New("the Bundle's next link carries the API key; not following it")
	}
	if _, err := checkR4Ref(base, payload[len(r4CursorPrefix):]); err != nil {
		return "", fmt.Errorf("the Bundle's next link is not followed: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(payload)), nil
}

// decodeR4Cursor returns the URL an R4 cursor asks for, on base's scheme
// and host.
func decodeR4Cursor(base *url.URL, cursor string) (*url.URL, error) {
	payload, err := decodeCursor(cursor, r4CursorPrefix)
	if err != nil {
		return nil, err
	}
	u, err := checkR4Ref(base, payload)
	if err != nil {
		return nil, fmt.Errorf("%w: page cursor: %w", ErrInvalidQuery, err)
	}
	return u, nil
}

// decodeCursor undoes the base64url of a cursor and strips its flavour
// prefix.
func decodeCursor(cursor, prefix string) (string, error) {
	if len(cursor) > maxCursorLen {
		return "", fmt.Errorf("%w: page cursor is longer than %d characters", ErrInvalidQuery, maxCursorLen)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil {
		return "", fmt.Errorf("%w: page cursor is not one this gateway returned", ErrInvalidQuery)
	}
	payload, ok := strings.CutPrefix(string(raw), prefix)
	if !ok {
		return "", fmt.Errorf("%w: page cursor is not from this directory client", ErrInvalidQuery)
	}
	return payload, nil
}

// checkR4Ref validates a cursor's "<path>?<query>": printable ASCII
// without fragment, the base's search path or the base itself
// (where some servers page), and a query that parses, holds no key nor
// _format and asks for at most MaxPageSize. It returns the URL on base's
// origin.
func checkR4Ref(base *url.URL, ref string) (*url.URL, error) {
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; c <= ' ' || c >= 0x7f || c == '#' || c == '\\' {
			return nil, fmt.Errorf("holds the character %q", c)
		}
	}
	if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
		return nil, errors.New("not an absolute path")
	}
	u, err := url.Parse(ref)
	if err != nil {
		return nil, errors.New("not a URL path")
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return nil, errors.New("not a URL path")
	}
	if !allowedSearchPath(base, u.EscapedPath()) {
		return nil, fmt.Errorf("path %s is not the directory's Organization search", quoteInput(u.EscapedPath()))
	}
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("malformed query")
	}
	for name, vs := range vals {
		switch {
		case isKeyParam(name):
			return nil, fmt.Errorf("query sets %s", quoteInput(name))
		case strings.EqualFold(name, "_format"):
			return nil, errors.New("query sets _format")
		case name == "_count":
			for _, v := range vs {
				if n, err := strconv.Atoi(v); err != nil || n < 1 || n > MaxPageSize {
					return nil, fmt.Errorf("_count %s is not 1 to %d", quoteInput(v), MaxPageSize)
				}
			}
		}
	}
	return &url.URL{Scheme: base.Scheme, Host: base.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}, nil
}

// allowedSearchPath reports whether an escaped path is base's
// Organization search (also with a trailing slash or as _search) or base
// itself, where servers such as HAPI serve later pages.
func allowedSearchPath(base *url.URL, p string) bool {
	b := strings.TrimRight(base.EscapedPath(), "/")
	switch p {
	case b, b + "/", b + "/Organization", b + "/Organization/", b + "/Organization/_search":
		return true
	}
	return false
}

// describeOrigin names a URL's scheme and host for an error, quoting
// untrusted input.
func describeOrigin(u *url.URL) string {
	if u.Host == "" {
		return quoteInput(u.Scheme + ":")
	}
	host := u.Hostname()
	if p := u.Port(); p != "" {
		host = net.JoinHostPort(host, p)
	}
	return quoteInput(u.Scheme + "://" + host)
}

// isSTU3CursorParam reports whether name is a parameter an STU3 cursor
// holds.
func isSTU3CursorParam(name string) bool {
	switch name {
	case "name", "_id", "active", "_count", "_start":
		return true
	}
	return false
}

// encodeSTU3Cursor returns the cursor for s.
func encodeSTU3Cursor(s search) string {
	v := s.values()
	v.Set("_start", strconv.Itoa(s.start))
	return base64.RawURLEncoding.EncodeToString([]byte(stu3CursorPrefix + v.Encode()))
}

// decodeSTU3Cursor returns the search an STU3 cursor asks for, validated
// as a Query is.
func decodeSTU3Cursor(cursor string) (search, error) {
	payload, err := decodeCursor(cursor, stu3CursorPrefix)
	if err != nil {
		return search{}, err
	}
	bad := func(format string, args ...any) (search, error) {
		return search{}, fmt.Errorf("%w: page cursor: "+format, append([]any{ErrInvalidQuery}, args...)...)
	}
	vals, err := url.ParseQuery(payload)
	if err != nil {
		return bad("malformed")
	}
	for name, vs := range vals {
		if !isSTU3CursorParam(name) {
			return bad("unexpected parameter %s", quoteInput(name))
		}
		if len(vs) != 1 {
			return bad("parameter %s repeated", name)
		}
	}
	q := Query{Name: vals.Get("name"), ID: vals.Get("_id")}
	if a, ok := vals["active"]; ok {
		if a[0] != "true" && a[0] != "false" {
			return bad("active %s is not true or false", quoteInput(a[0]))
		}
		active := a[0] == "true"
		q.Active = &active
	}
	count, err := strconv.Atoi(vals.Get("_count"))
	if err != nil || count < 1 || count > MaxPageSize {
		return bad("_count %s is not 1 to %d", quoteInput(vals.Get("_count")), MaxPageSize)
	}
	q.Count = count
	start, err := strconv.Atoi(vals.Get("_start"))
	if err != nil || start < 1 || start > maxSTU3Start {
		return bad("_start %s is not 1 to %d", quoteInput(vals.Get("_start")), maxSTU3Start)
	}
	if q.Name != strings.TrimSpace(q.Name) {
		return bad("name is not trimmed")
	}
	s, err := q.check()
	if err != nil {
		return search{}, fmt.Errorf("%w: page cursor: %w", ErrInvalidQuery, err)
	}
	if q.ID != "" && s.id != q.ID {
		return bad("_id is not a bare OID")
	}
	s.start = start
	return s, nil
}
