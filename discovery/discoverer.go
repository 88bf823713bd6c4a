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
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/patrickmn/go-cache"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

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
	// RegistrationEndpoint is the dynamic client registration URL that
	// goes with TokenURL, when the source used names one.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// UDAP says the server's UDAP metadata was read and verified during
	// this discovery. It is false when the udap source was not tried.
	UDAP bool `json:"udap"`
	// URIs is everything the CapabilityStatement's oauth-uris listed, when
	// it was read.
	URIs OAuthURIs `json:"oauth_uris,omitzero"`
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
	anchors      *x509.CertPool
	log          logrus.FieldLogger
	fetchTimeout time.Duration
	retryInitial time.Duration
	retryMax     time.Duration
	results      *cache.Cache // result key -> *entry
	flights      singleflight.Group
	docs         *cache.Cache // document key -> *document
	docFlights   singleflight.Group
	// afterRefresh, when set (by tests, before first use), is called
	// when a background refresh ends.
	afterRefresh func(key string, err error)
}

// entry is a cached result with the state of its refreshes.
type entry struct {
	mu      sync.Mutex
	res     *Result
	retryAt time.Time // no refresh before this, after a failed one
	lastErr error
	bo      backoff.BackOff
}

func (e *entry) state() (res *Result, retryAt time.Time, lastErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.res, e.retryAt, e.lastErr
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
		anchors:      cfg.TrustAnchors,
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
	// After a failed refresh, retry with capped exponential backoff.
	window := max(d.refreshAhead, d.ttl/10)
	d.retryInitial = min(max(window/10, time.Second), 30*time.Second)
	d.retryMax = min(max(window, 5*time.Second), 5*time.Minute)
	d.results = cache.New(d.ttl+d.maxStale, d.ttl)
	d.docs = cache.New(d.ttl, d.ttl)
	return d
}

// TokenEndpoint is Discover with the Discoverer's default order and no
// Cerner override.
func (d *Discoverer) TokenEndpoint(ctx context.Context, fhirBase string) (*Result, error) {
	return d.Discover(ctx, Request{FHIRBase: fhirBase})
}

// Discover returns the token endpoint of the FHIR server at
// req.FHIRBase: the first source in req.Order that yields an absolute
// http(s) token URL wins. When none does, the error is a
// *NoTokenURLError listing every source tried and why.
//
// Results are cached per (base, order, override) for the TTL and
// refreshed in the background in the RefreshAhead window; when a refresh
// fails the old result is served, marked Stale once expired, until
// MaxStale past its expiry. ctx bounds only this caller's wait: a fetch
// shared with other callers goes on when ctx is done.
func (d *Discoverer) Discover(ctx context.Context, req Request) (*Result, error) {
	r, err := d.request(req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovery: token endpoint of %s: %w", r.base, err)
	}
	now := d.now()
	if e := d.entry(r.key); e != nil {
		res, retryAt, lastErr := e.state()
		switch {
		case res == nil:
		case now.Before(res.Expires):
			if d.refreshAhead > 0 && !now.Before(res.Expires.Add(-d.refreshAhead)) && !now.Before(retryAt) {
				d.refreshInBackground(ctx, r)
			}
			return res.clone(), nil
		case now.Before(res.Expires.Add(d.maxStale)):
			if now.Before(retryAt) {
				return res.stale(lastErr), nil
			}
			fresh, err := d.shared(ctx, r)
			switch {
			case err == nil:
				return fresh.clone(), nil
			case ctx.Err() != nil:
				return nil, err
			}
			return res.stale(err), nil
		}
	}
	res, err := d.shared(ctx, r)
	if err != nil {
		return nil, err
	}
	return res.clone(), nil
}

// Forget drops every cached result and document for fhirBase, so that
// the next lookup fetches again. Fetches already in flight are not
// cancelled, but later lookups do not join them.
func (d *Discoverer) Forget(fhirBase string) {
	base, u, err := parseBase(fhirBase)
	if err != nil {
		return
	}
	prefix := base + "\x00"
	for k := range d.results.Items() {
		if strings.HasPrefix(k, prefix) {
			d.flights.Forget(k)
			d.results.Delete(k)
		}
	}
	for _, kind := range []docKind{docMetadata, docUDAP, docSMART} {
		for _, override := range []bool{false, true} {
			k := docKey(kind, docURL(u, kind), override)
			d.docFlights.Forget(k)
			d.docs.Delete(k)
		}
	}
}

