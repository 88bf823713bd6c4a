package discovery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/cache"
	"github.com/cqgate/cqgate/internal/retry"
)

const (
	// DefaultTTL is how long a Discoverer caches a result when
	// Config.TTL is zero.
	DefaultTTL = time.Hour
	// DefaultMaxBodyBytes bounds a document's response body when
	// Config.MaxBodyBytes is zero.
	DefaultMaxBodyBytes int64 = 4 << 20
	// DefaultTimeout is the request timeout of the *http.Client used when
	// Config.HTTPClient is nil.
	DefaultTimeout = 30 * time.Second
	// defaultDiscoveryTimeout bounds one whole discovery when the HTTP
	// client has no timeout of its own.
	defaultDiscoveryTimeout = 2 * time.Minute
	// revocationFetches is how many revocation fetches running to their
	// timeout one discovery allows for beyond its documents: the OCSP
	// responder and the CRL server of the leaf and of its intermediate.
	// A check still running at the deadline leaves the statuses it has
	// not found unknown (revocation.Checker.Check).
	revocationFetches = 4
)

// Config configures a Discoverer.
type Config struct {
	// HTTPClient makes the requests; nil means a client with
	// DefaultTimeout. Its Timeout bounds each request.
	HTTPClient *http.Client
	// TTL is how long results and documents are cached; 0 means
	// DefaultTTL.
	TTL time.Duration
	// RefreshAhead is the window before a result expires in which a
	// lookup starts one background refresh while callers keep getting
	// the cached result. 0 means TTL/10; negative disables refresh-ahead.
	// A value not below TTL is taken as TTL/2.
	RefreshAhead time.Duration
	// MaxStale is how long past its expiry a result is still served when
	// refreshing it fails (stale-if-error). 0 means TTL; negative
	// disables serving stale results.
	MaxStale time.Duration
	// Order is the source order of requests that name none (and of
	// TokenEndpoint); nil means DefaultOrder(). With an invalid order
	// such requests fail; validate configuration with ParseOrder.
	Order []Source
	// TrustAnchors are the root certificates UDAP signed_metadata must
	// chain to (intermediates come from its x5c header). With none, the
	// udap source always fails with ErrNoTrustAnchors.
	TrustAnchors *x509.CertPool
	// Communities are the configured UDAP trust communities by name. A
	// request names its community (Request.Community); one that names
	// none uses DefaultCommunity, which is TrustAnchors (checked under
	// the soft revocation policy) unless Communities has an entry of that
	// name.
	Communities map[string]Community
	// Revocation, when set, completes signed_metadata chains through AIA
	// and checks them for revocation under the community's policy; nil
	// checks the chain only. When it has a FetchTimeout method
	// (*revocation.Checker's is udap.revocation.timeout), one discovery
	// gets four of those (revocationFetches) on top of the time its
	// documents may take.
	Revocation ChainChecker
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// MaxBodyBytes bounds each document's response body; 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives background refresh failures; nil discards them.
	Logger logrus.FieldLogger
}

// Request asks Discover for a FHIR server's token URL.
type Request struct {
	// FHIRBase is the FHIR server's base URL (trailing slashes ignored).
	FHIRBase string
	// Order lists the sources to try, most preferred first; empty means
	// the Discoverer's Config.Order. Unknown or repeated sources are an
	// error.
	Order []Source
	// CernerOverride sends "Cerner-Override-OAuth-URIs: on" with the
	// /metadata request, so that a Cerner server lists its Carequality
	// URLs as the plain token and register; the plain token then counts
	// as the carequality-token source. Results with and without it are
	// cached apart.
	CernerOverride bool
	// Community names the organization's trust community (a key of
	// Config.Communities); empty means DefaultCommunity. Its URI is sent
	// as ?community= on .well-known/udap and its anchors verify
	// signed_metadata; metadata signed under another community is a
	// *TrustError.
	Community string
}

