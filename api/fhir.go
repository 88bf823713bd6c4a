package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/proxy"
)

// Request headers a caller may use to shape the token used for it. The
// proxy never forwards them.
const (
	// PurposeOfUseHeader asserts UDAP B2B purposes of use (repeated or
	// comma-separated), each allowed by the caller's policy and the
	// organization's allowed_purposes.
	PurposeOfUseHeader = "X-Purpose-Of-Use"
	// ScopeHeader asks for a token with a narrower scope than the
	// organization's configured one.
	ScopeHeader = "X-Cqgate-Scope"
	// ExchangePurposeHeader chooses the TEFCA exchange purpose (XP code,
	// e.g. T-TREAT) of a request to an organization of the TEFCA
	// community, allowed by the caller's exchange_purposes.
	ExchangePurposeHeader = "X-Cqgate-Exchange-Purpose"
)

// fhir serves /fhir/{oid}/{fhir-path}: authenticate, check the caller's
// policy, resolve the tenant and forward. Nothing reaches the directory,
// Vault or the tenant before the caller is authenticated and allowed.
func (h *handlers) fhir(c *gin.Context) {
	if h.Observer != nil {
		h.Observer.InflightInc()
		defer h.Observer.InflightDec()
	}
	start := time.Now()
	rec := &audit.Record{Time: start, Method: c.Request.Method, RemoteAddr: c.Request.RemoteAddr}
	// canon is the OID asked for (audited even when refused); oid is set
	// once it resolved (metrics label only known organizations).
	var canon, oid string
	defer func() {
		d := time.Since(start)
		if h.Observer != nil {
			h.Observer.ObserveRequest(oid, c.Request.Method, c.Writer.Status())
		}
		if h.Audit == nil {
			return
		}
		rec.RequestID = c.Writer.Header().Get(proxy.RequestIDHeader)
		rec.OID, rec.Status, rec.Duration = canon, c.Writer.Status(), d
		rec.UpstreamRequestID = c.Writer.Header().Get(proxy.UpstreamRequestIDHeader)
		if code, ok := c.Get(outcomeKey); ok {
			rec.Error, _ = code.(string)
		}
		if err := h.Audit.Write(rec); err != nil {
			if h.Observer != nil {
				h.Observer.AuditWriteError()
			}
			h.log.WithError(err).WithField("request_id", rec.RequestID).Warn("api: writing the audit record failed")
		}
	}()

	id, ok := h.authenticated(c)
	if !ok {
		return
	}
	rec.Caller, rec.CallerMethod, rec.CallerSubject = id.Name, id.Method, id.Subject
	if err := checkMethod(c); err != nil {
		h.fail(c, "", err)
		return
	}

	if err := checkTarget(c.Request.RequestURI); err != nil {
		h.fail(c, "", err)
		return
	}
	rawOID, rawPath := splitFHIRPath(c.Request)
	var err error
	canon, err = directory.ParseOID(rawOID)
	if err != nil {
		h.fail(c, "", err)
		return
	}
	path, err := proxy.ParsePath(rawPath)
	if err != nil {
		h.fail(c, canon, outcome.Errorf(http.StatusBadRequest, outcome.Invalid, "%v", err))
		return
	}
	if err := checkQuery(c.Request.URL.RawQuery); err != nil {
		h.fail(c, canon, err)
		return
	}
	rec.SetPath(path)
	purposes := headerList(c.Request.Header.Values(PurposeOfUseHeader))
	scope := strings.TrimSpace(c.Request.Header.Get(ScopeHeader))
	xp := strings.TrimSpace(c.Request.Header.Get(ExchangePurposeHeader))
	c.Request.Header.Del(ExchangePurposeHeader) // for cqgate, never for the tenant
	rec.PurposeOfUse, rec.Scope = purposes, scope

	if scope != "" {
		if configured := h.Tenants.Scope(canon); !callerauth.ScopeCovers(configured, scope) {
			h.fail(c, canon, outcome.Errorf(http.StatusForbidden, outcome.Forbidden,
				"api: %s %q asks for more than the scope configured for %s (%q)", ScopeHeader, scope, canon, configured))
			return
		}
	}
	if h.Policy != nil {
		effective := scope
		if effective == "" {
			effective = h.Tenants.Scope(canon)
		}
		req := callerauth.Request{OID: canon, Method: c.Request.Method, FHIRPath: path, Scope: effective, PurposesOfUse: purposes, ExchangePurpose: xp}
		if err := h.Policy.Authorize(id, req); err != nil {
			h.fail(c, canon, outcome.Errorf(http.StatusForbidden, outcome.Forbidden, "%v", err))
			return
		}
		if c.Request.Method == http.MethodPost && path == "" {
			// A batch or transaction: each entry is a request of its own.
			if h.MaxBodyBytes > 0 && c.Request.ContentLength > h.MaxBodyBytes {
				h.fail(c, canon, outcome.Errorf(http.StatusRequestEntityTooLarge, outcome.TooCostly,
					"api: request body of %d bytes is larger than the %d bytes allowed (server.max_body_bytes)", c.Request.ContentLength, h.MaxBodyBytes))
				return
			}
			if err := h.checkBatch(c.Request, id, req, h.MaxBodyBytes); err != nil {
				h.fail(c, canon, err)
				return
			}
		}
	}
	if h.MaxBodyBytes > 0 && c.Request.ContentLength > h.MaxBodyBytes {
		h.fail(c, canon, outcome.Errorf(http.StatusRequestEntityTooLarge, outcome.TooCostly,
			"api: request body of %d bytes is larger than the %d bytes allowed (server.max_body_bytes)", c.Request.ContentLength, h.MaxBodyBytes))
		return
	}

	t, err := h.Tenants.Resolve(c.Request.Context(), canon)
	if err == nil {
		t, err = t.WithPurposes(purposes)
	}
	if err == nil {
		t, err = t.WithExchangePurpose(xp)
	}
	if err != nil {
		h.fail(c, canon, err)
		return
	}
	// The tenant's OID, not canon: labels and rate-limit buckets keep it,
	// and canon may be a slice of the request line.
	oid = t.OID
	if h.Limiter != nil {
		if err := h.Limiter.Wait(c.Request.Context(), oid); err != nil {
			h.fail(c, canon, limited(err))
			return
		}
	}
	t = t.WithScope(scope)
	if t.DirectoryStale {
		c.Header(StaleHeader, "directory")
	}
	if body := c.Request.Body; h.MaxBodyBytes > 0 && body != nil && body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, body, h.MaxBodyBytes)
	}
	// A protocol upgrade (WebSocket, h2c) would turn the request into a
	// tunnel to the tenant that no longer passes through cqgate's checks;
	// without Upgrade the request is forwarded as a plain one.
	c.Request.Header.Del("Upgrade")
	upstreamStart := time.Now()
	req := c.Request
	if ctx := t.Context(req.Context()); ctx != req.Context() {
		req = req.WithContext(ctx)
	}
	h.Proxy.Forward(c.Writer, req, t, path)
	if h.Observer != nil {
		h.Observer.ObserveUpstream(oid, time.Since(upstreamStart))
	}
}