// request is a validated Request.
type request struct {
	base     string   // without trailing slashes
	u        *url.URL // base, parsed
	order    []Source
	override bool
	key      string // result cache key
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
	r := &request{base: base, u: u, order: slices.Clone(order), override: req.CernerOverride}
	r.key = base + "\x00" + joinSources(order) + "\x00"
	if r.override {
		r.key += "override"
	}
	return r, nil
}

func (d *Discoverer) entry(key string) *entry {
	v, ok := d.results.Get(key)
	if !ok {
		return nil
	}
	return v.(*entry)
}

// refreshInBackground starts one refresh of r's result unless one is in
// flight already.
func (d *Discoverer) refreshInBackground(ctx context.Context, r *request) {
	ch := d.flights.DoChan(r.key, d.flight(ctx, r))
	if hook := d.afterRefresh; hook != nil {
		go func() {
			res := <-ch
			hook(r.key, res.Err)
		}()
	}
}

// shared runs r's discovery once for all concurrent callers and waits
// for it until ctx is done.
func (d *Discoverer) shared(ctx context.Context, r *request) (*Result, error) {
	ch := d.flights.DoChan(r.key, d.flight(ctx, r))
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("discovery: token endpoint of %s: %w", r.base, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Result), nil
	}
}

// flight is the shared fetch of r's result: it discovers, guards against
// a refresh falling back to a less preferred source because a preferred
// one failed, and caches the outcome. It runs detached from ctx's
// cancellation, bounded by the discovery timeout.
func (d *Discoverer) flight(ctx context.Context, r *request) func() (any, error) {
	return func() (any, error) {
		now := d.now()
		e := d.entry(r.key)
		var old *Result
		if e != nil {
			old, _, _ = e.state()
		}
		maxAge := d.ttl
		if old != nil {
			if now.Before(old.Expires.Add(-d.refreshAhead)) {
				return old, nil // refreshed while this flight was being set up
			}
			if now.Before(old.Expires) {
				// Refresh ahead: documents as old as the result is are
				// fetched again.
				maxAge = d.ttl - d.refreshAhead
			}
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.fetchTimeout)
		defer cancel()
		res, err := d.discover(fctx, r, maxAge)
		// servable: the cached result is still served if this fails.
		servable := old != nil && now.Before(old.Expires.Add(d.maxStale))
		if err == nil && servable {
			err = downgrade(r, old, res)
		}
		if err != nil {
			if servable {
				e.failed(now, err, d.retryInitial, d.retryMax)
				d.log.WithFields(logrus.Fields{"fhir_base": r.base, "cached_source": old.Source, "cached_expires": old.Expires}).
					WithError(err).Warn("discovery: refresh failed; serving the cached token URL")
			}
			return nil, err
		}
		d.results.Set(r.key, &entry{res: res}, d.ttl+d.maxStale)
		return res, nil
	}
}

func (e *entry) failed(now time.Time, err error, initial, maxInterval time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bo == nil {
		e.bo = retry.Policy{Initial: initial, Max: maxInterval, Multiplier: 1.5, Jitter: retry.Spread}.BackOff()
	}
	e.retryAt = now.Add(e.bo.NextBackOff())
	e.lastErr = err
}

// downgrade returns an error when a refreshed result comes from a source
// less preferred than the cached one's because that source failed (as
// opposed to no longer offering a token URL): a passing outage of
// /metadata must not move a Cerner server from its Carequality token URL
// to its generic one.
func downgrade(r *request, old, res *Result) error {
	oldRank, newRank := slices.Index(r.order, old.Source), slices.Index(r.order, res.Source)
	if oldRank < 0 || newRank <= oldRank {
		return nil
	}
	for _, a := range res.Attempts {
		if slices.Index(r.order, a.Source) <= oldRank && a.Err != nil {
			return fmt.Errorf("discovery: refreshing the token URL of %s would fall back from %s to %s because %s failed: %w",
				r.base, old.Source, res.Source, a.Source, a.Err)
		}
	}
	return nil
}

// clone returns a copy of r that shares no slices with it.
func (r *Result) clone() *Result {
	c := *r
	c.Attempts = slices.Clone(r.Attempts)
	c.SigningAlgorithms = slices.Clone(r.SigningAlgorithms)
	c.AuthMethods = slices.Clone(r.AuthMethods)
	return &c
}

// stale returns a copy of r marked stale because of err.
func (r *Result) stale(err error) *Result {
	c := r.clone()
	c.Stale = true
	if err != nil {
		c.StaleReason = err.Error()
	} else {
		c.StaleReason = "refresh failed"
	}
	return c
}

