package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
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

// RetryPolicy says how a client retries a failed directory request:
// transport failures and the statuses 500, 502, 503 and 504 (and a 503 or
// 429 whose Retry-After is at most MaxRetryAfter) are retried after a
// capped exponential backoff with full jitter; a 403 (the key is not
// allowed), a 404 and every other 4xx never are. The caller's context
// deadline always wins. The zero value means 3 attempts, 200ms initial
// backoff, 2s maximum and Retry-After honoured up to 5s.
type RetryPolicy struct {
	// Attempts is the total number of tries, the first included: 0 means
	// 3; 1 or a negative number means no retries.
	Attempts int
	// Initial is the backoff before the first retry's jitter; 0 means
	// 200ms.
	Initial time.Duration
	// Max caps the backoff; 0 means 2s.
	Max time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; an answer asking
	// for longer is not retried. 0 means 5s.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx is done (then returning ctx.Err()); nil
	// means a timer. Tests inject one that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p RetryPolicy) upstream() upstream.Retry {
	return upstream.Retry{Attempts: p.Attempts, Initial: p.Initial, Max: p.Max, MaxRetryAfter: p.MaxRetryAfter, Sleep: p.Sleep}
}

// APIKeySource supplies the directory API key for each request, e.g. from
// Vault; it should cache the key itself. Its errors must not contain the
// key.
type APIKeySource interface {
	APIKey(ctx context.Context) (string, error)
}

// APIKeyFunc adapts a function to APIKeySource.
type APIKeyFunc func(ctx context.Context) (string, error)

// APIKey calls f.
func (f APIKeyFunc) APIKey(ctx context.Context) (string, error) { return f(ctx) }

var _ APIKeySource = APIKeyFunc(nil)

// APIKeyError is returned when a client's APIKeySource fails or returns
// an empty key. The failure lies with the gateway's secret store, not with
// the caller.
type APIKeyError struct {
	Err error
}

func (e *APIKeyError) Error() string {
	if e.Err == nil {
		return "directory: getting the directory API key failed"
	}
	return "directory: getting the directory API key: " + e.Err.Error()
}

func (e *APIKeyError) Unwrap() error { return e.Err }

// Upstream reports that the failure is not the caller's.
func (e *APIKeyError) Upstream() bool { return true }

// apiKey returns the key to send: key from src when src is set, else
// static.
func apiKey(ctx context.Context, static string, src APIKeySource) (string, error) {
	if src == nil {
		return static, nil
	}
	key, err := src.APIKey(ctx)
	switch {
	case err != nil:
		return "", &APIKeyError{Err: scrub(scrub(err, key), static)}
	case key == "":
		return "", &APIKeyError{Err: errors.New("the key source returned an empty key")}
	}
	return key, nil
}

// keyPlacement says how a request carries the API key: in the query
// parameter param, or (param "") in an "Authorization: api-key" header.
type keyPlacement struct {
	key   string
	param string
}

// request returns the GET of u with the key placed.
func (k keyPlacement) request(u *url.URL, accept string) request {
	req := request{url: u, redactedURL: u.String(), accept: accept, apiKey: k.key}
	switch {
	case k.key == "":
	case k.param != "":
		req.url, req.redactedURL = withKey(u, k.param, k.key)
	default:
		req.header = http.Header{"Authorization": {"api-key " + k.key}}
	}
	return req
}

// R4Client reads organizations from the Carequality R4 directory, e.g.
// https://directory.prod.carequality.org/fhir, in FHIR R4 JSON.
type R4Client struct {
	// BaseURL is the directory's FHIR base URL.
	BaseURL string
	// APIKey is the directory API key. It is a secret: it never appears
	// in errors.
	APIKey string
	// Key, when set, supplies the API key for each request instead of
	// APIKey (e.g. from Vault). Its errors are *APIKeyError.
	Key APIKeySource
	// APIKeyIn says how the key is sent: "header" (the default) as
	// "Authorization: api-key <key>", or "query" as _apiKey=<key>.
	APIKeyIn string
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each attempt.
	HTTPClient *http.Client
	// MaxBodyBytes bounds the response body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Retry says how failed requests are retried; the zero value retries
	// up to 3 attempts.
	Retry RetryPolicy
}

var (
	_ Fetcher  = (*R4Client)(nil)
	_ Searcher = (*R4Client)(nil)
)

// Organization GETs {BaseURL}/Organization/{oid} with Accept
// application/fhir+json. A malformed OID is an error wrapping
// ErrInvalidOID, returned before any request (and before the API key is
// asked for); a 404 or 410 wraps ErrNotFound; other failures are *Error
// (or *APIKeyError).
func (c *R4Client) Organization(ctx context.Context, oid string) (*Organization, error) {
	oid, err := ParseOID(oid)
	if err != nil {
		return nil, err
	}
	base, err := parseBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	k, err := c.placement(ctx)
	if err != nil {
		return nil, err
	}
	req := k.request(base.JoinPath("Organization", oid), acceptJSON)
	return fetchOrganization(ctx, c.transport(), req, oid, "R4 organization", parseR4)
}

// placement checks APIKeyIn and gets the key.
func (c *R4Client) placement(ctx context.Context) (keyPlacement, error) {
	var param string
	switch c.APIKeyIn {
	case "", APIKeyInHeader:
	case APIKeyInQuery:
		param = "_apiKey"
	default:
		return keyPlacement{}, fmt.Errorf("directory: R4Client.APIKeyIn is %s, want %q or %q", quoteInput(c.APIKeyIn), APIKeyInHeader, APIKeyInQuery)
	}
	key, err := apiKey(ctx, c.APIKey, c.Key)
	if err != nil {
		return keyPlacement{}, err
	}
	return keyPlacement{key: key, param: param}, nil
}

