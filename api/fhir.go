package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/proxy/fhirurl"
	"github.com/cqgate/cqgate/tenant"
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

// fhir serves /fhir/{oid}/{fhir-path}: the steps of the request path in
// order (steps), then forward. The first step that fails ends the request
// with its error as an OperationOutcome (fail). Nothing reaches the
// directory, Vault or the tenant before the caller is authenticated and
// allowed.
func (h *handlers) fhir(c *gin.Context) {
	// On the stack: the steps are called directly, so nothing makes the
	// call escape (a slice of step functions would).
	call := fhirCall{c: c, rec: audit.Record{Time: time.Now(), Method: c.Request.Method, RemoteAddr: c.Request.RemoteAddr}}
	h.begin(&call)
	defer h.finish(&call)
	if err := h.steps(&call); err != nil {
		call.rec.Error = string(h.fail(c, call.rec.OID, err))
		return
	}
	h.forward(&call)
}

// steps is the request path of /fhir/{oid}/{fhir-path}, in order; each
// step is a small function with a test of its own (chain_test.go).
func (h *handlers) steps(call *fhirCall) error {
	if err := h.authenticateCall(call); err != nil { // 401: who is calling
		return err
	}
	if err := refuseHostile(call); err != nil { // 405, 400: methods and shapes never forwarded
		return err
	}
	if err := parseTarget(call); err != nil { // 400: the OID, the FHIR path, the query, the token headers
		return err
	}
	if err := h.authorize(call); err != nil { // 403: the caller's policy, the scope asked for
		return err
	}
	if err := h.limitBody(call); err != nil { // 413: a body larger than allowed, by its length
		return err
	}
	if err := h.authorizeBatch(call); err != nil { // 403, 415: each entry of a batch or transaction Bundle
		return err
	}
	if err := h.checkSearchBody(call); err != nil { // 400, 413: the parameters of a POST _search body
		return err
	}
	if err := h.resolveTenant(call); err != nil { // 404, 502, 504: directory, discovery, purposes of use
		return err
	}
	if err := h.rateLimit(call); err != nil { // 429: cqgate's own rate to the organization
		return err
	}
	return tokenContext(call) // the token context the request is sent with
}

// fhirCall is one FHIR request on its way down the path: what the steps
// found out so far.
type fhirCall struct {
	c  *gin.Context
	id *callerauth.Identity
	// path is the checked FHIR path (proxy.ParsePath).
	path string
	// scope is X-Cqgate-Scope, purposes X-Purpose-Of-Use.
	scope    string
	purposes []string
	// xp is X-Cqgate-Exchange-Purpose.
	xp string
	// tenant is set once the OID resolved; its OID labels metrics.
	tenant *tenant.Tenant
	// rec is the audit record; rec.OID is the OID asked for, audited
	// even when refused.
	rec audit.Record
	// forwarded is when the tenant's answer was passed on (the audit
	// record's end, read once); zero when the request was not forwarded
	// or its answer was aborted.
	forwarded time.Time
}

// take puts into call's audit record what the proxy noted in a record
// of its own: a bulk export event, the issue type of a failure the
// proxy answered.
func (call *fhirCall) take(noted *audit.Record) {
	call.rec.Bulk = noted.Bulk
	if noted.Error != "" {
		call.rec.Error = noted.Error
	}
}

// begin counts the request in flight.
func (h *handlers) begin(*fhirCall) {
	if h.Observer != nil {
		h.Observer.InflightInc()
	}
}

// finish records the answered request: metrics (labelled by the tenant's
// OID, only once it resolved) and the audit record (record). A panic
// below it is answered here first, as the recoverer would answer it
// (answerPanic), so that both say what the caller got: a 500 with an
// exception OperationOutcome. An aborted response (a panic of
// http.ErrAbortHandler) is recorded as it stands, and its panic goes on
// up, for the server to abort the response.
func (h *handlers) finish(call *fhirCall) {
	if v := recover(); v != nil {
		if aborts(v) {
			call.rec.Aborted = true
			h.record(call)
			panic(v)
		}
		code, abort := h.answerPanic(call.c, v)
		call.rec.Error, call.rec.Aborted = string(code), abort
		h.record(call)
		if abort {
			panic(http.ErrAbortHandler)
		}
		return
	}
	h.record(call)
}

