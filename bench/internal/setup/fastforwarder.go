package setup

import (
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// FastForwarder does what Forwarder does on fasthttp's server and client
// instead of net/http: a reference point outside net/http, for what a
// Go proxy that leaves net/http for the proxied path could cost. It is
// a benchmark baseline only; cqgate does not use fasthttp.
//
// Unlike Forwarder it reads the whole answer before it writes it
// (fasthttp's default), which costs nothing for the benchmark's 2 KB
// Patient but is no way to pass a bulk-data file on.
type FastForwarder struct {
	client        *fasthttp.HostClient
	host          string
	authorization string
}

// NewFastForwarder forwards to target's host over a connection pool like
// NewTunedTransport's (64 connections, 32 KiB buffers).
func NewFastForwarder(target *url.URL, authorization string) *FastForwarder {
	return &FastForwarder{
		client: &fasthttp.HostClient{
			Addr:                     target.Host,
			MaxConns:                 64,
			MaxIdleConnDuration:      90 * time.Second,
			ReadTimeout:              60 * time.Second,
			ReadBufferSize:           32 << 10,
			WriteBufferSize:          32 << 10,
			NoDefaultUserAgentHeader: true,
			DisablePathNormalizing:   true,
		},
		host:          target.Host,
		authorization: authorization,
	}
}

// fastHopByHop are the hop-by-hop headers (RFC 9110 7.6.1) fasthttp does
// not handle itself (it manages Connection and Transfer-Encoding).
var fastHopByHop = []string{"Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

// Serve is the fasthttp request handler.
func (f *FastForwarder) Serve(ctx *fasthttp.RequestCtx) {
	req := &ctx.Request
	for _, k := range fastHopByHop {
		req.Header.Del(k)
	}
	req.Header.Set("Authorization", f.authorization)
	req.Header.SetHost(f.host)
	if err := f.client.Do(req, &ctx.Response); err != nil {
		ctx.Response.Reset()
		ctx.Error("bad gateway", fasthttp.StatusBadGateway)
		return
	}
	for _, k := range fastHopByHop {
		ctx.Response.Header.Del(k)
	}
}

// NewFastServer is the server FastForwarder runs in, with the timeouts
// the other baselines' http.Server has.
func NewFastServer(f *FastForwarder) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               f.Serve,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           120 * time.Second,
		ReadBufferSize:        64 << 10, // MaxHeaderBytes of the others
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
}
