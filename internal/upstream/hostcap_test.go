package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitHosts sends 64 concurrent requests to each of two loopback
// hosts through LimitHosts(…, 4) and counts, at each server, how many are
// in flight at once: never more than 4 per host, and both hosts are
// served side by side.
func TestLimitHosts(t *testing.T) {
	const limit, perHost = 4, 64
	type counter struct{ now, max atomic.Int64 }
	serve := func(c *counter) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := c.now.Add(1)
			defer c.now.Add(-1)
			for {
				m := c.max.Load()
				if n <= m || c.max.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			io.WriteString(w, "ok")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	var a, b counter
	srvA, srvB := serve(&a), serve(&b)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: LimitHosts(tr, limit), Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := 0; i < perHost; i++ {
		for _, u := range []string{srvA.URL, srvB.URL} {
			wg.Go(func() {
				resp, err := client.Get(u)
				if err != nil {
					failures.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d requests failed", n)
	}
	if a.max.Load() > limit || b.max.Load() > limit {
		t.Errorf("in flight at once: %d and %d, want at most %d per host", a.max.Load(), b.max.Load(), limit)
	}
	if a.max.Load() < 2 || b.max.Load() < 2 {
		t.Errorf("in flight at once: %d and %d; the cap should still let requests run side by side", a.max.Load(), b.max.Load())
	}
	l := client.Transport.(*hostLimiter)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hosts) != 0 {
		t.Errorf("%d idle hosts still tracked", len(l.hosts))
	}
}

// TestLimitHostsWaitEnds: a request that cannot get a turn before its
// context ends fails with a LimitedError wrapping the context's error.
func TestLimitHostsWaitEnds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Transport: LimitHosts(http.DefaultTransport, 1)}
	go func() {
		if resp, err := client.Get(srv.URL); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	var le *LimitedError
	if !errors.As(err, &le) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a LimitedError after the deadline", err)
	}
}
