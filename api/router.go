package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// Tenants resolves OIDs to tenants.
type Tenants interface {
	// Resolve returns a tenant that can be forwarded to.
	Resolve(ctx context.Context, oid string) (*tenant.Tenant, error)
	// Describe returns what is known about an OID even when token-URL
	// discovery fails.
	Describe(ctx context.Context, oid string) (*tenant.Tenant, error)
	// Scope is the scope configured for an OID, known without any
	// network call.
	Scope(oid string) string
}

// Searcher searches the directory.
type Searcher interface {
	Search(ctx context.Context, q directory.Query) (*directory.SearchResult, error)
}

// Forwarder sends a request on to a tenant's FHIR server.
type Forwarder interface {
	Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, fhirPath string)
}

// ReadyFunc reports why the gateway cannot serve yet, or nil.
type ReadyFunc func(ctx context.Context) error

// Limiter takes an organization's next turn under its rate limit:
// nil, or an error (such as *ratelimit.LimitedError, which carries
// Retry-After) when the request must not go now.
type Limiter interface {
	Wait(ctx context.Context, oid string) error
}

// Observer records what the router did, for metrics; *metrics.Metrics
// is one.
type Observer interface {
	// ObserveRequest is called once per FHIR request; org is "" unless
	// the OID resolved to a tenant.
	ObserveRequest(org, method string, code int)
	// AuditWriteError counts an audit record that could not be written.
	AuditWriteError()
	// InflightInc and InflightDec bracket each FHIR request.
	InflightInc()
	InflightDec()
}

// Config configures the router.
type Config struct {
	Tenants Tenants
	// Directory answers directory searches; nil turns search off.
	Directory Searcher
	// FHIRVersions orders FHIR endpoint preference in search summaries.
	FHIRVersions []string
	Proxy        Forwarder
	Logger       logrus.FieldLogger
	Ready        ReadyFunc
	// Auth authenticates callers; nil lets everyone in as "anonymous".
	Auth callerauth.Authenticator
	// Policy says what each caller may do; nil allows every
	// authenticated caller everything.
	Policy *callerauth.Policy
	// Audit receives one record per FHIR request; nil writes none.
	Audit *audit.Logger
	// Observer is told about every FHIR request; nil tells no one.
	Observer Observer
	// MaxBodyBytes bounds request bodies (413 beyond); 0 means no limit.
	MaxBodyBytes int64
	// Limiter keeps cqgate's own rate to each organization under its
	// limit; nil limits nothing.
	Limiter Limiter
	// Metrics, when set, is served at MetricsPath.
	Metrics     http.Handler
	MetricsPath string
	// JWKS, when set, serves GET /.well-known/jwks.json without caller
	// authentication: it lists public keys only, for partners that
	// verify cqgate's assertions by jku (they are not cqgate's callers).
	JWKS http.Handler
	// SeparateAdmin leaves /healthz, /readyz and Metrics off the router
	// New returns: NewAdmin serves them on the admin listener.
	SeparateAdmin bool
	// Pprof serves net/http/pprof under /debug/pprof/ on NewAdmin's
	// router (never on New's).
	Pprof bool
	// Tracer continues callers' traces in a span per FHIR and directory
	// request; nil traces nothing.
	Tracer RequestTracer
}

// ReadyWarnings is a ReadyFunc result that leaves the gateway ready but
// is reported by /readyz (an expiring signing certificate).
type ReadyWarnings []string

func (w ReadyWarnings) Error() string { return strings.Join(w, "; ") }

// New returns the gateway's router.
func New(cfg Config) *gin.Engine {
	h := newHandlers(cfg)
	served := "/fhir/{oid}/{fhir-path}, /directory/Organization[/{oid}], /healthz and /readyz"
	if cfg.SeparateAdmin {
		served = "/fhir/{oid}/{fhir-path} and /directory/Organization[/{oid}] (health and metrics are on the admin listener)"
	}
	r := h.engine(served)
	r.Any("/fhir/:oid", h.fhir)
	r.Any("/fhir/:oid/*path", h.fhir)
	r.GET("/directory/Organization", h.authenticate, h.search)
	r.GET("/directory/Organization/:oid", h.authenticate, h.directory)
	if !cfg.SeparateAdmin {
		h.opsRoutes(r)
	}
	if cfg.JWKS != nil {
		r.Any("/.well-known/jwks.json", gin.WrapH(cfg.JWKS))
	}
	return r
}

