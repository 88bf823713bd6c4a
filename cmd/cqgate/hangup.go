package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
)

// hangups receives SIGHUP for the server's whole life. It is registered
// before anything slow at start (gateway.New's Vault login, the
// listeners) and never unregistered, so that a SIGHUP (logrotate's
// postrotate, a certificate reloader) never takes its default action,
// which ends the process: while cqgate starts or drains, a SIGHUP is
// logged and ignored; while it serves, it reloads (reload).
type hangups struct {
	c chan os.Signal
	// serving is what a SIGHUP reloads; nil until cqgate serves.
	serving atomic.Pointer[reloader]
}

// reloader is what a SIGHUP reloads while cqgate serves.
type reloader struct {
	g *gateway.Gateway
	// running is the configuration cqgate runs with; reread reads and
	// validates the configuration file again, as at start.
	running *config.Config
	reread  func() (*config.Config, error)
}

// notifyHangups starts receiving SIGHUP; handle answers them.
func notifyHangups() *hangups {
	h := &hangups{c: make(chan os.Signal, 1)}
	signal.Notify(h.c, syscall.SIGHUP)
	return h
}

// serve makes the SIGHUPs from now on reload r.
func (h *hangups) serve(r *reloader) { h.serving.Store(r) }

// handle answers SIGHUPs until done is closed: a reload while cqgate
// serves, a log line while it starts or (ctx ended) drains. A SIGHUP
// received before handle starts waits for it.
func (h *hangups) handle(ctx context.Context, done <-chan struct{}, log logrus.FieldLogger) {
	for {
		select {
		case <-done:
			return
		case <-h.c:
			r := h.serving.Load()
			switch {
			case ctx.Err() != nil:
				log.Info("cqgate: SIGHUP ignored: shutting down")
			case r == nil:
				log.Info("cqgate: SIGHUP ignored: still starting; send it again once cqgate serves")
			default:
				r.reload(ctx, log)
			}
		}
	}
}

// reload re-reads the configuration file and what gateway.Reload
// re-reads. A file with problems is reported problem by problem and
// changes nothing (callers' API keys from inbound.api_keys stay); the
// other reloads happen all the same. Settings the file changes that need
// a restart are named.
func (r *reloader) reload(ctx context.Context, log logrus.FieldLogger) {
	file, err := r.reread()
	if err != nil {
		fields := logrus.Fields{}
		if ve := (*config.ValidationError)(nil); errors.As(err, &ve) {
			fields["problems"] = ve.Problems
		} else {
			fields[logrus.ErrorKey] = err.Error()
		}
		log.WithFields(fields).Warn("cqgate: SIGHUP: the configuration file was not re-read; callers' API keys from inbound.api_keys stay as they were")
		file = nil
	}
	log = log.WithField("reloaded", gateway.Reloaded)
	if err := r.g.Reload(ctx, file); err != nil {
		log.WithError(err).Warn("cqgate: SIGHUP reload failed in part; what could not be reloaded keeps its old state")
	} else {
		log.Info("cqgate: reloaded on SIGHUP; other settings need a restart")
	}
	if file == nil {
		return
	}
	if keys := gateway.NeedsRestart(r.running, file); len(keys) > 0 {
		log.WithField("settings", keys).Warn("cqgate: SIGHUP: the configuration file changes settings that take effect only at the next start")
	}
}
