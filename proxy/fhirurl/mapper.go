package fhirurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Mapper maps absolute URLs under a partner's FHIR base to the same
// resource under cqgate's public base for that organization. It is
// immutable and safe for concurrent use.
type Mapper struct {
	scheme    string // "http" or "https", lower case
	host      string // lower case, default port removed
	path      string // partner base path without trailing "/", may be ""
	public    string // public base without trailing "/"
	prefixLen int    // len(scheme + "://")
	minLen    int    // shortest string that can match
}

// NewMapper returns a Mapper from partnerBase (e.g.
// "https://fhir.partner.example/r4/tenant-guid") to publicBase (e.g.
// "https://cqgate.internal/fhir/2.16.840.1"). Both must be absolute http
// or https URLs without user info, query or fragment.
func NewMapper(partnerBase, publicBase string) (*Mapper, error) {
	p, err := parseBase("partner base", partnerBase)
	if err != nil {
		return nil, err
	}
	q, err := parseBase("public base", publicBase)
	if err != nil {
		return nil, err
	}
	m := &Mapper{
		scheme: p.Scheme,
		host:   p.Host,
		path:   p.Path,
		public: q.Scheme + "://" + q.Host + q.Path,
	}
	m.prefixLen = len(m.scheme) + len("://")
	m.minLen = m.prefixLen + len(m.host)
	return m, nil
}

// parseBase checks and normalizes a base URL: scheme and host in lower
// case, default port removed, no trailing "/".
func parseBase(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fhirurl: %s: %w", what, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, fmt.Errorf("fhirurl: %s %q is not an http or https URL", what, raw)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("fhirurl: %s %q has no host", what, raw)
	case u.User != nil:
		return nil, fmt.Errorf("fhirurl: %s %q carries user info", what, raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("fhirurl: %s %q has a query or fragment", what, raw)
	}
	host, ok := normalizeHost(scheme, u.Host)
	if !ok {
		return nil, fmt.Errorf("fhirurl: %s %q has an invalid port", what, raw)
	}
	path := u.EscapedPath()
	path = strings.TrimRight(path, "/")
	return &url.URL{Scheme: scheme, Host: host, Path: path}, nil
}

var errNoMatch = errors.New("no match")

// normalizeHost lower-cases host[:port] and drops the scheme's default
// port. ok is false when the port is not all digits.
func normalizeHost(scheme, hostport string) (string, bool) {
	hostport = strings.ToLower(hostport)
	host, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		host, port = hostport[:i], hostport[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	port = strings.TrimLeft(port, "0")
	switch {
	case port == "" && strings.HasSuffix(hostport, ":"):
		// "host:" means the default port.
	case port == "" && hostport != host:
		return "", false // "host:0"
	case port == "":
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	}
	if port == "" {
		return host, true
	}
	return host + ":" + port, true
}

// Map returns s under the public base if s is an absolute URL under the
// partner base: same scheme (any case), same host (any case) and port
// (the default port written or not), and a path that equals the base path
// or continues it after a "/"; the rest of the path, the query and the
// fragment are kept as they are. Anything else (other hosts, relative
// references, user info, a path that only shares a prefix such as
// "/r4/tenant-guid2") gives ("", false). Paths are compared as written:
// a percent-encoded spelling of the base path does not match.
func (m *Mapper) Map(s string) (string, bool) {
	rest, err := m.cut(s)
	if err != nil {
		return "", false
	}
	return m.public + rest, true
}

// Matches reports whether Map would map s.
func (m *Mapper) Matches(s string) bool {
	_, err := m.cut(s)
	return err == nil
}

// cut returns what follows the partner base in s.
func (m *Mapper) cut(s string) (string, error) {
	if len(s) < m.minLen || !strings.EqualFold(s[:len(m.scheme)], m.scheme) || s[len(m.scheme):m.prefixLen] != "://" {
		return "", errNoMatch
	}
	s = s[m.prefixLen:]
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	authority := s[:end]
	if strings.ContainsAny(authority, "@\\ ") {
		return "", errNoMatch
	}
	host, ok := normalizeHost(m.scheme, authority)
	if !ok || host != m.host {
		return "", errNoMatch
	}
	rest := s[end:]
	if !strings.HasPrefix(rest, m.path) {
		return "", errNoMatch
	}
	rest = rest[len(m.path):]
	if rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#' {
		return "", errNoMatch
	}
	return rest, nil
}

// MapHeader maps the value of a Location or Content-Location header: an
// absolute URL as Map does, and also an absolute-path reference
// ("/r4/tenant-guid/Patient/1/_history/2"), which the caller would
// otherwise resolve against cqgate's host. Relative references without a
// leading "/" ("Patient/1/_history/2") resolve against the request URL,
// which already names cqgate, and are left alone.
func (m *Mapper) MapHeader(v string) (string, bool) {
	if out, ok := m.Map(v); ok {
		return out, true
	}
	if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") {
		return "", false
	}
	rest, ok := strings.CutPrefix(v, m.path)
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#') {
		return "", false
	}
	return m.public + rest, true
}

// PartnerBase returns the normalized partner base.
func (m *Mapper) PartnerBase() string { return m.scheme + "://" + m.host + m.path }

// PublicBase returns the normalized public base.
func (m *Mapper) PublicBase() string { return m.public }