// Result is a discovered token endpoint, with how it was found.
type Result struct {
	// TokenURL is the absolute http(s) token URL to use.
	TokenURL string `json:"token_url"`
	// Source is the source TokenURL came from.
	Source Source `json:"source"`
	// Attempts lists every source tried, in order; the last one is the
	// one used.
	Attempts []Attempt `json:"attempts"`
	// SigningAlgorithms are the client-assertion signing algorithms the
	// server advertises (token_endpoint_auth_signing_alg_values_supported)
	// in the source used, or else in another source read during this
	// discovery. Empty when none was advertised.
	SigningAlgorithms []string `json:"signing_algorithms,omitempty"`
	// AuthMethods are the advertised token_endpoint_auth_methods_supported,
	// found as SigningAlgorithms are.
	AuthMethods []string `json:"auth_methods,omitempty"`
	// ScopesSupported and Capabilities are the scopes_supported and the
	// SMART capabilities the server advertises (the source used, else
	// another one read), so that scopes are asked for in its syntax.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	Capabilities    []string `json:"capabilities,omitempty"`
	// RegistrationEndpoint is the dynamic client registration URL that
	// goes with TokenURL, when the source used names one.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// RegistrationSigningAlgorithms are the algorithms the registration
	// endpoint accepts for software statements
	// (registration_endpoint_jwt_signing_alg_values_supported, UDAP
	// metadata), when the source used names them; empty when it does
	// not (SigningAlgorithms are then the closest thing known).
	RegistrationSigningAlgorithms []string `json:"registration_signing_algorithms,omitempty"`
	// UDAP says the server's UDAP metadata was read and verified during
	// this discovery. It is false when the udap source was not tried.
	UDAP bool `json:"udap"`
	// Community is the trust community the udap source was checked
	// under, when it was tried.
	Community string `json:"community,omitempty"`
	// MetadataURL is the CapabilityStatement's URL, when it was read.
	MetadataURL string `json:"metadata_url,omitempty"`
	// FetchedAt is when the oldest document this result rests on was
	// fetched.
	FetchedAt time.Time `json:"fetched_at"`
	// Expires is when the result must be discovered again: FetchedAt
	// plus the TTL, or earlier when UDAP signed_metadata expires first.
	Expires time.Time `json:"expires"`
	// Stale says the result expired and refreshing it failed; it is
	// served until Config.MaxStale past Expires. StaleReason says why
	// the refresh failed.
	Stale       bool   `json:"stale,omitempty"`
	StaleReason string `json:"stale_reason,omitempty"`
}

// Attempt is what one source said about the token URL.
type Attempt struct {
	// Source is the source tried.
	Source Source `json:"source"`
	// URL is the document read for it.
	URL string `json:"url"`
	// Outcome is "used", "no token URL", "not supported (404)" (or
	// another status meaning the same) or "failed: <why>".
	Outcome string `json:"outcome"`
	// Detail explains "no token URL", e.g. "oauth-uris lists no
	// carequality-token".
	Detail string `json:"detail,omitempty"`
	// TokenURL is the token URL the source offered, if any (also when it
	// was not usable).
	TokenURL string `json:"token_url,omitempty"`
	// FetchedAt is when the document was fetched (zero when it could not
	// be).
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	// Err is the failure for a "failed" outcome.
	Err error `json:"-"`
}

// Attempt outcomes other than "failed: ..." and "not supported (...)".
const (
	OutcomeUsed       = "used"
	OutcomeNoTokenURL = "no token URL"
)

// String describes the attempt on one line, e.g.
// "udap (GET https://fhir.example/r4/.well-known/udap): not supported (404)".
func (a Attempt) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (GET %s): %s", a.Source, a.URL, a.Outcome)
	if a.Detail != "" {
		b.WriteString(": ")
		b.WriteString(a.Detail)
	}
	if a.Outcome == OutcomeUsed && a.TokenURL != "" {
		b.WriteString(" ")
		b.WriteString(a.TokenURL)
	}
	return b.String()
}

// Discoverer finds FHIR servers' token endpoints from what they advertise
// about themselves, caching results and documents. A Discoverer is safe
// for concurrent use.
type Discoverer struct {
	hc           *http.Client
	now          func() time.Time
	maxBody      int64
	ttl          time.Duration
	refreshAhead time.Duration
	maxStale     time.Duration
	order        []Source
	orderErr     error // what is wrong with order
	communities  map[string]Community
	checker      ChainChecker
	log          logrus.FieldLogger
	fetchTimeout time.Duration
	refreshRetry retry.Policy            // paces refreshes after a failed one
	results      *cache.Cache[*entry]    // result key -> result and refresh state
	docs         *cache.Cache[*document] // document key -> document
	// afterRefresh, when set (by tests, before first use), is called
	// when a background refresh ends.
	afterRefresh func(key string, err error)
	variants     variants
}

