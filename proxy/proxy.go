package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/outcome"
	bounded "github.com/cqgate/cqgate/internal/upstream"
	"github.com/cqgate/cqgate/proxy/fhirurl"
	"github.com/cqgate/cqgate/tenant"
)

// RequestIDHeader carries the request id to the tenant and back.
const RequestIDHeader = "X-Request-Id"

// UpstreamRequestIDHeader carries the tenant's own request id back to the
// caller when it differs from cqgate's.
const UpstreamRequestIDHeader = "X-Upstream-Request-Id"

// FHIRJSON is the media type sent when the caller asked for none; Cerner
// answers 406 to requests without an explicit JSON Accept header.
const FHIRJSON = "application/fhir+json"

// Credentials hands out access tokens for a tenant.
type Credentials interface {
	// Token returns a valid access token for t, exchanging one if needed.
	Token(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error)
	// Refused says the FHIR server refused the token stale (a 401), so it
	// must not be handed out again.
	Refused(t *tenant.Tenant, stale *assertion.Token)
}

// Config configures a Proxy.
type Config struct {
	// Transport sends requests to FHIR servers; http.DefaultTransport
	// when nil. Its ResponseHeaderTimeout bounds the wait for a tenant.
	Transport http.RoundTripper
	// Private, when set, sends the requests of tenants allowed private
	// addresses (Tenant.AllowPrivate) instead of Transport: a pool of
	// its own that lets them through whatever the request's context
	// (egress.Pools.For). When nil, Transport sends them under a context
	// that allows them (Tenant.Context).
	Private     http.RoundTripper
	Credentials Credentials
	Logger      logrus.FieldLogger
	// MaxReplayBody is the largest request body buffered so the request
	// can be retried after a 401. Zero means bodies are never retried.
	MaxReplayBody int64
	// CheckGrant, when set, is asked before a request goes out whether
	// the token's granted scope covers it; its error is answered instead.
	CheckGrant func(t *tenant.Tenant, tok *assertion.Token, r *http.Request, fhirPath string) error
	// PublicBase says which scheme and host cqgate's own URLs carry in
	// rewritten responses; nil uses the request's own scheme and Host.
	PublicBase *PublicBase
	// Links seals bulk download links; nil seals them under a random
	// key made here (links then die with the process).
	Links *Links
	// Observer, when set, is told how long each partner took to answer
	// with its response header; nil tells no one.
	Observer UpstreamObserver
}

// UpstreamObserver records partners' latency; *metrics.Metrics is one.
type UpstreamObserver interface {
	// ObserveUpstream records the time from sending a request to org's
	// FHIR server (or a sealed link's URL) until its response header
	// came, a retry after a 401 and redirects cqgate follows included:
	// not the request's token, nor its body. A request that got no
	// answer is not observed.
	ObserveUpstream(org string, d time.Duration)
}

// Proxy forwards FHIR requests to tenants.
type Proxy struct {
	transport     *authTransport
	buffers       *bufferPool
	log           logrus.FieldLogger
	creds         Credentials
	maxReplayBody int64
	checkGrant    func(*tenant.Tenant, *assertion.Token, *http.Request, string) error
	public        *PublicBase
	links         *Links
	obs           UpstreamObserver
}

// New returns a Proxy.
func New(cfg Config) *Proxy {
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	log := cfg.Logger
	if log == nil {
		log = logrus.New()
	}
	p := &Proxy{log: log, maxReplayBody: cfg.MaxReplayBody, creds: cfg.Credentials, checkGrant: cfg.CheckGrant,
		public: cfg.PublicBase, links: cfg.Links, obs: cfg.Observer}
	if p.links == nil {
		// crypto/rand does not fail (it crashes the program instead).
		p.links, _ = NewLinks(nil)
	}
	p.transport = &authTransport{base: base, private: cfg.Private, creds: cfg.Credentials, log: log}
	p.buffers = newBufferPool()
	return p
}

