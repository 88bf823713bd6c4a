package sandbox

import (
	"net"
	"net/http"
	"sync"
)

// freshConns tracks connections that have not sent a request yet.
//
// An HTTP client that dials ahead (net/http's Transport under concurrent
// load does) may leave such connections open without ever using them.
// http.Server.Shutdown waits about five seconds before it treats them as
// idle, so Close closes them itself once the listener is closed.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newFreshConns() *freshConns {
	return &freshConns{conns: make(map[net.Conn]struct{})}
}

// track is an http.Server ConnState hook.
func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

// closeAll closes every connection that is still waiting for its first
// request.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
}