// variants numbers the distinct (order, override, community) parts of
// result keys, so that a key is the FHIR base and a short number rather
// than the base and the spelled-out order (64 bytes less per cached
// result). Orders and communities come from configuration, so there are
// few; past maxVariants the parts are spelled out in the key.
type variants struct {
	mu sync.Mutex
	m  map[string]string
}

const maxVariants = 256

// code returns the short code of suffix (not kept: a known one costs
// no allocation).
func (v *variants) code(suffix []byte) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.m[string(suffix)]; ok {
		return c
	}
	if len(v.m) >= maxVariants {
		return string(suffix)
	}
	if v.m == nil {
		v.m = make(map[string]string)
	}
	// "#n" never starts a spelled-out suffix, which starts with a source
	// name or a NUL.
	c := "#" + strconv.Itoa(len(v.m))
	v.m[string(suffix)] = c
	return c
}

// New returns a Discoverer for cfg.
func New(cfg Config) *Discoverer {
	d := &Discoverer{
		hc:           cfg.HTTPClient,
		now:          cfg.Clock,
		maxBody:      cfg.MaxBodyBytes,
		ttl:          cfg.TTL,
		refreshAhead: cfg.RefreshAhead,
		maxStale:     cfg.MaxStale,
		order:        slices.Clone(cfg.Order),
		communities:  communities(cfg),
		checker:      cfg.Revocation,
		log:          cfg.Logger,
	}
	if d.hc == nil {
		d.hc = &http.Client{Timeout: DefaultTimeout}
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.maxBody <= 0 {
		d.maxBody = DefaultMaxBodyBytes
	}
	if d.ttl <= 0 {
		d.ttl = DefaultTTL
	}
	switch {
	case d.refreshAhead == 0:
		d.refreshAhead = d.ttl / 10
	case d.refreshAhead < 0:
		d.refreshAhead = 0
	case d.refreshAhead >= d.ttl:
		d.refreshAhead = d.ttl / 2
	}
	switch {
	case d.maxStale == 0:
		d.maxStale = d.ttl
	case d.maxStale < 0:
		d.maxStale = 0
	}
	if len(d.order) == 0 {
		d.order = DefaultOrder()
	}
	if err := checkOrder(d.order); err != nil {
		d.orderErr = fmt.Errorf("%w (Config.Order)", err)
	}
	if d.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		d.log = l
	}
	d.fetchTimeout = defaultDiscoveryTimeout
	if t := d.hc.Timeout; t > 0 {
		// Three documents at most, each bounded by the client.
		d.fetchTimeout = 3*t + time.Second
	}
	d.fetchTimeout += revocationAllowance(d.checker)
	// After a failed refresh, retry with capped exponential backoff.
	window := max(d.refreshAhead, d.ttl/10)
	d.refreshRetry = retry.Policy{
		Initial:    min(max(window/10, time.Second), 30*time.Second),
		Max:        min(max(window, 5*time.Second), 5*time.Minute),
		Multiplier: 1.5,
		Jitter:     retry.Spread,
	}
	// A result is judged fresh or servable by its own Expires
	// (results.go); the cache holds it for MaxStale past the TTL.
	// Their keys are built for them (request.key, docKey), never slices
	// of a caller's input: kept without a copy.
	d.results = cache.New[*entry](cache.Config{TTL: d.ttl, Keep: d.maxStale, Clock: d.now, FetchTimeout: d.fetchTimeout, OwnKeys: true},
		cache.WithDropped(droppedEntry))
	d.docs = cache.New[*document](cache.Config{TTL: d.ttl, Clock: d.now, FetchTimeout: d.fetchTimeout, OwnKeys: true})
	return d
}

// revocationAllowance is the time one discovery allows for checking a
// signed_metadata chain for revocation: revocationFetches of c's fetch
// timeout, when c tells it; none otherwise.
func revocationAllowance(c ChainChecker) time.Duration {
	f, ok := c.(interface{ FetchTimeout() time.Duration })
	if !ok {
		return 0
	}
	return revocationFetches * max(f.FetchTimeout(), 0)
}