// record writes the metrics and the audit record of call.
func (h *handlers) record(call *fhirCall) {
	c, rec := call.c, &call.rec
	status := c.Writer.Status()
	if h.Observer != nil {
		var oid string
		if call.tenant != nil {
			oid = call.tenant.OID
		}
		h.Observer.ObserveRequest(oid, c.Request.Method, status)
		h.Observer.InflightDec()
	}
	if h.Audit == nil {
		return
	}
	rec.RequestID = headerValue(c.Writer.Header(), proxy.RequestIDHeader)
	end := call.forwarded
	if end.IsZero() {
		end = time.Now()
	}
	rec.Status, rec.Duration = status, end.Sub(rec.Time)
	rec.UpstreamRequestID = headerValue(c.Writer.Header(), proxy.UpstreamRequestIDHeader)
	if err := h.Audit.Write(rec); err != nil {
		if h.Observer != nil {
			h.Observer.AuditWriteError()
		}
		h.log.WithError(err).WithField("request_id", rec.RequestID).Warn("api: writing the audit record failed")
	}
}

// authenticateCall identifies the caller.
func (h *handlers) authenticateCall(call *fhirCall) error {
	id, err := h.identify(call.c)
	if err != nil {
		return err
	}
	call.id = id
	call.rec.Caller, call.rec.CallerMethod, call.rec.CallerSubject = id.Name, id.Method, id.Subject
	return nil
}

// refuseHostile refuses what is never forwarded, whatever the caller's
// policy: methods other than FHIR's (405, with Allow), method-override
// headers and request targets with spaces or control characters (400).
func refuseHostile(call *fhirCall) error {
	if err := checkMethod(call.c); err != nil {
		return err
	}
	return checkTarget(call.c.Request.RequestURI)
}

// parseTarget reads the OID and FHIR path from the escaped request path,
// checks the query, and reads the token headers (X-Cqgate-Scope,
// X-Purpose-Of-Use).
func parseTarget(call *fhirCall) error {
	r := call.c.Request
	rawOID, rawPath := splitFHIRPath(r)
	oid, err := directory.ParseOID(rawOID)
	if err != nil {
		return err
	}
	call.rec.OID = oid
	if call.path, err = proxy.ParsePath(rawPath); err != nil {
		return err
	}
	if err := checkQuery(r.URL.RawQuery); err != nil {
		return err
	}
	if err := checkAccept(r.Header["Accept"]); err != nil {
		return err
	}
	if wellKnown(call.path) {
		// The partner's .well-known documents (smart-configuration,
		// udap) name its OAuth endpoints: a client that used them would
		// go around cqgate, which does the partner's authorization
		// itself.
		return failure.Errorf(failure.NotFound,
			"api: %s is not served through cqgate: cqgate authorizes with the organization itself, and its callers use cqgate's own authentication", call.path)
	}
	call.rec.SetPath(call.path)
	call.purposes = headerList(r.Header[PurposeOfUseHeader])
	call.scope = strings.TrimSpace(headerValue(r.Header, ScopeHeader))
	if !callerauth.ValidScope(call.scope) {
		return failure.Errorf(failure.Invalid, "api: %s is not an OAuth scope: scope tokens of printable ASCII separated by single spaces (RFC 6749 section 3.3)", ScopeHeader)
	}
	call.xp = strings.TrimSpace(headerValue(r.Header, ExchangePurposeHeader))
	delete(r.Header, ExchangePurposeHeader) // for cqgate, never for the tenant
	call.rec.PurposeOfUse, call.rec.Scope, call.rec.ExchangePurpose = call.purposes, call.scope, call.xp
	return nil
}

// authorize checks a narrower scope asked for against the organization's,
// and the caller's policy (organization, method, path, scope, purposes of
// use).
func (h *handlers) authorize(call *fhirCall) error {
	oid, scope := call.rec.OID, call.scope
	if scope != "" {
		if configured := h.Tenants.Scope(oid); !callerauth.ScopeCovers(configured, scope) {
			return failure.Errorf(failure.Forbidden,
				"api: %s %q asks for more than the scope configured for %s (%q)", ScopeHeader, scope, oid, configured)
		}
	}
	if h.Policy == nil {
		return nil
	}
	return h.Policy.Authorize(call.id, h.policyRequest(call))
}