// route is one request's state, from Forward to the end of serve: what
// Forward decided, the outbound request and the per-request wrappers,
// all in one allocation.
type route struct {
	tenant    *tenant.Tenant
	path      string
	requestID string
	// token is the access token the request is sent with (nil for a
	// sealed link's request sent without one); retryToken the one its
	// retry after a 401 was sent with, if any.
	token, retryToken *assertion.Token
	// bearer is token's Authorization header value (Token.Authorization).
	bearer []string
	// out is the request sent to the tenant, url its URL and body the
	// caller's body as it carries it (serve's outbound).
	out  http.Request
	url  url.URL
	body requestBody
	// trailers cleans the answer's trailers (modifyResponse).
	trailers trailerGuard
	// rw rewrites the partner's URLs in the response; nil when the
	// tenant's base cannot be mapped (the response passes as it is).
	rw *fhirurl.Rewriter
	// callerGzip says the caller accepts a gzip-coded answer.
	callerGzip bool
	// download is the sealed link being fetched (a file's or, with
	// Link.Status, a status URL's), and dl its URL.
	download *Link
	dl       *url.URL
	// audit is the request's audit record, when there is one.
	audit *audit.Record
	// pre yields the start of a streamed JSON answer, read to check
	// whether it is a bulk manifest, and then the rest.
	pre prefixBody
	// src exchanges for the request's token on a cache miss (Tokens).
	src exchangeOnMiss
}

// Forward sends r to t's FHIR server at fhirPath (as returned by
// ParsePath) with r's query, and streams the answer to w (serve).
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, fhirPath string) {
	rt := &route{tenant: t, path: fhirPath, requestID: RequestID(headerValue(r.Header, RequestIDHeader))}
	if err := p.prepareBody(r); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = failure.Errorf(failure.TooLarge, "proxy: the request body is larger than the %d bytes allowed (server.max_body_bytes)", tooLarge.Limit)
		} else {
			err = failure.Errorf(failure.Invalid, "proxy: reading the request body: %v", err)
		}
		outcome.WriteErrorFor(w, r, err)
		return
	}
	if ids := w.Header()[RequestIDHeader]; len(ids) != 1 || ids[0] != rt.requestID {
		w.Header()[RequestIDHeader] = []string{rt.requestID}
	}
	scheme, host, err := p.public.origin(r)
	if err != nil {
		outcome.WriteErrorFor(w, r, failure.Errorf(failure.Invalid, "%w", err))
		return
	}
	if rt.rw, err = rewriter(t, scheme, host); err != nil {
		// A base the mapper cannot take (a query in it): its answers
		// could not be rewritten, and would hand the caller the
		// partner's URLs, so nothing is forwarded.
		p.errorHandler(w, r, rt, failure.Errorf(failure.UpstreamFailed,
			"proxy: the FHIR base of %s cannot be mapped to cqgate's URLs (%v), so cqgate does not forward to it", t.OID, err))
		return
	}
	rt.audit = audit.FromContext(r.Context())
	rt.callerGzip = acceptsGzip(r.Header["Accept-Encoding"])
	if sealed, ok := strings.CutPrefix(fhirPath, "/"+DownloadSegment+"/"); ok {
		if !p.prepareDownload(w, r, rt, sealed) {
			return
		}
	} else {
		// The token is had before the outbound request is built, which
		// carries it; the transport sends that request as it is.
		tok, err := p.token(r.Context(), t, rt)
		if err != nil {
			p.errorHandler(w, r, rt, err)
			return
		}
		if p.checkGrant != nil {
			if err := p.checkGrant(t, tok, r, fhirPath); err != nil {
				p.errorHandler(w, r, rt, err)
				return
			}
		}
		rt.token, rt.bearer = tok, tok.Authorization()
	}
	p.serve(w, r, rt)
}

// token gets the request's token from the credentials; the gateway's
// own (Tokens) exchange on a miss through a source that is part of rt.
func (p *Proxy) token(ctx context.Context, t *tenant.Tenant, rt *route) (*assertion.Token, error) {
	if tokens, ok := p.creds.(*Tokens); ok {
		return tokens.token(ctx, t, &rt.src)
	}
	return p.creds.Token(ctx, t)
}

