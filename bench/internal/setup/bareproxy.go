package setup

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// BareProxy is the baseline a user would write instead of deploying
// cqgate: an httputil.ReverseProxy to target that sets a fixed
// Authorization header. Its transport has the same pooling and timeout
// settings as cqgate's (gateway.NewTransport), so that the comparison is
// of the work per request, not of connection pooling. With pooled, it reuses its copy
// buffers (ReverseProxy.BufferPool) as cqgate does; without, every
// response is copied through a fresh 32 KiB buffer, ReverseProxy's
// default.
func BareProxy(target *url.URL, authorization string, pooled bool) *httputil.ReverseProxy {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", authorization)
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
	}
	if pooled {
		rp.BufferPool = &bufferPool{}
	}
	return rp
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