// policyRequest is the request as the caller's policy sees it.
func (h *handlers) policyRequest(call *fhirCall) callerauth.Request {
	effective := call.scope
	if effective == "" {
		effective = h.Tenants.Scope(call.rec.OID)
	}
	return callerauth.Request{OID: call.rec.OID, Method: call.c.Request.Method, FHIRPath: call.path, Scope: effective, PurposesOfUse: call.purposes,
		ExchangePurpose: call.xp}
}

// authorizeBatch applies the caller's policy to every entry of a batch or
// transaction Bundle POSTed to the organization's base (checkBatch).
func (h *handlers) authorizeBatch(call *fhirCall) error {
	if h.Policy == nil || call.c.Request.Method != http.MethodPost || call.path != "" {
		return nil
	}
	return h.checkBatch(call.c.Request, call.id, h.policyRequest(call), h.MaxBodyBytes)
}

// checkSearchBody holds a POST _search's form-encoded body (FHIR
// search parameters, RFC 6750's access_token too) to the rules
// checkQuery holds the query to, and leaves its parameters in the
// request's PostForm, where the granted-scope check reads them with the
// query. The body is read whole (server.max_body_bytes) and put back.
func (h *handlers) checkSearchBody(call *fhirCall) error {
	r := call.c.Request
	if r.Method != http.MethodPost || (call.path != "/_search" && !strings.HasSuffix(call.path, "/_search")) {
		return nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil
	}
	if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		// Read in another charset, the server's parameters would not be
		// the ones checked here.
		return failure.Errorf(failure.UnsupportedMediaType,
			"api: a POST _search body in charset %q: cqgate checks search parameters in UTF-8 only", echo(cs))
	}
	if enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return failure.Errorf(failure.UnsupportedMediaType,
			"api: a POST _search body must not be content-encoded (got %q): cqgate checks its parameters", echo(enc))
	}
	buf, err := holdBody(r, h.MaxBodyBytes)
	if err != nil {
		return err
	}
	if err := checkQuery(string(buf)); err != nil {
		return err
	}
	form, err := url.ParseQuery(string(buf))
	if err != nil {
		return failure.Errorf(failure.Invalid, "api: the POST _search body is not a form: %v", err)
	}
	r.PostForm = form
	return nil
}

// limitBody refuses a body whose Content-Length is over
// server.max_body_bytes; tokenContext bounds a body of unknown length.
func (h *handlers) limitBody(call *fhirCall) error {
	if n := call.c.Request.ContentLength; h.MaxBodyBytes > 0 && n > h.MaxBodyBytes {
		return failure.Errorf(failure.TooLarge,
			"api: request body of %d bytes is larger than the %d bytes allowed (server.max_body_bytes)", n, h.MaxBodyBytes)
	}
	return nil
}

// resolveTenant finds the organization's tenant (directory, discovery)
// and the purposes of use it is asked to assert.
func (h *handlers) resolveTenant(call *fhirCall) error {
	t, err := h.Tenants.Resolve(call.c.Request.Context(), call.rec.OID)
	if err == nil {
		t, err = t.WithPurposes(call.purposes)
	}
	if err == nil {
		t, err = t.WithExchangePurpose(call.xp)
	}
	if err != nil {
		return err
	}
	// The tenant's OID, not the one asked for: labels and rate-limit
	// buckets keep it, and the other may be a slice of the request line.
	call.tenant = t
	return nil
}

// rateLimit takes the organization's next turn under cqgate's own rate
// limit (429 with Retry-After beyond it).
func (h *handlers) rateLimit(call *fhirCall) error {
	if h.Limiter == nil {
		return nil
	}
	if err := h.Limiter.Wait(call.c.Request.Context(), call.tenant.OID); err != nil {
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			return fmt.Errorf("api: %w", err)
		}
		return err
	}
	return nil
}

// tokenContext settles the token context the request is sent with: the
// scope asked for (the purposes of use were settled with the tenant).
func tokenContext(call *fhirCall) error {
	c := call.c
	call.tenant = call.tenant.WithScope(call.scope)
	if call.tenant.DirectoryStale {
		c.Header(StaleHeader, "directory")
	}
	return nil
}

