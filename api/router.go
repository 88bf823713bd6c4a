package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/outcome"
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
}

// Forwarder sends a request on to a tenant's FHIR server.
type Forwarder interface {
	Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, fhirPath string)
}

// ReadyFunc reports why the gateway cannot serve yet, or nil.
type ReadyFunc func(ctx context.Context) error

// Config configures the router.
type Config struct {
	Tenants Tenants
	Proxy   Forwarder
	Logger  logrus.FieldLogger
	Ready   ReadyFunc
}

// New returns the gateway's router.
func New(cfg Config) *gin.Engine {
	log := cfg.Logger
	if log == nil {
		log = logrus.New()
	}
	h := &handlers{Config: cfg, log: log}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(h.recoverer, h.accessLog)
	r.NoRoute(func(c *gin.Context) {
		outcome.Write(c.Writer, http.StatusNotFound, outcome.New(outcome.NotFound,
			"no such endpoint; cqgate serves /fhir/{oid}/{fhir-path}, /directory/Organization/{oid}, /healthz and /readyz"))
	})
	r.NoMethod(func(c *gin.Context) {
		outcome.Write(c.Writer, http.StatusMethodNotAllowed, outcome.New(outcome.NotSupported, "method not allowed here"))
	})
	r.Any("/fhir/:oid", h.fhir)
	r.Any("/fhir/:oid/*path", h.fhir)
	r.GET("/directory/Organization/:oid", h.directory)
	r.GET("/healthz", h.healthz)
	r.GET("/readyz", h.readyz)
	return r
}

type handlers struct {
	Config
	log logrus.FieldLogger
}

func (h *handlers) fhir(c *gin.Context) {
	rawOID, rawPath := splitFHIRPath(c.Request)
	oid, err := directory.ParseOID(rawOID)
	if err != nil {
		outcome.WriteError(c.Writer, err)
		return
	}
	c.Set(oidKey, oid)
	path, err := proxy.ParsePath(rawPath)
	if err != nil {
		outcome.Write(c.Writer, http.StatusBadRequest, outcome.New(outcome.Invalid, err.Error()))
		return
	}
	t, err := h.Tenants.Resolve(c.Request.Context(), oid)
	if err != nil {
		h.logFailure(c, oid, err)
		outcome.WriteError(c.Writer, err)
		return
	}
	h.Proxy.Forward(c.Writer, c.Request, t, path)
}

// splitFHIRPath splits the escaped request path /fhir/{oid}/{fhir-path}
// into the unescaped OID and the still-escaped FHIR path. Both come from
// the escaped path, not from the router's decoded parameters, so that an
// encoded slash cannot move the boundary between them and
// percent-encoding reaches ParsePath's checks intact.
func splitFHIRPath(r *http.Request) (oid, fhirPath string) {
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/fhir/")
	rawOID := p
	if i := strings.IndexByte(p, '/'); i >= 0 {
		rawOID, fhirPath = p[:i], p[i:]
	}
	oid, err := url.PathUnescape(rawOID)
	if err != nil {
		return rawOID, fhirPath // ParseOID will refuse it
	}
	return oid, fhirPath
}

func (h *handlers) directory(c *gin.Context) {
	oid, err := directory.ParseOID(c.Param("oid"))
	if err != nil {
		outcome.WriteError(c.Writer, err)
		return
	}
	t, err := h.Tenants.Describe(c.Request.Context(), oid)
	if err != nil {
		h.logFailure(c, oid, err)
		outcome.WriteError(c.Writer, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, t)
}

func (h *handlers) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (h *handlers) readyz(c *gin.Context) {
	if h.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		if err := h.Ready(ctx); err != nil {
			outcome.Write(c.Writer, http.StatusServiceUnavailable, outcome.New(outcome.Transient, "not ready: "+err.Error()))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

const oidKey = "cqgate.oid"

func (h *handlers) logFailure(c *gin.Context, oid string, err error) {
	status, _ := outcome.FromError(err)
	entry := h.log.WithFields(logrus.Fields{"oid": oid, "status": status, "request_id": c.Request.Header.Get(proxy.RequestIDHeader)})
	if rid := outcome.UpstreamRequestID(err); rid != "" {
		entry = entry.WithField("upstream_request_id", rid)
	}
	if status >= 500 {
		entry.WithError(err).Warn("api: request failed")
	} else {
		entry.WithError(err).Info("api: request refused")
	}
}

// recoverer turns a panic into a 500 OperationOutcome without the panic's
// text, and logs it.
func (h *handlers) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			h.log.WithField("path", c.Request.URL.Path).Errorf("api: panic serving request: %v", v)
			if !c.Writer.Written() {
				outcome.Write(c.Writer, http.StatusInternalServerError, outcome.New(outcome.Exception, "internal error; see the gateway log"))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// accessLog logs one line per request, without query strings (which may
// hold PHI) and without any header values.
func (h *handlers) accessLog(c *gin.Context) {
	start := time.Now()
	// One request id for the whole request: the caller's if sane, else a
	// new one. The proxy sends it to the tenant; errors answer with it.
	rid := proxy.RequestID(c.GetHeader(proxy.RequestIDHeader))
	c.Request.Header.Set(proxy.RequestIDHeader, rid)
	c.Writer.Header().Set(proxy.RequestIDHeader, rid)
	c.Next()
	status := c.Writer.Status()
	fields := logrus.Fields{
		"method":      c.Request.Method,
		"route":       c.FullPath(),
		"status":      status,
		"duration_ms": float64(time.Since(start).Microseconds()) / 1000,
		"request_id":  rid,
	}
	if up := c.Writer.Header().Get(proxy.UpstreamRequestIDHeader); up != "" {
		fields["upstream_request_id"] = up
	}
	if oid, ok := c.Get(oidKey); ok {
		fields["oid"] = oid
	}
	entry := h.log.WithFields(fields)
	if status >= 500 {
		entry.Warn("request")
	} else {
		entry.Info("request")
	}
}
