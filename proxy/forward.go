package proxy

import (
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/net/http/httpguts"

	"github.com/cqgate/cqgate/proxy/fhirurl"
)

// serve forwards r for rt and streams the answer to w, in this order:
// build the outbound request, send it (authTransport: the token, the
// retry after a 401, redirects to other origins), modify the response
// (modifyResponse), write the header, copy the body, then the trailers.
// An error before the header is written goes to errorHandler; a body
// that breaks off after it aborts the response (http.ErrAbortHandler),
// so that the caller never takes a truncated body for a whole one. The
// caller going away cancels the outbound request: it carries r's
// context.
//
// No httptrace hook is installed, so http.Transport skips interim (1xx)
// responses: neither they nor their headers reach the caller.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	out := rt.outbound(r)
	if out.Body != nil {
		// The transport's writer may outlive the round trip: after
		// serve, it cannot read the caller's body any more.
		defer out.Body.Close()
	}
	sent := time.Now()
	resp, err := p.transport.roundTrip(out, rt)
	if err != nil {
		p.errorHandler(w, r, rt, err)
		return
	}
	if p.obs != nil {
		p.obs.ObserveUpstream(rt.tenant.OID, time.Since(sent))
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	removeHopByHop(resp.Header)
	if err := p.modifyResponse(resp, rt); err != nil {
		_ = resp.Body.Close()
		p.errorHandler(w, r, rt, err)
		return
	}
	announced := writeHeader(w, resp)
	if err := p.copyBody(w, resp, rt); err != nil {
		_ = resp.Body.Close()
		panic(http.ErrAbortHandler)
	}
	_ = resp.Body.Close() // the trailers are in resp.Trailer now (trailerGuard has cleaned them)
	writeTrailers(w, resp, announced)
}

// outbound builds the one request sent to the tenant, in rt: a shallow
// copy of in (its context, method and body) with the tenant's URL and a
// header map of its own.
func (rt *route) outbound(in *http.Request) *http.Request {
	out := &rt.out
	// What Request.Clone copies, without the allocations: the context
	// (which the caller's going away cancels) and the method come along.
	*out = *in
	out.URL, out.Host, out.Close = &rt.url, "", false
	out.RequestURI, out.RemoteAddr, out.TLS, out.Response = "", "", nil, nil
	out.Form, out.PostForm, out.MultipartForm = nil, nil, nil
	// The caller's trailers are not forwarded: they could carry its
	// credentials past the header cleaning, and no FHIR interaction
	// uses request trailers.
	out.Trailer = nil
	if rt.download != nil && !rt.download.Status {
		rt.downloadRequest(in, out)
		return out
	}
	if in.ContentLength == 0 {
		// No body: nil lets http.Transport retry the request on a
		// connection that turned out to be closed.
		out.Body, out.GetBody = nil, nil
	} else if in.Body != nil {
		// The transport closes what it sends; the caller's body is the
		// server's to close.
		rt.body = requestBody{rc: in.Body}
		out.Body = &rt.body
	}
	if rt.download != nil {
		// A status link: a FHIR request to the status URL as the
		// partner gave it; the caller's query is not the partner's.
		rt.url = *rt.dl
		rt.url.Fragment, rt.url.RawFragment = "", ""
		out.Header = rt.header(in.Header)
		return out
	}
	base := rt.tenant.BaseURL()
	u := &rt.url
	*u = base
	// Join the escaped base path and the escaped FHIR path; ParsePath
	// validated the latter, so unescaping cannot fail.
	u.RawPath = base.EscapedPath() + rt.path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = in.URL.RawQuery
	u.Fragment, u.RawFragment = "", ""
	out.Header = rt.header(in.Header)
	return out
}

// header is the outbound request's header: the caller's, but for
// hop-by-hop headers (those Connection names too) and callerOnlyHeaders,
// with cqgate's Authorization (none for a status link to another party),
// request id, Accept and Accept-Encoding.
// Value slices are shared with the caller's request (header values are
// replaced, never changed in place), except those ownedValues names.
func (rt *route) header(in http.Header) http.Header {
	h := make(http.Header, headerSize(in))
	for k, vv := range in {
		if forwarded(k) {
			h[k] = vv
		}
	}
	for _, k := range ownedValues {
		if vv, ok := h[k]; ok {
			h[k] = append([]string(nil), vv...)
		}
	}
	deleteConnectionNamed(h, in["Connection"])
	if noPreference(h["Accept"]) {
		h["Accept"] = acceptFHIRJSON
	}
	if ids := h[RequestIDHeader]; len(ids) != 1 || ids[0] != rt.requestID {
		h[RequestIDHeader] = []string{rt.requestID}
	}
	setAcceptEncoding(h)
	if rt.bearer != nil {
		h["Authorization"] = rt.bearer
	}
	// Tell the tenant trailers are welcome when the caller said so
	// (as ReverseProxy does): cqgate passes them on.
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		h["Te"] = teTrailers
	}
	noDefaultUserAgent(h)
	return h
}

// forwarded reports whether the caller's header k goes to the tenant
// (Connection may still name it).
func forwarded(k string) bool { return !hopByHop(k) && !callerOnly(k) }

// headerSize is how many names header puts in the outbound header (at
// most: Connection may name some): the map is made that size, as a map
// of more than 8 costs two allocations more, and growing past 8 three.
func headerSize(in http.Header) int {
	n := 1 // Authorization
	for k := range in {
		if forwarded(k) {
			n++
		}
	}
	for _, k := range addedHeaders {
		if _, ok := in[k]; !ok {
			n++
		}
	}
	if _, ok := in["Te"]; ok {
		n++
	}
	return n
}

