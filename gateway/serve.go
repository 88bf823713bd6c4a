package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
)

// Serve serves h on ln until ctx ends, then stops accepting connections
// and lets in-flight requests finish for up to cfg.ShutdownTimeout.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg config.Server, log logrus.FieldLogger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
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
