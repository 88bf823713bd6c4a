package setup

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Forwarder is the best plain net/http proxy the benchmark could write:
// the ceiling for a Go proxy on net/http, and so for cqgate. It is a
// minimal forwarder on http.Transport, without httputil.ReverseProxy and
// without a router: a shallow copy of the inbound request instead of
// ReverseProxy's deep Clone, a header copy that skips hop-by-hop headers
// in one pass instead of deleting them afterwards, no httptrace hooks, no
// X-Forwarded-For, no mime parsing of the answer, and a pooled copy
// buffer written through the server's own buffered writer (one write
// system call for a small answer's headers and body). It adds a fixed
// Authorization header, as the other baselines do.
//
// It is a benchmark baseline, not a product: it forwards what a FHIR
// read needs (method, path, query, headers, a body of known or unknown
// length, the answer's status, headers and body) and nothing else
// (no trailers, no 1xx, no upgrades, no Connection-listed headers).
type Forwarder struct {
	target        *url.URL
	authorization []string
	transport     http.RoundTripper
	bufs          sync.Pool
}

var _ http.Handler = (*Forwarder)(nil)

// NewForwarder forwards to target with the transport NewTunedTransport
// returns.
func NewForwarder(target *url.URL, authorization string) *Forwarder {
	return &Forwarder{
		target:        target,
		authorization: []string{authorization},
		transport:     NewTunedTransport(),
	}
}

// NewTunedTransport is the Forwarder's transport: pooled like cqgate's
// (64 idle connections per host), without compression negotiation (the
// answer passes as it comes), with 32 KiB socket buffers, HTTP/1.1 only
// (the benchmark upstream is plain HTTP).
func NewTunedTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

// hopByHop are the headers that belong to one connection (RFC 9110
// 7.6.1), checked by their canonical names.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := r.WithContext(r.Context()) // a shallow copy: the body and the rest are shared
	u := *f.target
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	out.URL, out.Host, out.RequestURI, out.Close = &u, "", "", false
	out.Header = make(http.Header, len(r.Header)+1)
	for k, vv := range r.Header {
		if !hopByHop(k) {
			out.Header[k] = vv // shared: the inbound request is not used again
		}
	}
	out.Header["Authorization"] = f.authorization
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := f.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		if !hopByHop(k) {
			h[k] = vv
		}
	}
	w.WriteHeader(resp.StatusCode)
	bp, _ := f.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 32<<10)
		bp = &b
	}
	defer f.bufs.Put(bp)
	// Not io.Copy: the server's ResponseWriter implements ReaderFrom,
	// which flushes the headers and writes the body with a system call
	// of its own.
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			panic(http.ErrAbortHandler) // the answer is cut: let the caller see it
		}
	}
}