// StaleHeader names the sources whose answers were served past their TTL
// because the source was failing (stale-if-error).
const StaleHeader = "X-Cqgate-Stale"

// prepareBody buffers a body of at most MaxReplayBody bytes and makes it
// replayable through GetBody; a larger body is streamed and not replayed.
func (p *Proxy) prepareBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		r.Body, r.GetBody, r.ContentLength = http.NoBody, nil, 0
		return nil
	}
	if p.maxReplayBody <= 0 || r.ContentLength > p.maxReplayBody {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, p.maxReplayBody+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > p.maxReplayBody {
		// Unknown length and too large: stream what was read, then the rest.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	_ = r.Body.Close()
	r.ContentLength = int64(len(buf))
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

// callerOnlyHeaders are meant for cqgate, never for the tenant: the
// caller's own credentials (cqgate adds the tenant's token itself) and the
// headers that shape which token is used.
var callerOnlyHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key",
	"X-Cqgate-Scope", "X-Purpose-Of-Use", "Baggage", // W3C baggage: internal data; tracing propagates trace context only
	// Forwarding headers a caller could use to confuse the tenant about
	// who is asking; cqgate is the client.
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
}

// callerOnly reports whether k (canonical) is one of callerOnlyHeaders:
// a switch, which costs less than hashing k into a set (it is asked for
// every header of every request, twice).
func callerOnly(k string) bool {
	switch k {
	case "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key",
		"X-Cqgate-Scope", "X-Purpose-Of-Use", "Baggage",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip":
		return true
	}
	return false
}

// setAcceptEncoding asks the partner for gzip or identity, whatever the
// caller accepts, so that every JSON and XML answer can be rewritten
// (fhirurl undoes gzip). A Range request keeps the caller's own
// Accept-Encoding: a byte range is of the coded representation.
func setAcceptEncoding(h http.Header) {
	if _, ranged := h["Range"]; ranged {
		return
	}
	h["Accept-Encoding"] = acceptEncodingGzip
}

var acceptEncodingGzip = []string{fhirurl.AcceptEncoding}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip
// (explicitly, not through "*", and not with q=0).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				return false
			}
			return true
		}
	}
	return false
}

// noPreference reports whether an Accept header leaves the media type
// open: absent, empty, or only "*/*" (curl's and many libraries' default).
// Such requests get FHIR JSON, which Cerner insists on being asked for.
func noPreference(accept []string) bool {
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if mt = strings.TrimSpace(mt); mt != "" && mt != "*/*" {
				return false
			}
		}
	}
	return true
}

// tenantOnly reports whether k (canonical) is a response header of a
// tenant that never reaches the caller, as headers or as trailers. The tenant's cookies belong to
// cqgate's session with the tenant and must not be shared between
// callers; CORS headers would let any web page read the answers through
// cqgate (which is not for browsers); Alt-Svc would send the caller's
// client elsewhere for cqgate's own origin. Hop-by-hop headers
// (Connection and those it names, Keep-Alive, Proxy-Authenticate, TE,
// Trailer, Transfer-Encoding, Upgrade) are dropped too (removeHopByHop).
func tenantOnly(k string) bool {
	switch k {
	case "Set-Cookie", "Set-Cookie2",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
		"Alt-Svc":
		return true
	}
	return false
}

// dropTenantOnly deletes the tenant-only headers (by canonical name) of
// h: one pass over h, no lookup per name.
func dropTenantOnly(h http.Header) {
	for k := range h {
		if tenantOnly(k) {
			delete(h, k)
		}
	}
}

// trailerGuard drops tenant-only trailers, which the transport adds to
// resp.Trailer (announced or not) when the body ends, and redacts
// cqgate's tokens in them, before serve copies them to the caller.
type trailerGuard struct {
	io.ReadCloser
	resp *http.Response
	rt   *route
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		g.clean()
	}
	return n, err
}

func (g *trailerGuard) Close() error {
	err := g.ReadCloser.Close()
	g.clean()
	return err
}

func (g *trailerGuard) clean() {
	dropTenantOnly(g.resp.Trailer)
	g.rt.scrubTokens(g.resp.Trailer)
}

