package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
)

// storage is the second listener, the "storage origin" that bulk file
// downloads are redirected to.
type storage struct {
	server *http.Server
	served chan struct{}
}

// startStorage listens on a free port of the sandbox's own loopback
// address and serves handleStorage there.
func (s *Sandbox) startStorage(ctx context.Context) error {
	host, _, err := net.SplitHostPort(s.listener.Addr().String())
	if err != nil {
		return fmt.Errorf("sandbox: storage listener: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return fmt.Errorf("sandbox: storage listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(storagePath+"{job}/{file}", s.handleStorage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, issueNotFound, "no storage object at "+r.URL.Path)
	})
	st := &storage{
		server: &http.Server{
			Handler:           s.withRequestID(mux),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          log.New(logWriter{s.log}, "", 0),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		},
		served: make(chan struct{}),
	}
	s.storage = st
	s.StorageURL = "http://" + ln.Addr().String() + storagePath[:len(storagePath)-1]
	go func() {
		defer close(st.served)
		if err := st.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("sandbox storage server stopped")
		}
	}()
	return nil
}

// closeStorage shuts the storage listener down.
func (s *Sandbox) closeStorage(ctx context.Context) error {
	if s.storage == nil {
		return nil
	}
	err := s.storage.server.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.storage.server.Close())
	}
	<-s.storage.served
	return err
}