// StaleHeader names the sources whose answers were served past their TTL
// because the source was failing (stale-if-error).
const StaleHeader = proxy.StaleHeader

// fail answers err as an OperationOutcome and logs it.
func (h *handlers) fail(c *gin.Context, oid string, err error) {
	if oid != "" {
		h.logFailure(c, oid, err)
	}
	_, oo := outcome.FromError(err)
	if oo != nil && len(oo.Issue) > 0 {
		c.Set(outcomeKey, string(oo.Issue[0].Code))
	}
	outcome.WriteError(c.Writer, err)
}

// authenticate is the middleware form of authenticated.
func (h *handlers) authenticate(c *gin.Context) {
	id, ok := h.authenticated(c)
	if !ok {
		c.Abort()
		return
	}
	c.Set(callerKey, id)
}

// authenticated identifies the caller, answering 401 when it cannot.
func (h *handlers) authenticated(c *gin.Context) (*callerauth.Identity, bool) {
	if h.Auth == nil {
		return h.anonymous, true
	}
	id, err := h.Auth.Authenticate(c.Request)
	if err == nil {
		return id, true
	}
	if errors.Is(err, callerauth.ErrUnauthenticated) || errors.Is(err, callerauth.ErrBadCredentials) {
		c.Header("WWW-Authenticate", callerauth.Challenge(err))
		c.Set(outcomeKey, string(outcome.Login))
		outcome.Write(c.Writer, http.StatusUnauthorized, outcome.New(outcome.Login, err.Error()))
		return nil, false
	}
	h.log.WithError(err).Error("api: authenticating a caller failed")
	c.Set(outcomeKey, string(outcome.Exception))
	outcome.Write(c.Writer, http.StatusInternalServerError, outcome.New(outcome.Exception, "api: authenticating the caller failed; see the gateway log"))
	return nil, false
}