// MaxErrorBody is the most of a tenant's error answer (4xx, 5xx) cqgate
// reads: each is read whole, before the caller sees it, so that an echo
// of cqgate's token can be redacted. A larger one is a 502.
const MaxErrorBody = 256 << 10

// tokens are the access tokens this request was sent with.
func (rt *route) tokens() (string, string) {
	var tok, retry string
	if rt.token != nil {
		tok = rt.token.AccessToken
	}
	if rt.retryToken != nil {
		retry = rt.retryToken.AccessToken
	}
	return tok, retry
}

// scrubTokens redacts cqgate's access tokens wherever a tenant echoed
// them in h (raw, percent-encoded or JSON-escaped). Allocation-free when
// there is nothing to redact.
func (rt *route) scrubTokens(h http.Header) {
	tok, retry := rt.tokens()
	for _, vs := range h {
		for i, v := range vs {
			if bounded.Contains(v, tok) || bounded.Contains(v, retry) {
				vs[i] = bounded.Scrub(v, tok, retry)
			}
		}
	}
}

// checkErrorBody reads a tenant's error answer (at most MaxErrorBody
// bytes, gzip decoded) and redacts cqgate's tokens in it, so that a tenant
// echoing the request it refused cannot hand the caller cqgate's token.
// Success bodies are streamed as they are, unread.
func (rt *route) checkErrorBody(resp *http.Response) error {
	fail := func(err error) error {
		_ = resp.Body.Close()
		return rt.upstreamError(resp.Request.URL, err)
	}
	body := io.Reader(resp.Body)
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return fail(fmt.Errorf("error answer (status %d) is not valid gzip: %w", resp.StatusCode, err))
		}
		body = zr
	default:
		return fail(fmt.Errorf("error answer (status %d) has Content-Encoding %q, which cqgate cannot check", resp.StatusCode, enc))
	}
	buf, err := io.ReadAll(io.LimitReader(body, MaxErrorBody+1))
	if err != nil {
		return fail(fmt.Errorf("reading the error answer (status %d): %w", resp.StatusCode, err))
	}
	if len(buf) > MaxErrorBody {
		return fail(fmt.Errorf("error answer (status %d) is larger than the %d bytes cqgate reads", resp.StatusCode, MaxErrorBody))
	}
	_ = resp.Body.Close()
	dropTenantOnly(resp.Trailer)
	rt.scrubTokens(resp.Trailer)
	tok, retry := rt.tokens()
	if text := string(buf); tok != "" || retry != "" {
		// Raw, percent-encoded, JSON-escaped or base64-encoded.
		if clean := bounded.Scrub(text, tok, retry); clean != text {
			buf = []byte(clean)
		}
	}
	resp.Header.Del("Content-Encoding")
	if len(resp.Trailer) > 0 {
		// Trailers follow a chunked body only: no Content-Length.
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	} else {
		resp.Header.Set("Content-Length", strconv.Itoa(len(buf)))
		resp.ContentLength = int64(len(buf))
	}
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	return nil
}

// modifyResponse prepares the tenant's answer for the caller: tenant-only
// headers dropped, token echoes redacted (an error answer read whole for
// that), the request ids set, the partner's URLs rewritten.
func (p *Proxy) modifyResponse(resp *http.Response, rt *route) error {
	// serve dropped the header's (removeHopByHop).
	dropTenantOnly(resp.Trailer)
	rt.scrubTokens(resp.Header)
	if isRedirect(resp.StatusCode) {
		dropBody(resp)
	}
	if resp.StatusCode >= 400 && resp.Body != nil && resp.Body != http.NoBody {
		if err := rt.checkErrorBody(resp); err != nil {
			return err
		}
	} else if resp.ContentLength < 0 && resp.Body != nil && resp.Body != http.NoBody {
		// Only a body of unknown length (chunked) can end in trailers.
		rt.trailers = trailerGuard{ReadCloser: resp.Body, resp: resp, rt: rt}
		resp.Body = &rt.trailers
	}
	// The caller gets cqgate's request id (also sent to the tenant) as
	// X-Request-Id, and the tenant's own id, if different, as
	// X-Upstream-Request-Id.
	if up := headerValue(resp.Header, RequestIDHeader); up != "" && up != rt.requestID {
		resp.Header.Set(UpstreamRequestIDHeader, up)
	}
	// Forward already put cqgate's id on the response; serve adds
	// upstream headers to it, so drop the upstream's to avoid two values.
	delete(resp.Header, RequestIDHeader)
	return p.rewriteResponse(resp, rt)
}