// forward sends the request to the tenant, its body bounded, without a
// protocol upgrade, and notes when its answer was passed on. The proxy
// sends it through the tenant's egress pool (allow_private_addresses),
// asks for its token in the tenant's context itself, and times the
// partner's answer (proxy.Config.Observer).
func (h *handlers) forward(call *fhirCall) {
	c, t := call.c, call.tenant
	if body := c.Request.Body; h.MaxBodyBytes > 0 && body != nil && body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, body, h.MaxBodyBytes)
	}
	// A protocol upgrade (WebSocket, h2c) would turn the request into a
	// tunnel to the tenant that no longer passes through cqgate's checks;
	// without Upgrade the request is forwarded as a plain one.
	delete(c.Request.Header, "Upgrade")
	req := c.Request
	if h.Audit != nil {
		// The proxy notes what the router cannot see (bulk export
		// events: kick-off, completion, downloads; the issue type of a
		// failure it answers) in a record of its own, so that call
		// stays on the stack. It is taken on every way out of Forward,
		// an aborted download's too.
		noted := new(audit.Record)
		req = req.WithContext(audit.NewContext(req.Context(), noted))
		defer call.take(noted)
	}
	h.Proxy.Forward(c.Writer, req, t, call.path)
	call.forwarded = time.Now()
}

// StaleHeader names the sources whose answers were served past their TTL
// because the source was failing (stale-if-error).
const StaleHeader = proxy.StaleHeader

// fail is the router's side of the error boundary: err becomes an
// OperationOutcome (outcome.WriteErrorFor, the one place that maps a
// failure's kind to a status and issue type, and puts the issue type on
// the request's span); a refusal is logged at info, a failure (5xx) at
// warn, when the OID is known. It returns the issue type written, for
// the audit record.
func (h *handlers) fail(c *gin.Context, oid string, err error) outcome.IssueType {
	status, code := outcome.WriteErrorFor(c.Writer, c.Request, err)
	if oid == "" {
		return code
	}
	entry := h.log.WithFields(logrus.Fields{"oid": oid, "status": status, "request_id": c.Request.Header.Get(proxy.RequestIDHeader)})
	if rid := outcome.UpstreamRequestID(err); rid != "" {
		entry = entry.WithField("upstream_request_id", rid)
	}
	if status >= 500 {
		entry.WithError(err).Warn("api: request failed")
	} else {
		entry.WithError(err).Info("api: request refused")
	}
	return code
}

// authenticate is the directory routes' authentication step.
func (h *handlers) authenticate(c *gin.Context) {
	id, err := h.identify(c)
	if err != nil {
		h.fail(c, "", err)
		c.Abort()
		return
	}
	c.Set(callerKey, id)
}

// errAuthFailed answers an authenticator that failed (rather than
// refused): the details are in the log.
var errAuthFailed = failure.New(failure.Internal, "api: authenticating the caller failed; see the gateway log")

// identify identifies the caller. A refusal is Unauthenticated and sets
// WWW-Authenticate.
func (h *handlers) identify(c *gin.Context) (*callerauth.Identity, error) {
	if h.Auth == nil {
		return h.anonymous, nil
	}
	id, err := h.Auth.Authenticate(c.Request)
	if err == nil {
		return id, nil
	}
	if errors.Is(err, callerauth.ErrUnauthenticated) || errors.Is(err, callerauth.ErrBadCredentials) {
		c.Header("WWW-Authenticate", callerauth.Challenge(err))
		return nil, err
	}
	h.log.WithError(err).Error("api: authenticating a caller failed")
	return nil, errAuthFailed
}

// headerValue is h.Get(key) for a key already in canonical form (the
// header names above, proxy's): a map lookup without canonicalizing the
// key again.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
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