// engine is a gin engine that answers every request it has no route for,
// or no such method for, with an OperationOutcome. A path with a trailing
// slash is not redirected (gin's default is a 301 with an HTML body): it
// is a 404 that names the path without the slash. Under /fhir/ a
// trailing slash never gets here: the FHIR path is the partner's and is
// forwarded as it is.
func (h *handlers) engine(served string) *gin.Engine {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// The access log is outermost so that a recovered panic is logged too.
	r.Use(h.edge, h.recoverer)
	r.NoRoute(func(c *gin.Context) {
		msg := "no such endpoint; cqgate serves " + served
		if p := c.Request.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			msg = "no such endpoint: " + strconv.Quote(p) + " ends in a slash; ask for " + strconv.Quote(strings.TrimRight(p, "/")) + " (cqgate serves " + served + ")"
		}
		outcome.Write(c.Writer, http.StatusNotFound, outcome.New(outcome.NotFound, msg))
	})
	r.NoMethod(func(c *gin.Context) {
		outcome.Write(c.Writer, http.StatusMethodNotAllowed, outcome.New(outcome.NotSupported, "method not allowed here"))
	})
	return r
}

// opsRoutes adds health, readiness and metrics to r.
func (h *handlers) opsRoutes(r *gin.Engine) {
	r.GET("/healthz", h.healthz)
	r.GET("/readyz", h.readyz)
	if h.Metrics != nil && h.MetricsPath != "" {
		r.GET(h.MetricsPath, gin.WrapH(h.Metrics))
	}
}

func anonymousIdentity() *callerauth.Identity {
	return &callerauth.Identity{Name: callerauth.AnonymousCaller, Method: callerauth.MethodNone}
}

type handlers struct {
	Config
	log logrus.FieldLogger
	// anonymous is every caller when no authentication is configured;
	// shared, never modified.
	anonymous *callerauth.Identity
}

func (h *handlers) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (h *handlers) readyz(c *gin.Context) {
	if h.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		var warnings ReadyWarnings
		if err := h.Ready(ctx); errors.As(err, &warnings) {
			c.JSON(http.StatusOK, gin.H{"status": "ready", "warnings": []string(warnings)})
			return
		} else if err != nil {
			outcome.Write(c.Writer, http.StatusServiceUnavailable, outcome.New(outcome.Transient, "not ready: "+err.Error()))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

const oidKey = "cqgate.oid"

// recoverer turns a panic into a 500 OperationOutcome without the panic's
// text, and logs it (answerPanic). A panic of http.ErrAbortHandler goes
// on up: the server aborts the response. (A FHIR request's panic is
// answered in its handler, finish, so that its record says 500.)
func (h *handlers) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if aborts(v) {
				panic(v)
			}
			if _, abort := h.answerPanic(c, v); abort {
				panic(http.ErrAbortHandler)
			}
		}
	}()
	c.Next()
}

// aborts reports whether a panic's value v is http.ErrAbortHandler: the
// response is to be aborted, not answered.
func aborts(v any) bool {
	err, ok := v.(error)
	return ok && errors.Is(err, http.ErrAbortHandler)
}

// answerPanic answers a recovered panic v with a 500 OperationOutcome
// without the panic's text, its issue type on the request's span, logs
// it, and ends the handler chain. It returns the issue type written; when
// the answer had begun, nothing can be written and abort is true: the
// caller then panics with http.ErrAbortHandler, so that the server cuts
// the response off rather than end it as if it were whole.
func (h *handlers) answerPanic(c *gin.Context, v any) (code outcome.IssueType, abort bool) {
	h.log.WithField("path", c.Request.URL.Path).Errorf("api: panic serving request: %v", v)
	c.Abort()
	tracing.SetOutcome(c.Request.Context(), string(outcome.Exception))
	if c.Writer.Written() {
		return outcome.Exception, true
	}
	outcome.Write(c.Writer, http.StatusInternalServerError, outcome.New(outcome.Exception, "internal error; see the gateway log"))
	return outcome.Exception, false
}