// isRedirect reports whether status is a redirect cqgate hands to the
// caller (mapped) or follows itself (authTransport.follow).
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// dropBody empties a redirect handed to the caller: its Location, mapped,
// is the answer, and its body (a link to the partner's own URL, and
// whatever the partner echoed of the request, cqgate's token included)
// is neither rewritten nor read for echoes, so it does not go on.
func dropBody(resp *http.Response) {
	if resp.Body != nil && resp.Body != http.NoBody {
		drain(resp.Body)
	}
	resp.Body, resp.ContentLength, resp.Trailer = http.NoBody, 0, nil
	for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Etag"} {
		delete(resp.Header, k)
	}
	resp.Header.Set("Content-Length", "0")
}

// UpstreamError is a failed call to a tenant's FHIR server.
type UpstreamError struct {
	OID string
	// URL is the upstream URL without its query, which may hold PHI; on
	// another origin than the FHIR base (Storage), its origin alone.
	URL string
	// Storage says the request went to another origin than the FHIR
	// base: a bulk file's storage or a status URL elsewhere, reached by
	// a sealed link or a redirect, whose path and signature the caller
	// never sees.
	Storage bool
	Err     error
}

func (e *UpstreamError) Error() string {
	if e.Storage {
		return fmt.Sprintf("proxy: %s, beside the FHIR server of %s (bulk file storage or a status URL): %v", e.URL, e.OID, e.Err)
	}
	return fmt.Sprintf("proxy: FHIR server of %s at %s: %v", e.OID, e.URL, e.Err)
}

// upstreamError is err of a request to u for rt: u named without its
// query, and by its origin alone when it is not the FHIR base's.
func (rt *route) upstreamError(u *url.URL, err error) *UpstreamError {
	if base := rt.tenant.BaseURL(); tenant.Origin(u) != tenant.Origin(&base) {
		return &UpstreamError{OID: rt.tenant.OID, URL: tenant.Origin(u), Storage: true, Err: err}
	}
	return &UpstreamError{OID: rt.tenant.OID, URL: redactQuery(u), Err: err}
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// errorHandler answers r, which failed before its answer's header was
// written: logged, and an OperationOutcome (outcome.WriteErrorFor, which
// notes its issue type on r's span and audit record).
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	fields := logrus.Fields{"request_id": rt.requestID, "oid": rt.tenant.OID}
	if rid := outcome.UpstreamRequestID(err); rid != "" {
		fields["upstream_request_id"] = rid
	}
	p.log.WithFields(fields).WithError(err).Warn("proxy: request failed")
	w.Header().Set(RequestIDHeader, rt.requestID)
	outcome.WriteErrorFor(w, r, err)
}

// RequestID returns the caller's request id when it is a sane token, or
// a new random one.
func RequestID(given string) string {
	if n := len(given); n > 0 && n <= 128 && printable(given) {
		return given
	}
	return newRequestID()
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

var (
	errNoRoute    = errors.New("proxy: request without a route")
	errBodyClosed = errors.New("proxy: the caller's body was read after the request ended")
)

// copyBufferSize is the size of the buffers serve copies bodies through.
const copyBufferSize = 32 << 10

// bufferPool pools copy buffers as array pointers: a slice converts to
// one and back without allocating, where pooling a *[]byte would allocate
// the slice header at every Put.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(v []byte) {
	if cap(v) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(v[:copyBufferSize]))
	}
}

// Upstream marks the error as a failed upstream call (a 502 or 504).
func (e *UpstreamError) Upstream() bool { return true }