// addedHeaders are the names header adds when the caller sent none.
var addedHeaders = []string{RequestIDHeader, "Accept", "Accept-Encoding", "User-Agent"}

var (
	acceptFHIRJSON = []string{FHIRJSON}
	teTrailers     = []string{"trailers"}
	emptyValue     = []string{""}
)

// ownedValues are the request headers the tracing transport (in place,
// gateway/tracing.go) may overwrite in place: the outbound request gets
// copies of the caller's values, so that the caller's request is left
// as it came.
var ownedValues = []string{"Traceparent", "Tracestate"}

// noDefaultUserAgent keeps Go's own User-Agent off a request whose
// caller sent none.
func noDefaultUserAgent(h http.Header) {
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue
	}
}

// hopByHop reports whether k (canonical) is a hop-by-hop header (RFC
// 9110 7.6.1, and those RFC 2616 listed): it belongs to one connection
// and is never forwarded, either way.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// deleteConnectionNamed deletes from h the headers a Connection header
// (its values given) names as hop-by-hop.
func deleteConnectionNamed(h http.Header, connection []string) {
	for _, v := range connection {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" && !connectionOption(name) {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
}

// connectionOption reports whether a Connection value names no header
// that could still be in the map: "close", or "keep-alive", "upgrade" or
// "te", hop-by-hop names dropped anyway. The common ones then cost no
// canonical copy of the name.
func connectionOption(name string) bool {
	return strings.EqualFold(name, "close") || strings.EqualFold(name, "keep-alive") ||
		strings.EqualFold(name, "upgrade") || strings.EqualFold(name, "te")
}

// removeHopByHop removes the hop-by-hop headers of a tenant's answer,
// and its tenant-only ones (tenantOnly), in one pass.
func removeHopByHop(h http.Header) {
	deleteConnectionNamed(h, h["Connection"])
	for k := range h {
		if hopByHop(k) || tenantOnly(k) {
			delete(h, k)
		}
	}
}

// requestBody is the caller's body as the outbound request carries it:
// the transport's Close does not close the caller's body (the server's
// to close, and closing it could wait on a caller that has not sent it
// yet), and once serve returns it is not read any more.
type requestBody struct {
	rc     io.ReadCloser
	closed atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	return b.rc.Read(p)
}

func (b *requestBody) Close() error {
	b.closed.Store(true)
	return nil
}

// headerValue is h's first value of k, a canonical name (Header.Get
// without canonicalizing k again).
func headerValue(h http.Header, k string) string {
	if vv := h[k]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// addValues adds src's values to dst, each name's slice assigned when
// dst has no values of that name (the common case: no copy), appended to
// a copy of dst's when it has (a header cqgate set itself, such as
// X-Cqgate-Stale, keeps its values first). prefix is put before each
// name.
func addValues(dst, src http.Header, prefix string) {
	for k, vv := range src {
		if prefix != "" {
			k = prefix + k
		}
		if cur, ok := dst[k]; ok {
			dst[k] = append(cur[:len(cur):len(cur)], vv...)
		} else {
			dst[k] = vv
		}
	}
}

// writeHeader writes the answer's status and header to w, announcing
// the trailers the answer announced. It returns how many it announced.
func writeHeader(w http.ResponseWriter, resp *http.Response) int {
	h := w.Header()
	addValues(h, resp.Header, "")
	// http.Transport moves a Trailer header into resp.Trailer's keys.
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	return announced
}

// writeTrailers sets the answer's trailers (complete once its body is
// closed) on w: under their names when they are those announced, else
// with http.TrailerPrefix, which net/http sends as trailers unannounced.
func writeTrailers(w http.ResponseWriter, resp *http.Response, announced int) {
	if len(resp.Trailer) == 0 {
		return
	}
	// Chunked, even for a short body: net/http would otherwise send a
	// Content-Length and no trailers.
	_ = http.NewResponseController(w).Flush()
	prefix := ""
	if len(resp.Trailer) != announced {
		prefix = http.TrailerPrefix
	}
	addValues(w.Header(), resp.Trailer, prefix)
}

// streams reports whether an answer is flushed to the caller after
// every write: one of unknown length (chunked from the tenant, or
// rewritten on the way: a bulk NDJSON file, a search Bundle) or an event
// stream, as ReverseProxy decides.
func streams(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct := resp.Header["Content-Type"]
	return len(ct) > 0 && strings.EqualFold(fhirurl.MediaType(ct[0]), "text/event-stream")
}

// copyBody streams the answer's body to w through a pooled buffer,
// flushing after every write when it streams (and the header at once,
// before the first byte of the body comes). It returns the read or write
// error that broke the copy off, having logged a read error.
func (p *Proxy) copyBody(w http.ResponseWriter, resp *http.Response, rt *route) error {
	var rc *http.ResponseController
	if streams(resp) {
		rc = http.NewResponseController(w)
		_ = rc.Flush()
	}
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr == nil && m != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return werr // the caller went away: nothing to tell it
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if rt.out.Context().Err() == nil { // not the caller going away
				p.log.WithFields(logrus.Fields{"request_id": rt.requestID, "oid": rt.tenant.OID}).WithError(rerr).
					Warn("proxy: the answer broke off mid-body; the caller's response is aborted")
			}
			return rerr
		}
	}
}
