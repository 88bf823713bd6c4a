// Command bareproxy is the benchmark's baseline: the reverse proxy a user
// would write instead of deploying cqgate, a bare net/http/httputil
// ReverseProxy that adds a fixed Authorization header (a token obtained
// once, by hand) to every request.
//
//	BENCH_AUTHORIZATION='Bearer …' bareproxy -listen 127.0.0.1:0 -addr-file f -target http://127.0.0.1:9000
//
// The proxy is setup.BareProxy, whose transport pools connections like
// cqgate's; -buffer-pool gives it a pool of copy buffers as cqgate has.
// With -forwarder it is setup.Forwarder instead: the best plain net/http
// proxy the benchmark could write (no ReverseProxy), the ceiling for a Go
// proxy on net/http and so for cqgate. With -fasthttp it is
// setup.FastForwarder, the same on fasthttp: a reference point outside
// net/http.
// Listen address and target must be loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cqgate/cqgate/bench/internal/loopback"
	"github.com/cqgate/cqgate/bench/internal/setup"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(2)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	addrFile := flag.String("addr-file", "", "write the listening address here once ready")
	target := flag.String("target", "", "loopback http URL to forward to")
	authEnv := flag.String("authorization-env", "BENCH_AUTHORIZATION", "environment variable holding the Authorization header value to add")
	lifetime := flag.Duration("max-lifetime", 30*time.Minute, "exit after this long, whatever happens")
	pooled := flag.Bool("buffer-pool", false, "reuse copy buffers (ReverseProxy.BufferPool), as cqgate does")
	forwarder := flag.Bool("forwarder", false, "serve setup.Forwarder, a minimal forwarder on http.Transport, instead of a ReverseProxy")
	fast := flag.Bool("fasthttp", false, "serve setup.FastForwarder, the same forwarding on fasthttp, instead of a ReverseProxy")
	flag.Parse()
	if err := loopback.CheckAddr(*listen); err != nil {
		return err
	}
	u, err := loopback.CheckURL(*target)
	if err != nil {
		return err
	}
	auth := os.Getenv(*authEnv)
	if auth == "" {
		return fmt.Errorf("%s is empty: no Authorization header to add", *authEnv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	var handler http.Handler = setup.BareProxy(u, auth, *pooled)
	if *forwarder {
		handler = setup.NewForwarder(u, auth)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	serve, shutdown := serveHTTP(handler, ln)
	if *fast {
		serve, shutdown = serveFast(setup.NewFastServer(setup.NewFastForwarder(u, auth)), ln)
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return shutdown()
}

// serveHTTP serves h on ln with net/http, with the timeouts cqgate's
// server has.
func serveHTTP(h http.Handler, ln net.Listener) (serve, shutdown func() error) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	return func() error { return srv.Serve(ln) }, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}

// serveFast serves srv on ln.
func serveFast(srv *fasthttp.Server, ln net.Listener) (serve, shutdown func() error) {
	return func() error { return srv.Serve(ln) }, srv.Shutdown
}