func (c *R4Client) transport() transport {
	return newTransport(c.HTTPClient, c.MaxBodyBytes, c.Retry)
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
	// Key, when set, supplies the API key for each request instead of
	// APIKey (e.g. from Vault). Its errors are *APIKeyError.
	Key APIKeySource
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each attempt.
	HTTPClient *http.Client
	// MaxBodyBytes bounds the response body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Retry says how failed requests are retried; the zero value retries
	// up to 3 attempts.
	Retry RetryPolicy
}

var (
	_ Fetcher  = (*STU3Client)(nil)
	_ Searcher = (*STU3Client)(nil)
)

// Organization GETs {BaseURL}/Organization/{oid}?apikey=<key>&_format=xml
// with Accept application/fhir+xml. Errors are as R4Client.Organization's.
func (c *STU3Client) Organization(ctx context.Context, oid string) (*Organization, error) {
	oid, err := ParseOID(oid)
	if err != nil {
		return nil, err
	}
	base, err := parseBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	k, err := c.placement(ctx)
	if err != nil {
		return nil, err
	}
	u := base.JoinPath("Organization", oid)
	u.RawQuery = url.Values{"_format": {"xml"}}.Encode()
	return fetchOrganization(ctx, c.transport(), k.request(u, acceptXML), oid, "STU3 organization XML", parseSTU3XML)
}

func (c *STU3Client) placement(ctx context.Context) (keyPlacement, error) {
	key, err := apiKey(ctx, c.APIKey, c.Key)
	if err != nil {
		return keyPlacement{}, err
	}
	return keyPlacement{key: key, param: "apikey"}, nil
}

func (c *STU3Client) transport() transport {
	return newTransport(c.HTTPClient, c.MaxBodyBytes, c.Retry)
}

// String describes the client without its API key.
func (c R4Client) String() string {
	return fmt.Sprintf("directory.R4Client{BaseURL: %s, APIKey: %s, APIKeyIn: %q, Key: %s}", describeBase(c.BaseURL), describeKey(c.APIKey), c.APIKeyIn, describeSource(c.Key))
}

// GoString is String, so that %#v does not print the API key either.
func (c R4Client) GoString() string { return c.String() }

// String describes the client without its API key.
func (c STU3Client) String() string {
	return fmt.Sprintf("directory.STU3Client{BaseURL: %s, APIKey: %s, Key: %s}", describeBase(c.BaseURL), describeKey(c.APIKey), describeSource(c.Key))
}

// GoString is String, so that %#v does not print the API key either.
func (c STU3Client) GoString() string { return c.String() }

// describeBase quotes a base URL with any password redacted.
func describeBase(base string) string {
	if u, err := url.Parse(base); err == nil {
		return strconv.Quote(u.Redacted())
	}
	return "(unparsable)"
}

func describeKey(key string) string {
	if key == "" {
		return `""`
	}
	return redacted
}

func describeSource(src APIKeySource) string {
	if src == nil {
		return "nil"
	}
	return fmt.Sprintf("%T", src)
}

// Accept headers of the two flavours.
const (
	acceptJSON = "application/fhir+json"
	acceptXML  = "application/fhir+xml"
)

// parseBaseURL checks and parses a client's BaseURL.
func parseBaseURL(base string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The base URL is configuration, not a secret, but it could
		// carry credentials in its userinfo: do not quote it.
		return nil, errors.New("directory: BaseURL must be an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("directory: BaseURL must not contain user info")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("directory: BaseURL must not have a query or fragment")
	}
	return u, nil
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

// transport is how a client sends its GETs.
type transport struct {
	hc      *http.Client
	maxBody int64
	retry   upstream.Retry
}

func newTransport(hc *http.Client, maxBody int64, retry RetryPolicy) transport {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	return transport{hc: hc, maxBody: maxBody, retry: retry.upstream()}
}

// get performs req with retries. It returns the answer whatever its
// status, or an *Error when none (or only part of one) arrived.
func (t transport) get(ctx context.Context, req request) (*upstream.Response, error) {
	header := req.header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Accept", req.accept)

	resp, err := t.retry.Get(ctx, t.hc, req.url.String(), header, t.maxBody)
	switch {
	case resp == nil:
		return nil, &Error{URL: req.redactedURL, Err: redactURLError(err, req.redactedURL, req.apiKey)}
	case err != nil:
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: scrub(err, req.apiKey)}
	}
	return resp, nil
}

// usable returns an *Error unless resp is a complete 2xx answer.
func (t transport) usable(req request, resp *upstream.Response) error {
	switch {
	case !resp.OK():
		return &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: upstream.DescribeStatus(resp.StatusCode, resp.Body, req.apiKey)}
	case resp.Truncated:
		return &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("response body exceeds %d bytes", t.maxBody)}
	}
	return nil
}

// fetchOrganization performs req and parses a 2xx body with parse,
// checking that the organization returned is the one asked for.
func fetchOrganization(ctx context.Context, t transport, req request, oid, what string, parse func([]byte) (*Organization, error)) (*Organization, error) {
	resp, err := t.get(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return nil, fmt.Errorf("%w: %s (GET %s: HTTP %d)", ErrNotFound, oid, req.redactedURL, resp.StatusCode)
	}
	if err := t.usable(req, resp); err != nil {
		return nil, err
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