const callerKey = "cqgate.caller"

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
		return failure.Errorf(failure.MethodNotAllowed,
			"api: method %q is not forwarded to FHIR servers (allowed: %s)", m, allowedMethods)
	}
	for _, name := range methodOverrideHeaders {
		if _, ok := c.Request.Header[name]; ok {
			return failure.Errorf(failure.Unsupported,
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
			return failure.Errorf(failure.Invalid,
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
		name, value, _ := strings.Cut(pair, "=")
		if dec, err := url.QueryUnescape(name); err == nil {
			name = dec
		}
		if strings.TrimSpace(name) == "_format" {
			if err := checkFormat(value); err != nil {
				return err
			}
		}
		for _, cred := range credentialParams {
			if strings.EqualFold(strings.TrimSpace(name), cred) {
				return failure.Errorf(failure.Insecure,
					"api: the query parameter %s would carry a credential to the FHIR server; cqgate sends its own token", cred)
			}
		}
	}
	return nil
}

// wellKnown reports whether the FHIR path, percent-escapes undone (a
// server undoes "%2E"), is under /.well-known/. No allocation without a
// '%'.
func wellKnown(escaped string) bool {
	p := escaped
	if strings.IndexByte(p, '%') >= 0 {
		if dec, err := url.PathUnescape(p); err == nil {
			p = dec
		}
	}
	const prefix = "/.well-known/"
	return len(p) >= len(prefix) && strings.EqualFold(p[:len(prefix)], prefix)
}

// unrewritable are the FHIR formats (by media type) whose answers
// cqgate cannot rewrite: RDF Turtle and HTML.
var unrewritable = []string{"text/turtle", "application/x-turtle", "application/fhir+turtle", "text/html", "application/xhtml+xml"}

// checkAccept refuses an Accept that prefers a format cqgate cannot
// rewrite (unrewritable), as checkFormat refuses such a _format: the
// server answers in the type of highest q (RFC 9110 section 12.5.1), and
// the partner's URLs in Turtle or HTML would reach the caller as they
// are. Such a type wins when its q is above every other type's, or equal
// to the best and listed first. An Accept whose best type is JSON, XML,
// NDJSON, a Binary's own type or */* passes. It runs on every request
// and allocates nothing.
func checkAccept(values []string) error {
	bestOther, bestRefused, refused := -1, -1, ""
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(part, ";")
			if mt = strings.TrimSpace(mt); mt == "" {
				continue
			}
			q := quality(params)
			if q == 0 {
				continue
			}
			if !slices.ContainsFunc(unrewritable, func(u string) bool { return strings.EqualFold(u, mt) }) {
				bestOther = max(bestOther, q)
				continue
			}
			if q > bestRefused && q > bestOther { // listed before any other of as high a q
				bestRefused, refused = q, mt
			}
		}
	}
	if refused == "" || bestRefused < bestOther {
		return nil
	}
	return failure.Errorf(failure.Unsupported,
		"api: Accept prefers %s: cqgate answers FHIR in JSON or XML only (it rewrites the partner's URLs in those; Turtle and HTML would carry them as they are)", refused)
}

// quality is a media range's q in thousandths (RFC 9110 section 12.4.2:
// 1000 when absent; 0 when unreadable, as not acceptable).
func quality(params string) int {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		whole, frac, _ := strings.Cut(strings.TrimSpace(value), ".")
		if len(frac) > 3 || whole != "0" && whole != "1" {
			return 0
		}
		q := int(whole[0]-'0') * 1000
		for i, scale := 0, 100; i < len(frac); i, scale = i+1, scale/10 {
			if frac[i] < '0' || frac[i] > '9' {
				return 0
			}
			q += int(frac[i]-'0') * scale
		}
		return min(q, 1000)
	}
	return 1000
}

// checkFormat refuses a _format cqgate cannot rewrite: the partner's
// URLs in a Turtle or HTML answer would reach the caller as they are.
// JSON and XML, by name or media type, pass.
func checkFormat(raw string) error {
	v, err := url.QueryUnescape(raw)
	if err != nil {
		v = raw
	}
	// An unencoded "+" (application/fhir+json) decodes to a space.
	v = strings.ReplaceAll(strings.TrimSpace(v), " ", "+")
	if strings.EqualFold(v, "json") || strings.EqualFold(v, "xml") || fhirurl.FormatOf(v) != fhirurl.None {
		return nil
	}
	return failure.Errorf(failure.Unsupported,
		"api: _format=%q: cqgate answers FHIR in JSON or XML only (it rewrites the partner's URLs in those; ttl and html would carry them as they are)", v)
}