// TokenEndpoint is Discover with the Discoverer's default order and no
// Cerner override.
func (d *Discoverer) TokenEndpoint(ctx context.Context, fhirBase string) (*Result, error) {
	return d.Discover(ctx, Request{FHIRBase: fhirBase})
}

// request is a validated Request.
type request struct {
	base      string   // without trailing slashes
	u         *url.URL // base, parsed
	order     []Source
	override  bool
	community string // its name, never empty
	key       string // result cache key
}

func (d *Discoverer) request(req Request) (*request, error) {
	base, u, err := parseBase(req.FHIRBase)
	if err != nil {
		return nil, err
	}
	order := req.Order
	switch {
	case len(order) == 0 && d.orderErr != nil:
		return nil, d.orderErr
	case len(order) == 0:
		order = d.order
	default:
		if err := checkOrder(order); err != nil {
			return nil, err
		}
	}
	community := req.Community
	if community == "" {
		community = DefaultCommunity
	}
	if _, ok := d.communities[community]; !ok && community != DefaultCommunity {
		return nil, fmt.Errorf("discovery: trust community %s is not configured", quote(community))
	}
	r := &request{base: base, u: u, order: slices.Clone(order), override: req.CernerOverride, community: community}
	r.key = d.resultKey(base, order, r.override, community)
	return r, nil
}

// resultKey is the results cache's key of a request: base, a NUL and
// the short code of the rest (the sources' names joined by ", ",
// "override" or nothing, and the community, separated by NULs; see
// variants), in one allocation when the code is known.
func (d *Discoverer) resultKey(base string, order []Source, override bool, community string) string {
	var buf [128]byte
	rest := buf[:0]
	for i, s := range order {
		if i > 0 {
			rest = append(rest, ", "...)
		}
		rest = append(rest, s...)
	}
	rest = append(rest, 0)
	if override {
		rest = append(rest, "override"...)
	}
	rest = append(rest, 0)
	rest = append(rest, community...)
	return base + "\x00" + d.variants.code(rest)
}

// Key returns the key req's result is cached under, for Current; ok is
// false when req is not one Discover would answer from the cache.
func (d *Discoverer) Key(req Request) (key string, ok bool) {
	base := normalizeBase(req.FHIRBase)
	order := req.Order
	if len(order) == 0 {
		if d.orderErr != nil {
			return "", false
		}
		order = d.order
	}
	community := req.Community
	if community == "" {
		community = DefaultCommunity
	}
	return d.resultKey(base, order, req.CernerOverride, community), true
}

// parseBase validates a FHIR base URL and returns it without trailing
// slashes, and parsed.
func parseBase(fhirBase string) (string, *url.URL, error) {
	base := normalizeBase(fhirBase)
	u, err := url.Parse(base)
	switch {
	case err != nil || !isHTTPURL(base):
		return "", nil, fmt.Errorf("discovery: FHIR base %s is not an absolute http(s) URL", quote(fhirBase))
	case u.User != nil:
		return "", nil, errors.New("discovery: FHIR base must not contain user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(base, "#"):
		return "", nil, fmt.Errorf("discovery: FHIR base %s must not have a query or fragment", quote(fhirBase))
	}
	return base, u, nil
}

// docURL is the URL of the document of kind below the FHIR base u; the
// UDAP metadata's carries ?community= when communityURI is set. It is
// a string of its own size (URL.String's buffer is larger): the document
// cache keeps it as the key.
func docURL(u *url.URL, kind docKind, communityURI string) string {
	switch kind {
	case docUDAP:
		return strings.Clone(udapURL(u, communityURI))
	case docSMART:
		return strings.Clone(u.JoinPath(".well-known", "smart-configuration").String())
	}
	return strings.Clone(u.JoinPath("metadata").String())
}

// normalizeBase trims surrounding space and trailing slashes, so that
// "https://h/r4/t/" and "https://h/r4/t" share a cache entry.
func normalizeBase(fhirBase string) string {
	return strings.TrimRight(strings.TrimSpace(fhirBase), "/")
}