// headerList splits repeated and comma-separated header values.
func headerList(values []string) []string {
	var out []string
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
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

const (
	outcomeKey = "cqgate.outcome"
	callerKey  = "cqgate.caller"
)

// limited is a refusal by the rate limiter as the caller sees it: 429
// with Retry-After, or the caller's own cancellation while waiting.
func limited(err error) error {
	var le *ratelimit.LimitedError
	if errors.As(err, &le) {
		return outcome.Errorf(http.StatusTooManyRequests, outcome.Throttled, "api: %w", err)
	}
	return err
}

// forwardedMethods are the methods of FHIR's RESTful API, and OPTIONS.
// Anything else is refused before it reaches a tenant: a FHIR server that
// answers TRACE echoes the request it got, cqgate's bearer token
// included, and CONNECT asks for a tunnel.
var forwardedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// methodOverrideHeaders make some servers treat a request as another
// method than the one the caller's policy was checked against.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// checkMethod refuses methods cqgate does not forward (405, with Allow)
// and method-override headers (400).
func checkMethod(c *gin.Context) error {
	if m := c.Request.Method; !forwardedMethods[m] {
		c.Header("Allow", allowedMethods)
		return outcome.Errorf(http.StatusMethodNotAllowed, outcome.NotSupported,
			"api: method %q is not forwarded to FHIR servers (allowed: %s)", m, allowedMethods)
	}
	for _, name := range methodOverrideHeaders {
		if _, ok := c.Request.Header[name]; ok {
			return outcome.Errorf(http.StatusBadRequest, outcome.NotSupported,
				"api: %s is not forwarded; send the request with the method itself", name)
		}
	}
	return nil
}

// checkTarget refuses a request target (path and query, as the caller
// sent it) holding spaces or control characters. HTTP/1.1 cannot carry
// them, but HTTP/2's :path can, and net/http passes them on: a space in
// the query would be forwarded raw and split the tenant's request line.
func checkTarget(target string) error {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return outcome.Errorf(http.StatusBadRequest, outcome.Invalid,
				"api: the request target holds a space or control character (byte 0x%02x); percent-encode it", c)
		}
	}
	return nil
}

// credentialParams are query parameters that carry credentials to a
// resource server (RFC 6750 section 2.3). cqgate sends the tenant its own
// token; a caller's must not travel along in the URL, where the tenant
// would log it and might prefer it.
var credentialParams = []string{"access_token"}

// checkQuery refuses a query that carries a credential parameter, in any
// letter case or percent-encoding. The raw query is forwarded as it is,
// so pairs are split on ";" as well as "&": some servers take either.
func checkQuery(rawQuery string) error {
	for pair := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(pair, "=")
		if dec, err := url.QueryUnescape(name); err == nil {
			name = dec
		}
		for _, cred := range credentialParams {
			if strings.EqualFold(strings.TrimSpace(name), cred) {
				return outcome.Errorf(http.StatusBadRequest, outcome.Security,
					"api: the query parameter %s would carry a credential to the FHIR server; cqgate sends its own token", cred)
			}
		}
	}
	return nil
}
