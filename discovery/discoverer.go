package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cqgate/cqgate/internal/flightcache"
	"github.com/cqgate/cqgate/internal/upstream"
)

const (
	// DefaultTTL is how long a Discoverer caches a result when
	// Config.TTL is zero.
	DefaultTTL = time.Hour
	// DefaultMaxBodyBytes bounds a metadata response body when
	// Config.MaxBodyBytes is zero.
	DefaultMaxBodyBytes int64 = 4 << 20
	// DefaultTimeout is the request timeout of the *http.Client used when
	// Config.HTTPClient is nil.
	DefaultTimeout = 30 * time.Second
)

// Config configures a Discoverer.
type Config struct {
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each request.
	HTTPClient *http.Client
	// TTL is how long results are cached; 0 means DefaultTTL.
	TTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// MaxBodyBytes bounds the metadata response body; 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Result is a discovered token endpoint.
type Result struct {
	// TokenURL is the absolute http(s) token URL to use.
	TokenURL string
	// Source is the oauth-uris sub-extension TokenURL came from:
	// SourceCarequalityToken or SourceToken.
	Source string
	// URIs is everything the oauth-uris extension listed.
	URIs OAuthURIs
	// MetadataURL is the CapabilityStatement's URL.
	MetadataURL string
	// FetchedAt is when the CapabilityStatement was fetched.
	FetchedAt time.Time
}

// Error is a failed metadata request: a transport failure (StatusCode
// 0), an unexpected HTTP status, or a 2xx answer that cannot be used (too
// large, not a CapabilityStatement with oauth-uris, no absolute http(s)
// token URL).
type Error struct {
	// URL is the metadata URL requested.
	URL string
	// StatusCode is the HTTP status, 0 when no response was received.
	StatusCode int
	// Err is the cause: for transport failures the *url.Error from
	// net/http, so that timeouts remain detectable with
	// errors.Is(err, context.DeadlineExceeded) or a net.Error's Timeout
	// method; otherwise a description of what was wrong with the
	// response.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("discovery: GET ")
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

// Upstream reports that the failure lies with the FHIR server, not with
// the caller or the gateway.
func (e *Error) Upstream() bool { return true }

// Discoverer finds FHIR servers' token endpoints from their
// CapabilityStatements, caching results per FHIR base for a TTL.
// Concurrent lookups of one base share one request; failures are not
// cached. A Discoverer is safe for concurrent use.
type Discoverer struct {
	hc      *http.Client
	now     func() time.Time
	maxBody int64
	cache   *flightcache.Cache[Result] // normalized FHIR base -> Result
}

// New returns a Discoverer for cfg.
func New(cfg Config) *Discoverer {
	d := &Discoverer{hc: cfg.HTTPClient, now: cfg.Clock, maxBody: cfg.MaxBodyBytes}
	if d.hc == nil {
		d.hc = &http.Client{Timeout: DefaultTimeout}
	}
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.maxBody <= 0 {
		d.maxBody = DefaultMaxBodyBytes
	}
	d.cache = flightcache.New[Result](flightcache.Config{TTL: ttl, Clock: d.now})
	return d
}

// TokenEndpoint returns the token endpoint advertised by the FHIR server
// at fhirBase, from the CapabilityStatement at {fhirBase}/metadata. The
// carequality-token URL wins over the token URL. ctx bounds only this
// caller's wait: a request shared with other callers goes on when ctx is
// done.
func (d *Discoverer) TokenEndpoint(ctx context.Context, fhirBase string) (*Result, error) {
	key, metadataURL, err := metadataURL(fhirBase)
	if err != nil {
		return nil, err
	}
	r, _, err := d.cache.Get(ctx, key, func(fctx context.Context) (Result, error) {
		return d.fetch(fctx, metadataURL)
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return nil, fmt.Errorf("discovery: token endpoint of %s: %w", key, err)
		}
		return nil, err
	}
	return &r, nil
}

// Forget drops the cached result for fhirBase, so that the next
// TokenEndpoint fetches the CapabilityStatement again. A request already
// in flight is not cancelled, but later lookups do not join it.
func (d *Discoverer) Forget(fhirBase string) {
	key := normalizeBase(fhirBase)
	d.cache.Forget(key)
}

// fetch GETs and parses the CapabilityStatement at metadataURL.
func (d *Discoverer) fetch(ctx context.Context, metadataURL string) (Result, error) {
	// Cerner answers other media types with 406 Not Acceptable.
	header := http.Header{"Accept": {"application/fhir+json"}}
	resp, err := upstream.Get(ctx, d.hc, metadataURL, header, d.maxBody)
	switch {
	case resp == nil:
		return Result{}, &Error{URL: metadataURL, Err: err}
	case err != nil:
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: err}
	case !resp.OK():
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: upstream.DescribeStatus(resp.StatusCode, resp.Body)}
	case resp.Truncated:
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("response body exceeds %d bytes", d.maxBody)}
	}
	uris, err := parseCapabilityStatement(resp.Body)
	if err != nil {
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("parse CapabilityStatement: %w", err)}
	}
	tokenURL, source, ok := uris.TokenEndpoint()
	if !ok {
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: errors.New("oauth-uris lists neither carequality-token nor token")}
	}
	if !isHTTPURL(tokenURL) {
		return Result{}, &Error{URL: metadataURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("%s URL %s is not an absolute http(s) URL", source, quote(tokenURL))}
	}
	return Result{
		TokenURL:    tokenURL,
		Source:      source,
		URIs:        *uris,
		MetadataURL: metadataURL,
		FetchedAt:   d.now(),
	}, nil
}

// metadataURL validates a FHIR base URL and returns its cache key (the
// base without trailing slashes) and its metadata URL.
func metadataURL(fhirBase string) (key, metadata string, err error) {
	key = normalizeBase(fhirBase)
	u, err := url.Parse(key)
	switch {
	case err != nil || !isHTTPURL(key):
		return "", "", fmt.Errorf("discovery: FHIR base %s is not an absolute http(s) URL", quote(fhirBase))
	case u.User != nil:
		return "", "", errors.New("discovery: FHIR base must not contain user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(key, "#"):
		return "", "", fmt.Errorf("discovery: FHIR base %s must not have a query or fragment", quote(fhirBase))
	}
	return key, u.JoinPath("metadata").String(), nil
}

// normalizeBase trims surrounding space and trailing slashes, so that
// "https://h/r4/t/" and "https://h/r4/t" share a cache entry.
func normalizeBase(fhirBase string) string {
	return strings.TrimRight(strings.TrimSpace(fhirBase), "/")
}

// isHTTPURL reports whether s is an absolute http or https URL with a
// host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}
