package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// LimitHosts returns a RoundTripper that lets at most n requests to one
// host (scheme, host and port) be in flight at once through rt; a request
// beyond that waits for a turn until its context ends. A request is in
// flight until its response body is closed or read to the end. With
// n <= 0 it returns rt.
//
// The directory, discovery and token clients go through it, so that a
// burst of requests for many distinct organizations cannot open as many
// connections to one upstream (each directory request carrying the API
// key).
func LimitHosts(rt http.RoundTripper, n int) http.RoundTripper {
	if n <= 0 {
		return rt
	}
	return &hostLimiter{rt: rt, n: n, hosts: map[string]*hostSlots{}}
}

type hostLimiter struct {
	rt    http.RoundTripper
	n     int
	mu    sync.Mutex
	hosts map[string]*hostSlots
}

// hostSlots are the turns of one host; users counts the requests holding
// or waiting for one, so that an idle host's entry is dropped.
type hostSlots struct {
	sem   chan struct{}
	users int
}

// LimitedError says a request gave up waiting for a turn at its host.
type LimitedError struct {
	Host string
	Max  int
	Err  error
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("upstream: waiting for one of the %d concurrent requests allowed to %s (upstream.max_conns_per_host): %v", e.Max, e.Host, e.Err)
}

func (e *LimitedError) Unwrap() error { return e.Err }

func (l *hostLimiter) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	l.mu.Lock()
	s := l.hosts[key]
	if s == nil {
		s = &hostSlots{sem: make(chan struct{}, l.n)}
		l.hosts[key] = s
	}
	s.users++
	l.mu.Unlock()

	select {
	case s.sem <- struct{}{}:
	case <-req.Context().Done():
		l.release(key, s, false)
		return nil, &LimitedError{Host: key, Max: l.n, Err: context.Cause(req.Context())}
	}
	resp, err := l.rt.RoundTrip(req)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		l.release(key, s, true)
		return resp, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, done: func() { l.release(key, s, true) }}
	return resp, nil
}

func (l *hostLimiter) release(key string, s *hostSlots, held bool) {
	if held {
		<-s.sem
	}
	l.mu.Lock()
	if s.users--; s.users == 0 {
		delete(l.hosts, key)
	}
	l.mu.Unlock()
}

// slotBody gives its turn back once, at EOF, an error or Close.
type slotBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *slotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
