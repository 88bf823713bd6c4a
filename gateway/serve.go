package gateway

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

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
// and lets in-flight requests finish for up to cfg.ShutdownTimeout; it
// then closes the connections left, which cancels their requests, and
// waits a little (cutGrace) for their handlers to write their answers
// and audit lines before it returns nil: a shutdown that was asked for
// and done is no error, only a listener's failure is. FHIR
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
	var run running
	srv := &http.Server{
		Handler:           run.wrap(lim.Wrap(h, inflight.FHIR)),
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
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		cut(srv, &run, cfg.ShutdownTimeout, log)
	} else if err != nil {
		return fmt.Errorf("gateway: shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serving: %w", err)
	}
	return nil
}

// cutGrace bounds the wait, after shutdown_timeout, for the handlers
// whose connections were closed to return: their contexts are cancelled,
// so they answer (to no one) and write their audit lines at once. The
// chart's terminationGracePeriodSeconds leaves room for it beside
// shutdown_timeout and the spans' flush.
const cutGrace = 2 * time.Second

// cut closes the connections still open when shutdown_timeout ends,
// which cancels the requests running on them, and waits up to cutGrace
// for their handlers to return, so that the audit trail is not closed
// under them. Stopping was asked for and is done: it is a warning, not
// an error.
func cut(srv *http.Server, run *running, timeout time.Duration, log logrus.FieldLogger) {
	n := run.count()
	_ = srv.Close()
	log.WithFields(logrus.Fields{"timeout": timeout.String(), "requests": n}).
		Warn("gateway: server.shutdown_timeout ended; cutting the requests still running")
	if left := run.wait(cutGrace); left > 0 {
		log.WithFields(logrus.Fields{"requests": left, "waited": cutGrace.String()}).
			Warn("gateway: requests cut at shutdown still running; their audit lines may be lost")
	}
}

// running counts the handlers running, so that Serve can wait for the
// ones it cut at shutdown. It costs a request two atomic additions and
// one load; no allocation.
type running struct {
	n       atomic.Int64
	waiting atomic.Bool
	idle    chan struct{} // made by wait; closed once n reaches 0
	once    sync.Once
}

// wrap counts h's requests while they run.
func (r *running) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.n.Add(1)
		defer r.done()
		h.ServeHTTP(w, req)
	})
}

func (r *running) done() {
	if r.n.Add(-1) == 0 && r.waiting.Load() {
		r.once.Do(func() { close(r.idle) })
	}
}

// count is how many handlers run now.
func (r *running) count() int64 { return r.n.Load() }

// wait waits up to d for every handler to return and says how many
// still run. It is called once.
func (r *running) wait(d time.Duration) int64 {
	r.idle = make(chan struct{})
	r.waiting.Store(true)
	if r.n.Load() == 0 {
		return 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.idle:
	case <-t.C:
	}
	return r.n.Load()
}

// StdLogger returns a standard-library logger that writes to log at warn
// level, for the net/http pieces that only take a *log.Logger, and a
// function that releases it.
func StdLogger(log logrus.FieldLogger) (*stdlog.Logger, func()) {
	w := log.WithField("component", "net/http").WriterLevel(logrus.WarnLevel)
	return stdlog.New(w, "", 0), func() { _ = w.Close() }
}
