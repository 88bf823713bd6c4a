package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "cqgate"

// DefaultMaxOrgs bounds the number of distinct OIDs that get their own
// org label value.
const DefaultMaxOrgs = 1000

// UpstreamBuckets are the cqgate_upstream_duration_seconds buckets: FHIR
// reads take milliseconds to seconds, searches and $everything up to the
// proxy timeout.
var UpstreamBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Handler defaults; see Handler.
const (
	handlerTimeout     = 10 * time.Second
	handlerMaxInFlight = 4
)

// Logger receives the errors the metrics handler meets while gathering or
// writing a scrape. *log.Logger and logrus loggers satisfy it.
type Logger interface {
	Println(v ...any)
}

// Option configures New.
type Option func(*options)

type options struct {
	maxOrgs  int
	errorLog Logger
}

// WithMaxOrgs sets how many distinct OIDs get their own org label value
// (DefaultMaxOrgs if n <= 0); later ones are counted as org="other".
func WithMaxOrgs(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxOrgs = n
		}
	}
}

// WithErrorLog sends the metrics handler's gathering and writing errors to
// l. Without it they are not logged (the scrape still reports them).
func WithErrorLog(l Logger) Option {
	return func(o *options) { o.errorLog = l }
}

// Metrics holds cqgate's metrics and the registry that exposes them. Create
// it with New; its recording methods are safe for concurrent use and do
// nothing on a nil *Metrics.
type Metrics struct {
	reg      *prometheus.Registry
	errorLog Logger
	maxOrgs  int

	requests *prometheus.CounterVec
	upstream *prometheus.HistogramVec
	inflight prometheus.Gauge

	orgs     sync.Map     // bare OID -> *orgSeries
	orgCount atomic.Int64 // entries in orgs; written under newOrgMu
	newOrgMu sync.Mutex
	unknown  *orgSeries
	other    *orgSeries

	exchanges        [numExchangeOutcomes]prometheus.Counter
	tokenCache       [numCacheResults]prometheus.Counter
	directoryLookups [numLookupResults]prometheus.Counter
	discoveryLookups [numLookupResults]prometheus.Counter
	vaultErrors      [numVaultOps]prometheus.Counter
	keyReloads       [numReloadResults]prometheus.Counter
	inflightRejected [numRejectReasons]prometheus.Counter
	connsClosed      [2]prometheus.Counter // closed for room, by connStateNames
	certNotAfter     prometheus.Gauge
	auditErrors      prometheus.Counter
	own              ownCert
}

// orgSeries caches one organization's series. They are created on first
// use, so an organization only shows the methods and status classes it
// actually saw.
type orgSeries struct {
	org      string
	requests [numMethods][numCodeClasses]atomic.Pointer[counter]
	upstream atomic.Pointer[observer]
}

// counter and observer box the client's interfaces for atomic.Pointer.
type (
	counter  struct{ prometheus.Counter }
	observer struct{ prometheus.Observer }
)

// New returns Metrics with a fresh registry holding cqgate's metrics and
// the Go runtime and process collectors.
func New(opts ...Option) *Metrics {
	o := options{maxOrgs: DefaultMaxOrgs}
	for _, opt := range opts {
		opt(&o)
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		errorLog: o.errorLog,
		maxOrgs:  o.maxOrgs,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "requests_total",
			Help:      "FHIR requests answered, by organization OID (\"unknown\" if it did not resolve), method and status class.",
		}, []string{"org", "method", "code_class"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "upstream_duration_seconds",
			Help:      "Time until a partner's FHIR server answered with response headers, by organization OID.",
			Buckets:   UpstreamBuckets,
		}, []string{"org"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "inflight_requests",
			Help:      "FHIR requests being served.",
		}),
		certNotAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "signing_certificate_not_after_seconds",
			Help:      "NotAfter of the signing certificate in service, in seconds since the Unix epoch (0 before a key is loaded).",
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "audit_write_errors_total",
			Help:      "Audit records that could not be written.",
		}),
	}
	m.own = newOwnCert()
	m.reg.MustRegister(m.own.collectors()...)
	m.unknown = &orgSeries{org: OrgUnknown}
	m.other = &orgSeries{org: OrgOther}

	exchanges := newCounterVec("token_exchanges_total", "Client-credentials token exchanges, by outcome.", "outcome")
	curry(exchanges, m.exchanges[:], exchangeOutcomeNames[:])
	tokenCache := newCounterVec("token_cache_requests_total", "Access token requests to the token cache, by result.", "result")
	curry(tokenCache, m.tokenCache[:], cacheResultNames[:])
	directory := newCounterVec("directory_lookups_total", "Carequality directory lookups, by result.", "result")
	curry(directory, m.directoryLookups[:], lookupResultNames[:])
	discovery := newCounterVec("discovery_lookups_total", "Token URL discovery lookups, by result.", "result")
	curry(discovery, m.discoveryLookups[:], lookupResultNames[:])
	vault := newCounterVec("vault_errors_total", "Failed Vault requests, by operation.", "op")
	curry(vault, m.vaultErrors[:], vaultOpNames[:])
	reloads := newCounterVec("signing_key_reloads_total", "Signing key reloads that put new material in service (success) or failed (failure).", "result")
	curry(reloads, m.keyReloads[:], reloadResultNames[:])
	rejected := newCounterVec("inflight_rejected_total", "FHIR requests answered 503 at server.max_inflight, by reason (queue_full, wait_expired).", "reason")
	curry(rejected, m.inflightRejected[:], rejectReasonNames[:])
	closedForRoom := newCounterVec("connections_closed_for_room_total", "Connections closed to admit a new one at server.max_connections, by state: idle (keep-alive, between requests) or no_request (no complete first request within a second).", "state")
	curry(closedForRoom, m.connsClosed[:], connStateNames[:])

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.upstream, m.inflight, m.certNotAfter, m.auditErrors,
		exchanges, tokenCache, directory, discovery, vault, reloads, rejected,
		closedForRoom,
	)
	return m
}

func newCounterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, []string{label})
}

// curry creates the child of v for every value, so that the fixed-set
// series exist (at 0) from the start and recording is an array index.
func curry(v *prometheus.CounterVec, dst []prometheus.Counter, values []string) {
	for i, value := range values {
		dst[i] = v.WithLabelValues(value)
	}
}

// Handler returns the HTTP handler that serves the registry in the
// Prometheus text (or protobuf) exposition format. It answers at most 4
// scrapes at once and gives up on a scrape after 10 s (503).
func (m *Metrics) Handler() http.Handler {
	opts := promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: handlerMaxInFlight,
		Timeout:             handlerTimeout,
	}
	if m.errorLog != nil {
		opts.ErrorLog = m.errorLog
	}
	return promhttp.HandlerFor(m.reg, opts)
}

// Gatherer returns the registry for tests and for callers that expose it
// some other way.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Register adds a collector owned by another package to the registry.
func (m *Metrics) Register(c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: registering collector: %w", err)
	}
	return nil
}

// RegisterGaugeFunc adds the gauge cqgate_<name>, whose value f returns
// when Prometheus scrapes. f must be safe for concurrent use and quick.
func (m *Metrics) RegisterGaugeFunc(name, help string, f func() float64) error {
	if err := checkFunc(name, help, f); err != nil {
		return err
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f)
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("metrics: registering gauge %s_%s: %w", Namespace, name, err)
	}
	return nil
}

// RegisterCounterFunc adds the counter cqgate_<name>, whose value f
// returns when Prometheus scrapes. The value must never decrease (except
// when the process restarts); name should end in _total. f must be safe
// for concurrent use and quick.
func (m *Metrics) RegisterCounterFunc(name, help string, f func() float64) error {
	if err := checkFunc(name, help, f); err != nil {
		return err
	}
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, f)
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: registering counter %s_%s: %w", Namespace, name, err)
	}
	return nil
}

func checkFunc(name, help string, f func() float64) error {
	var errs []error
	switch {
	case name == "":
		errs = append(errs, errors.New("metrics: a metric needs a name"))
	case !validName(name):
		errs = append(errs, fmt.Errorf("metrics: invalid metric name %q: use lower-case letters, digits and underscores", name))
	}
	if help == "" {
		errs = append(errs, fmt.Errorf("metrics: metric %q needs help text", name))
	}
	if f == nil {
		errs = append(errs, fmt.Errorf("metrics: metric %q needs a function", name))
	}
	return errors.Join(errs...)
}

// validName reports whether name, after the cqgate_ prefix, is a metric
// name every Prometheus version accepts (the classic [a-zA-Z_:][a-zA-Z0-9_:]*
// rule, narrowed to the snake case used here).
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return name != ""
}

// series returns the cached series for org: "unknown" unless org is a
// valid bare OID, "other" once MaxOrgs OIDs have their own.
func (m *Metrics) series(org string) *orgSeries {
	if s, ok := m.orgs.Load(org); ok {
		return s.(*orgSeries)
	}
	if !validOID(org) {
		return m.unknown
	}
	if m.orgCount.Load() >= int64(m.maxOrgs) {
		return m.other
	}
	m.newOrgMu.Lock()
	defer m.newOrgMu.Unlock()
	if s, ok := m.orgs.Load(org); ok {
		return s.(*orgSeries)
	}
	if m.orgCount.Load() >= int64(m.maxOrgs) {
		return m.other
	}
	s := &orgSeries{org: org}
	m.orgs.Store(org, s)
	m.orgCount.Add(1)
	return s
}