// discoveryRun is the state of one discovery.
type discoveryRun struct {
	d      *Discoverer
	r      *request
	maxAge time.Duration
	now    time.Time
	// docs memoizes this run's documents, so /metadata is read once for
	// carequality-token and token.
	docs map[docKind]docResult
	// info collects advertised algorithms and methods from every source
	// read, in order, for the fallback.
	info []claim
}

type docResult struct {
	doc *document
	err error
}

// claim is what a source said.
type claim struct {
	tokenURL     string
	registration string
	algs         []string
	methods      []string
	udap         bool
	expires      time.Time // signed_metadata's exp, for UDAP
}

// discover tries r's sources in order.
func (d *Discoverer) discover(ctx context.Context, r *request, maxAge time.Duration) (*Result, error) {
	run := &discoveryRun{d: d, r: r, maxAge: maxAge, now: d.now(), docs: make(map[docKind]docResult)}
	res := &Result{}
	var won *claim
	for _, src := range r.order {
		a, c := run.try(ctx, src)
		res.Attempts = append(res.Attempts, a)
		if c != nil {
			won = c
			res.TokenURL, res.Source = c.tokenURL, src
			break
		}
	}
	if won == nil {
		return nil, &NoTokenURLError{FHIRBase: r.base, Attempts: res.Attempts}
	}
	res.RegistrationEndpoint = won.registration
	res.SigningAlgorithms, res.AuthMethods = slices.Clone(won.algs), slices.Clone(won.methods)
	for _, c := range run.info {
		if len(res.SigningAlgorithms) == 0 {
			res.SigningAlgorithms = slices.Clone(c.algs)
		}
		if len(res.AuthMethods) == 0 {
			res.AuthMethods = slices.Clone(c.methods)
		}
	}
	for _, c := range run.info {
		res.UDAP = res.UDAP || c.udap
	}
	if m, ok := run.docs[docMetadata]; ok && m.doc != nil {
		res.MetadataURL = m.doc.url
		if m.doc.uris != nil {
			res.URIs = *m.doc.uris
		}
	}
	res.FetchedAt = run.now
	for _, dr := range run.docs {
		if dr.doc != nil && dr.doc.fetchedAt.Before(res.FetchedAt) {
			res.FetchedAt = dr.doc.fetchedAt
		}
	}
	res.Expires = res.FetchedAt.Add(d.ttl)
	if !won.expires.IsZero() && won.expires.Before(res.Expires) {
		res.Expires = won.expires
	}
	return res, nil
}

// document returns this run's document of kind, fetching it at most once.
func (run *discoveryRun) document(ctx context.Context, kind docKind) (string, *document, error) {
	u := docURL(run.r.u, kind)
	if dr, ok := run.docs[kind]; ok {
		return u, dr.doc, dr.err
	}
	doc, err := run.d.document(ctx, kind, u, run.r.override, run.maxAge)
	run.docs[kind] = docResult{doc, err}
	return u, doc, err
}

// try asks one source. The claim is non-nil when the source yielded a
// usable token URL; whatever a read document advertised goes to
// run.info.
func (run *discoveryRun) try(ctx context.Context, src Source) (Attempt, *claim) {
	a := Attempt{Source: src}
	u, doc, err := run.document(ctx, sourceDocument(src))
	a.URL = u
	if err != nil {
		return a.fail(err), nil
	}
	ev := evaluate(src, doc, run.r.base, run.r.override, run.d.anchors, run.d.now())
	if ev.info != nil {
		run.info = append(run.info, *ev.info)
	}
	if ev.rejected {
		// The document was read but holds something unusable. Failed
		// fetches are never cached; neither is such a document, so that
		// the next discovery reads it again.
		key := docKey(doc.kind, doc.url, run.r.override)
		if v, ok := run.d.docs.Get(key); ok && v.(*document) == doc {
			run.d.docs.Delete(key)
		}
	}
	return ev.attempt, ev.used
}

// sourceDocument is the document src reads.
func sourceDocument(src Source) docKind {
	switch src {
	case SourceUDAP:
		return docUDAP
	case SourceSMARTConfiguration:
		return docSMART
	}
	return docMetadata
}

// evaluation is what evaluate concluded about one source.
type evaluation struct {
	attempt Attempt
	// used is the claim when the source yields a usable token URL.
	used *claim
	// info is what the document advertised, when it was usable at all.
	info *claim
	// rejected says the document holds something unusable.
	rejected bool
}

