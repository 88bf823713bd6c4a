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
	"github.com/cqgate/cqgate/internal/inflight"
)

// Serve serves h on ln until ctx ends, then stops accepting connections
// and lets in-flight requests finish for up to cfg.ShutdownTimeout. FHIR
// requests beyond cfg.MaxInflight (and its queue) are answered 503.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg config.Server, log logrus.FieldLogger) error {
	errLog, closeErrLog := StdLogger(log)
	defer closeErrLog()
	lim := inflight.New(inflight.Config{Max: cfg.MaxInflight, Queue: cfg.InflightQueue, Wait: cfg.InflightWait, Log: log})
	defer lim.Close()
	srv := &http.Server{
		Handler:           lim.Wrap(h, inflight.FHIR),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
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