// request is what the router keeps of one request from its first
// middleware (edge) on, in one allocation: the request id's value, which
// the request and the answer share, and the request's trace span, which
// is also its context when it is traced and nothing is recorded
// (tracing.Request).
type request struct {
	id    [1]string
	idBuf proxy.RequestIDBuffer
	trace tracing.Request
}

// edge is every request's first middleware: its id and the access log
// line (logRequest) around its trace span (trace) around everything
// else, both on every way out, an aborted response's too.
func (h *handlers) edge(c *gin.Context) {
	start := time.Now()
	rq := new(request)
	rid := h.requestID(c, rq)
	defer h.logRequest(c, start, rid)
	h.trace(c, &rq.trace)
}

// logRequest writes the request's access log line (accessLog) when it
// ends, deferred: a response aborted mid-body (a panic of
// http.ErrAbortHandler, which goes on up to the server) is logged as
// aborted.
func (h *handlers) logRequest(c *gin.Context, start time.Time, rid string) {
	if v := recover(); v != nil {
		h.accessLog(c, start, rid, true)
		panic(v)
	}
	h.accessLog(c, start, rid, false)
}

// requestID gives the request one id for its whole way: the caller's if
// sane, else a new one. The proxy sends it to the tenant; errors answer
// with it.
func (h *handlers) requestID(c *gin.Context, rq *request) string {
	ids := c.Request.Header[proxy.RequestIDHeader]
	var given string
	if len(ids) > 0 {
		given = ids[0]
	}
	rid := proxy.RequestIDIn(given, &rq.idBuf)
	if len(ids) != 1 || ids[0] != rid {
		rq.id[0] = rid
		ids = rq.id[:]
		c.Request.Header[proxy.RequestIDHeader] = ids
	}
	// One value slice for both: header values are replaced, never
	// changed in place, on the way through.
	c.Writer.Header()[proxy.RequestIDHeader] = ids
	return rid
}

// accessLog logs one line per request, without query strings (which may
// hold PHI) and without any header values. An aborted response (its
// status written, its body cut off) is logged at warn, with aborted.
func (h *handlers) accessLog(c *gin.Context, start time.Time, rid string, aborted bool) {
	status := c.Writer.Status()
	level := logrus.InfoLevel
	switch {
	case status >= 500 || aborted:
		level = logrus.WarnLevel
	case status < 400 && h.Audit != nil && strings.HasPrefix(c.FullPath(), "/fhir/"):
		// The audit line already records every answered FHIR request;
		// at info level a success costs nothing more.
		level = logrus.DebugLevel
	}
	if !levelEnabled(h.log, level) {
		return // nothing to log: build no fields on the hot path
	}
	fields := logrus.Fields{
		"method":      c.Request.Method,
		"route":       c.FullPath(),
		"status":      status,
		"duration_ms": float64(time.Since(start).Microseconds()) / 1000,
		"request_id":  rid,
	}
	if up := headerValue(c.Writer.Header(), proxy.UpstreamRequestIDHeader); up != "" {
		fields["upstream_request_id"] = up
	}
	if aborted {
		fields["aborted"] = true
	}
	if oid, ok := c.Get(oidKey); ok {
		fields["oid"] = oid
	} else if strings.HasPrefix(c.FullPath(), "/fhir/") {
		// Worked out again only when a line is written, so that the hot
		// path sets nothing on the gin context.
		raw, _ := splitFHIRPath(c.Request)
		if oid, err := directory.ParseOID(raw); err == nil {
			fields["oid"] = oid
		}
	}
	h.log.WithFields(fields).Log(level, "request")
}

// levelEnabled reports whether log writes entries at level; a logger it
// cannot ask is assumed to.
func levelEnabled(log logrus.FieldLogger, level logrus.Level) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(level)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(level)
	}
	return true
}