// evaluate judges what the read document doc says for src, for the FHIR
// server at base (normalized). It does no I/O. The only way to an
// OutcomeUsed attempt is through checkTokenURL.
func evaluate(src Source, doc *document, base string, override bool, anchors *x509.CertPool, now time.Time) evaluation {
	ev := evaluation{attempt: Attempt{Source: src, URL: doc.url, FetchedAt: doc.fetchedAt}}
	a := &ev.attempt
	reject := func(err error) evaluation {
		ev.attempt = a.fail(&Error{URL: doc.url, StatusCode: http.StatusOK, Err: err})
		ev.rejected = true
		return ev
	}
	if doc.notSupported != 0 {
		a.Outcome = fmt.Sprintf("not supported (%d)", doc.notSupported)
		return ev
	}

	var c claim
	var what, none string
	switch src {
	case SourceCarequalityToken:
		what = "carequality-token URL"
		switch uris := doc.uris; {
		case uris == nil:
			none = "the CapabilityStatement has no oauth-uris extension"
		case uris.CarequalityToken != "":
			c.tokenURL, c.registration = uris.CarequalityToken, uris.CarequalityRegister
		case override && uris.Token != "":
			what = "token URL (Cerner override)"
			c.tokenURL, c.registration = uris.Token, uris.Register
		case override:
			none = "oauth-uris lists neither carequality-token nor token (Cerner override on)"
		default:
			none = "oauth-uris lists no carequality-token"
		}
	case SourceToken:
		what = "token URL"
		switch uris := doc.uris; {
		case uris == nil:
			none = "the CapabilityStatement has no oauth-uris extension"
		case uris.Token == "":
			none = "oauth-uris lists no token"
		default:
			c.tokenURL, c.registration = uris.Token, uris.Register
		}
	case SourceSMARTConfiguration:
		what = "token_endpoint"
		sc := doc.smart
		c = claim{
			tokenURL:     strings.TrimSpace(sc.TokenEndpoint),
			registration: strings.TrimSpace(sc.RegistrationEndpoint),
			algs:         sc.TokenEndpointAuthSigningAlgValuesSupported,
			methods:      sc.TokenEndpointAuthMethodsSupported,
		}
		if c.tokenURL == "" {
			none = "the document has no token_endpoint"
		}
	case SourceUDAP:
		what = "signed token_endpoint"
		v, err := verifyUDAP(doc.udap, base, anchors, now)
		switch {
		case errors.Is(err, ErrNoTrustAnchors):
			ev.attempt = a.fail(err)
			return ev
		case err != nil:
			return reject(err)
		}
		c = claim{
			registration: strings.TrimSpace(v.md.RegistrationEndpoint),
			algs:         v.md.TokenEndpointAuthSigningAlgValuesSupported,
			methods:      v.md.TokenEndpointAuthMethodsSupported,
			udap:         true,
			expires:      v.expires,
		}
		switch {
		case v.tokenSigned:
			c.tokenURL = strings.TrimSpace(v.md.TokenEndpoint)
		case strings.TrimSpace(doc.udap.TokenEndpoint) != "":
			a.TokenURL = offered(doc.udap.TokenEndpoint)
			return reject(errors.New("token_endpoint is not among the signed_metadata claims (unsigned values are not trusted)"))
		default:
			none = "neither the metadata nor signed_metadata has a token_endpoint"
		}
	default:
		ev.attempt = a.fail(fmt.Errorf("unknown source %s", quote(string(src))))
		return ev
	}
	ev.info = &c
	if none != "" {
		a.Outcome, a.Detail = OutcomeNoTokenURL, none
		return ev
	}
	a.TokenURL = offered(c.tokenURL)
	if err := checkTokenURL(what, c.tokenURL); err != nil {
		return reject(err)
	}
	a.Outcome = OutcomeUsed
	ev.used = &c
	return ev
}

// fail records err as the attempt's failure.
func (a Attempt) fail(err error) Attempt {
	a.Err = err
	var de *Error
	if errors.As(err, &de) {
		a.Outcome = "failed: " + de.reason()
	} else {
		a.Outcome = "failed: " + err.Error()
	}
	return a
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

// docURL is the URL of the document of kind below the FHIR base u.
func docURL(u *url.URL, kind docKind) string {
	switch kind {
	case docUDAP:
		return u.JoinPath(".well-known", "udap").String()
	case docSMART:
		return u.JoinPath(".well-known", "smart-configuration").String()
	}
	return u.JoinPath("metadata").String()
}

// normalizeBase trims surrounding space and trailing slashes, so that
// "https://h/r4/t/" and "https://h/r4/t" share a cache entry.
func normalizeBase(fhirBase string) string {
	return strings.TrimRight(strings.TrimSpace(fhirBase), "/")
}
