package gateway

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/connlimit"
	"github.com/cqgate/cqgate/internal/inflight"
	"github.com/cqgate/cqgate/internal/metrics"
)

// ServeOption adds to what Serve does.
type ServeOption func(*serveOptions)

type serveOptions struct {
	inflight inflight.Config
	conns    *connlimit.Listener
}

// CountRefusals counts the FHIR requests Serve answers 503 at
// cfg.MaxInflight (cqgate_inflight_rejected_total with *metrics.Metrics).
func CountRefusals(o inflight.Observer) ServeOption {
	return func(c *serveOptions) { c.inflight.Observer = o }
}

// LimitConnections tells Serve that its listener is, or is a TLS
// listener over, conns, so that the server reports to conns which
// connections are idle (see Listen).
func LimitConnections(conns *connlimit.Listener) ServeOption {
	return func(c *serveOptions) { c.conns = conns }
}

// Listen listens on addr for the API. With cfg.MaxConnections above 0
// the listener holds at most that many connections open, closing the
// one idle the longest (or one stalled without a request) to admit a new
// one (internal/connlimit); the returned ServeOption
// (nil otherwise) must then be passed to Serve. A TLS listener goes on
// top of the returned one. With m, the closes are counted and
// cqgate_connections_open reports the connections open.
func Listen(addr string, cfg config.Server, m *metrics.Metrics) (net.Listener, ServeOption, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || cfg.MaxConnections <= 0 {
		return ln, nil, err
	}
	capped := connlimit.New(ln, connlimit.Config{Max: cfg.MaxConnections, Observer: m})
	if m != nil {
		open := func() float64 { return float64(capped.Open()) }
		if err := m.RegisterGaugeFunc("connections_open", "Connections open on the API listener, at most server.max_connections.", open); err != nil {
			_ = ln.Close()
			return nil, nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return capped, LimitConnections(capped), nil
}

// Serve serves h on ln until ctx ends, then stops accepting connections
// and lets in-flight requests finish for up to cfg.ShutdownTimeout. FHIR
// requests beyond cfg.MaxInflight (and its queue) are answered 503; a
// burst of them is logged as one warning per 10 s (with the counts so
// far), and counted by CountRefusals's observer.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg config.Server, log logrus.FieldLogger, opts ...ServeOption) error {
	errLog, closeErrLog := StdLogger(log)
	defer closeErrLog()
	so := serveOptions{inflight: inflight.Config{Max: cfg.MaxInflight, Queue: cfg.InflightQueue, Wait: cfg.InflightWait, Log: log}}
	for _, o := range opts {
		if o != nil {
			o(&so)
		}
	}
	lim := inflight.New(so.inflight)
	srv := &http.Server{
		Handler:           lim.Wrap(h, inflight.FHIR),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	if so.conns != nil {
		srv.ConnState = so.conns.ConnState
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.WithField("addr", ln.Addr().String()).Info("gateway: listening")

	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serving: %w", err)
	case <-ctx.Done():
	}
	log.WithField("timeout", cfg.ShutdownTimeout.String()).Info("gateway: shutting down; draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serving: %w", err)
	}
	return nil
}

// StdLogger returns a standard-library logger that writes to log at warn
// level, for the net/http pieces that only take a *log.Logger, and a
// function that releases it.
func StdLogger(log logrus.FieldLogger) (*stdlog.Logger, func()) {
	w := log.WithField("component", "net/http").WriterLevel(logrus.WarnLevel)
	return stdlog.New(w, "", 0), func() { _ = w.Close() }
}