// ObserveRequest counts one answered FHIR request. org is the bare OID
// the request was for, or "" if it did not resolve to a tenant (it must
// not be a raw, unvalidated path segment: only resolved OIDs should get a
// series). method is the HTTP method ("other" unless a standard one) and
// code the status sent.
func (m *Metrics) ObserveRequest(org, method string, code int) {
	if m == nil {
		return
	}
	s := m.series(org)
	mi, ci := methodIndex(method), codeClassIndex(code)
	p := &s.requests[mi][ci]
	c := p.Load()
	if c == nil {
		c = m.newRequestCounter(s, p, mi, ci)
	}
	c.Inc()
}

func (m *Metrics) newRequestCounter(s *orgSeries, p *atomic.Pointer[counter], mi, ci int) *counter {
	c := &counter{m.requests.WithLabelValues(s.org, methodNames[mi], codeClassNames[ci])}
	if !p.CompareAndSwap(nil, c) {
		return p.Load() // the same child, created by a concurrent caller
	}
	return c
}

// ObserveUpstream records how long a partner's FHIR server took to answer
// a request for org (a resolved bare OID).
func (m *Metrics) ObserveUpstream(org string, d time.Duration) {
	if m == nil {
		return
	}
	s := m.series(org)
	o := s.upstream.Load()
	if o == nil {
		o = &observer{m.upstream.WithLabelValues(s.org)}
		if !s.upstream.CompareAndSwap(nil, o) {
			o = s.upstream.Load()
		}
	}
	o.Observe(d.Seconds())
}

// InflightInc counts a request that started being served.
func (m *Metrics) InflightInc() {
	if m != nil {
		m.inflight.Inc()
	}
}

// InflightDec counts a request that was served.
func (m *Metrics) InflightDec() {
	if m != nil {
		m.inflight.Dec()
	}
}

// InflightRejected counts one FHIR request refused with 503 at
// server.max_inflight. Values outside the RejectReason constants are
// ignored.
func (m *Metrics) InflightRejected(r RejectReason) {
	if m != nil && r < numRejectReasons {
		m.inflightRejected[r].Inc()
	}
}

// ConnClosedForRoom counts one connection closed to admit a new one at
// server.max_connections: idle between requests, or without a complete
// first request.
func (m *Metrics) ConnClosedForRoom(idle bool) {
	if m == nil {
		return
	}
	if idle {
		m.connsClosed[1].Inc()
	} else {
		m.connsClosed[0].Inc()
	}
}

// TokenExchange counts one token exchange. Values outside the
// ExchangeOutcome constants are ignored.
func (m *Metrics) TokenExchange(o ExchangeOutcome) {
	if m != nil && o < numExchangeOutcomes {
		m.exchanges[o].Inc()
	}
}

// TokenCache counts one request to the token cache. Values outside the
// CacheResult constants are ignored.
func (m *Metrics) TokenCache(r CacheResult) {
	if m != nil && r < numCacheResults {
		m.tokenCache[r].Inc()
	}
}

// DirectoryLookup counts one directory lookup. Values outside the
// LookupResult constants are ignored.
func (m *Metrics) DirectoryLookup(r LookupResult) {
	if m != nil && r < numLookupResults {
		m.directoryLookups[r].Inc()
	}
}

// DiscoveryLookup counts one token URL discovery. Values outside the
// LookupResult constants are ignored.
func (m *Metrics) DiscoveryLookup(r LookupResult) {
	if m != nil && r < numLookupResults {
		m.discoveryLookups[r].Inc()
	}
}

// VaultError counts one failed Vault request. Values outside the VaultOp
// constants are ignored.
func (m *Metrics) VaultError(op VaultOp) {
	if m != nil && op < numVaultOps {
		m.vaultErrors[op].Inc()
	}
}

// SigningKeyReload counts one signing key reload. Values outside the
// ReloadResult constants are ignored.
func (m *Metrics) SigningKeyReload(r ReloadResult) {
	if m != nil && r < numReloadResults {
		m.keyReloads[r].Inc()
	}
}

// SetSigningCertificateNotAfter records the NotAfter of the signing
// certificate in service; the zero time records 0 (no key loaded).
func (m *Metrics) SetSigningCertificateNotAfter(t time.Time) {
	if m == nil {
		return
	}
	if t.IsZero() {
		m.certNotAfter.Set(0)
		return
	}
	m.certNotAfter.Set(float64(t.Unix()))
}

// AuditWriteError counts one audit record that could not be written.
func (m *Metrics) AuditWriteError() {
	if m != nil {
		m.auditErrors.Inc()
	}
}
