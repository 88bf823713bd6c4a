package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cqgate/cqgate/internal/upstream"
)

const (
	// DefaultMaxBodyBytes bounds a directory response body when a client's
	// MaxBodyBytes is zero.
	DefaultMaxBodyBytes int64 = 4 << 20
	// DefaultTimeout is the request timeout of the *http.Client used when
	// a client's HTTPClient is nil.
	DefaultTimeout = 30 * time.Second

	// redacted replaces the API key in URLs put into errors.
	redacted = upstream.Redacted
)

// Ways of passing the API key to the R4 directory (R4Client.APIKeyIn).
const (
	APIKeyInHeader = "header" // Authorization: api-key <key>
	APIKeyInQuery  = "query"  // ?_apiKey=<key>
)

// Error is a failed directory request: a transport failure (StatusCode
// 0), an unexpected HTTP status, or a 2xx answer that cannot be used (too
// large, not a FHIR Organization, another organization's). Not-found
// answers (404, 410) are not Errors but wrap ErrNotFound. Neither its
// message nor its URL ever contains the API key.
type Error struct {
	// URL is the requested URL with the API key replaced by "REDACTED".
	URL string
	// StatusCode is the HTTP status, 0 when no response was received.
	StatusCode int
	// Err is the cause: for transport failures the *url.Error from
	// net/http (its URL redacted too), so that timeouts remain
	// detectable with errors.Is(err, context.DeadlineExceeded) or a
	// net.Error's Timeout method; otherwise a description of what was
	// wrong with the response.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("directory: GET ")
	b.WriteString(e.URL)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Err != nil {
		cause := e.Err
		var ue *url.Error
		if errors.As(cause, &ue) && ue.Err != nil {
			cause = ue.Err // its own message repeats method and URL
		}
		b.WriteString(": ")
		b.WriteString(cause.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Upstream reports that the failure lies with the directory, not with
// the caller or the gateway.
func (e *Error) Upstream() bool { return true }

// R4Client reads organizations from the Carequality R4 directory, e.g.
// https://directory.prod.carequality.org/fhir, in FHIR R4 JSON.
type R4Client struct {
	// BaseURL is the directory's FHIR base URL.
	BaseURL string
	// APIKey is the directory API key. It is a secret: it never appears
	// in errors.
	APIKey string
	// APIKeyIn says how the key is sent: "header" (the default) as
	// "Authorization: api-key <key>", or "query" as _apiKey=<key>.
	APIKeyIn string
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each request.
	HTTPClient *http.Client
	// MaxBodyBytes bounds the response body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

var _ Fetcher = (*R4Client)(nil)

// Organization GETs {BaseURL}/Organization/{oid} with Accept
// application/fhir+json.
func (c *R4Client) Organization(ctx context.Context, oid string) (*Organization, error) {
	oid, err := ParseOID(oid)
	if err != nil {
		return nil, err
	}
	u, err := organizationURL(c.BaseURL, oid)
	if err != nil {
		return nil, err
	}
	req := request{
		url:         u,
		redactedURL: u.String(),
		accept:      "application/fhir+json",
		apiKey:      c.APIKey,
	}
	switch c.APIKeyIn {
	case "", APIKeyInHeader:
		if c.APIKey != "" {
			req.header = http.Header{"Authorization": {"api-key " + c.APIKey}}
		}
	case APIKeyInQuery:
		if c.APIKey != "" {
			req.url, req.redactedURL = withKey(u, "_apiKey", c.APIKey)
		}
	default:
		return nil, fmt.Errorf("directory: R4Client.APIKeyIn is %s, want %q or %q", quoteInput(c.APIKeyIn), APIKeyInHeader, APIKeyInQuery)
	}
	return fetch(ctx, c.HTTPClient, c.MaxBodyBytes, req, oid, "R4 organization", parseR4)
}

// STU3Client reads organizations from the legacy Carequality STU3
// directory, e.g. https://prod-dir-ceq-01.sequoiaproject.org/fhir-stu3/1.0.1,
// in FHIR STU3 XML (its JSON output is not standard FHIR JSON).
type STU3Client struct {
	// BaseURL is the directory's FHIR base URL.
	BaseURL string
	// APIKey is the directory API key, sent as the apikey query
	// parameter. It is a secret: it never appears in errors.
	APIKey string
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each request.
	HTTPClient *http.Client
	// MaxBodyBytes bounds the response body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

var _ Fetcher = (*STU3Client)(nil)

// Organization GETs {BaseURL}/Organization/{oid}?apikey=<key>&_format=xml
// with Accept application/fhir+xml.
func (c *STU3Client) Organization(ctx context.Context, oid string) (*Organization, error) {
	oid, err := ParseOID(oid)
	if err != nil {
		return nil, err
	}
	u, err := organizationURL(c.BaseURL, oid)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("_format", "xml")
	u.RawQuery = q.Encode()
	req := request{url: u, redactedURL: u.String(), accept: "application/fhir+xml", apiKey: c.APIKey}
	if c.APIKey != "" {
		req.url, req.redactedURL = withKey(u, "apikey", c.APIKey)
	}
	return fetch(ctx, c.HTTPClient, c.MaxBodyBytes, req, oid, "STU3 organization XML", parseSTU3XML)
}

// organizationURL returns {base}/Organization/{oid}.
func organizationURL(base, oid string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The base URL is configuration, not a secret, but it could
		// carry credentials in its userinfo: do not quote it.
		return nil, errors.New("directory: BaseURL must be an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("directory: BaseURL must not contain user info")
	}
	return u.JoinPath("Organization", oid), nil
}

// withKey returns u with the query parameter name set to key, and the
// same URL's string form with the key redacted.
func withKey(u *url.URL, name, key string) (*url.URL, string) {
	withKey, withoutKey := *u, *u
	q := u.Query()
	q.Set(name, key)
	withKey.RawQuery = q.Encode()
	q.Set(name, redacted)
	withoutKey.RawQuery = q.Encode()
	return &withKey, withoutKey.String()
}

// request describes one directory GET.
type request struct {
	url         *url.URL
	redactedURL string // url with the API key replaced; safe for errors
	accept      string
	header      http.Header
	apiKey      string // to scrub from anything the server echoes back
}

// fetch performs req and parses a 2xx body with parse, checking that the
// organization returned is the one asked for.
func fetch(ctx context.Context, hc *http.Client, maxBody int64, req request, oid, what string, parse func([]byte) (*Organization, error)) (*Organization, error) {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	header := req.header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Accept", req.accept)

	resp, err := upstream.Get(ctx, hc, req.url.String(), header, maxBody)
	switch {
	case resp == nil:
		return nil, &Error{URL: req.redactedURL, Err: redactURLError(err, req.redactedURL, req.apiKey)}
	case err != nil:
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: scrub(err, req.apiKey)}
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%w: %s (GET %s: HTTP %d)", ErrNotFound, oid, req.redactedURL, resp.StatusCode)
	case !resp.OK():
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: upstream.DescribeStatus(resp.StatusCode, resp.Body, req.apiKey)}
	case resp.Truncated:
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("response body exceeds %d bytes", maxBody)}
	}
	org, err := parse(resp.Body)
	if err != nil {
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("parse %s: %w", what, scrub(err, req.apiKey))}
	}
	if org.OID != oid {
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("directory returned organization %s, want %s", org.OID, oid)}
	}
	return org, nil
}

// redactURLError replaces the URL in a *url.Error from net/http (which
// holds the full request URL, API key included) with the redacted one,
// keeping its cause so timeouts stay detectable.
func redactURLError(err error, redactedURL, key string) error {
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: redactedURL, Err: scrub(ue.Err, key)}
	}
	return scrub(err, key)
}

// scrub returns err unchanged unless its message contains key; then it
// returns a plain error with the key redacted, dropping err's chain (whose
// messages hold the key). Causes worth detecting, such as timeouts, never
// contain the key and keep their chain.
func scrub(err error, key string) error {
	if err == nil || key == "" {
		return err
	}
	msg := err.Error()
	if clean := upstream.Scrub(msg, key); clean != msg {
		return errors.New(clean)
	}
	return err
}
