package upstream

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// step is one answer of a scripted server.
type step struct {
	status     int
	retryAfter string
}

// scripted answers its requests with steps in order, repeating the last
// one, and counts them.
func scripted(t *testing.T, steps ...step) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		s := steps[min(i, len(steps)-1)]
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
		_, _ = w.Write([]byte("answer " + strconv.Itoa(i+1)))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetryStatuses(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	inTwoSeconds := clock.Now().Add(2 * time.Second).Format(http.TimeFormat)
	ok := step{status: 200}
	tests := []struct {
		name         string
		policy       Retry
		steps        []step
		wantRequests int64
		wantStatus   int
		wantMinWait  []time.Duration // per retry, a lower bound from Retry-After
	}{
		{name: "success", steps: []step{ok}, wantRequests: 1, wantStatus: 200},
		{name: "500 then success", steps: []step{{status: 500}, ok}, wantRequests: 2, wantStatus: 200},
		{name: "500, 502, then success", steps: []step{{status: 500}, {status: 502}, ok}, wantRequests: 3, wantStatus: 200},
		{name: "504 then success", steps: []step{{status: 504}, ok}, wantRequests: 2, wantStatus: 200},
		{name: "500 forever stops after the default 3 attempts", steps: []step{{status: 500}}, wantRequests: 3, wantStatus: 500},
		{name: "5 attempts", policy: Retry{Attempts: 5}, steps: []step{{status: 502}}, wantRequests: 5, wantStatus: 502},
		{name: "1 attempt: no retries", policy: Retry{Attempts: 1}, steps: []step{{status: 500}, ok}, wantRequests: 1, wantStatus: 500},
		{name: "negative attempts: no retries", policy: Retry{Attempts: -4}, steps: []step{{status: 500}, ok}, wantRequests: 1, wantStatus: 500},
		{name: "403 is never retried", policy: Retry{Attempts: 10}, steps: []step{{status: 403}, ok}, wantRequests: 1, wantStatus: 403},
		{name: "401 is not retried", steps: []step{{status: 401}, ok}, wantRequests: 1, wantStatus: 401},
		{name: "404 is not retried", steps: []step{{status: 404}, ok}, wantRequests: 1, wantStatus: 404},
		{name: "400 is not retried", steps: []step{{status: 400}, ok}, wantRequests: 1, wantStatus: 400},
		{name: "501 is not retried", steps: []step{{status: 501}, ok}, wantRequests: 1, wantStatus: 501},
		{name: "503 without Retry-After", steps: []step{{status: 503}, ok}, wantRequests: 2, wantStatus: 200},
		{
			name:         "503 with a small Retry-After in seconds",
			steps:        []step{{status: 503, retryAfter: "1"}, ok},
			wantRequests: 2, wantStatus: 200,
			wantMinWait: []time.Duration{time.Second},
		},
		{
			name:         "503 with a Retry-After date",
			policy:       Retry{Now: clock.Now},
			steps:        []step{{status: 503, retryAfter: inTwoSeconds}, ok},
			wantRequests: 2, wantStatus: 200,
			wantMinWait: []time.Duration{2 * time.Second},
		},
		{name: "503 asking for an hour is not retried", steps: []step{{status: 503, retryAfter: "3600"}, ok}, wantRequests: 1, wantStatus: 503},
		{name: "503 with a garbage Retry-After is retried with the backoff", steps: []step{{status: 503, retryAfter: "soon"}, ok}, wantRequests: 2, wantStatus: 200},
		{name: "429 without Retry-After is not retried", steps: []step{{status: 429}, ok}, wantRequests: 1, wantStatus: 429},
		{
			name:         "429 with a small Retry-After",
			steps:        []step{{status: 429, retryAfter: "2"}, ok},
			wantRequests: 2, wantStatus: 200,
			wantMinWait: []time.Duration{2 * time.Second},
		},
		{name: "429 asking for more than MaxRetryAfter", policy: Retry{MaxRetryAfter: time.Second}, steps: []step{{status: 429, retryAfter: "2"}, ok}, wantRequests: 1, wantStatus: 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := scripted(t, tt.steps...)
			rec := &clocktest.Sleeper{}
			p := tt.policy
			p.Sleep = rec.Sleep
			resp, err := p.Get(context.Background(), srv.Client(), srv.URL, nil, 1024)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if want := "answer " + strconv.Itoa(int(tt.wantRequests)); string(resp.Body) != want {
				t.Errorf("body %q, want the last attempt's %q", resp.Body, want)
			}
			if got := n.Load(); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
			waits := rec.Waits()
			if len(waits) != int(tt.wantRequests)-1 {
				t.Fatalf("%d waits %v for %d requests", len(waits), waits, tt.wantRequests)
			}
			for i, w := range waits {
				if i < len(tt.wantMinWait) && w < tt.wantMinWait[i] {
					t.Errorf("wait %d = %v, want at least %v (Retry-After)", i, w, tt.wantMinWait[i])
				}
			}
		})
	}
}

func TestRetryBackoffIsCappedFullJitter(t *testing.T) {
	srv, n := scripted(t, step{status: 500})
	p := Retry{Attempts: 8, Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	// Many runs, so that the jitter is seen to vary and stay in bounds.
	var all [][]time.Duration
	for range 20 {
		rec := &clocktest.Sleeper{}
		p.Sleep = rec.Sleep
		if _, err := p.Get(context.Background(), srv.Client(), srv.URL, nil, 64); err != nil {
			t.Fatal(err)
		}
		all = append(all, rec.Waits())
	}
	if got := n.Load(); got != 20*8 {
		t.Errorf("%d requests, want %d", got, 20*8)
	}
	caps := []time.Duration{100, 200, 400, 400, 400, 400, 400}
	distinct := make(map[time.Duration]bool)
	for _, waits := range all {
		if len(waits) != len(caps) {
			t.Fatalf("waits %v, want %d", waits, len(caps))
		}
		for i, w := range waits {
			if limit := caps[i] * time.Millisecond; w < 0 || w > limit {
				t.Errorf("wait %d = %v, want within [0, %v]", i, w, limit)
			}
			distinct[w] = true
		}
	}
	if len(distinct) < 10 {
		t.Errorf("only %d distinct waits in %d: no jitter?", len(distinct), 20*len(caps))
	}
}

func TestRetryDefaults(t *testing.T) {
	p := Retry{}.withDefaults()
	if p.Attempts != 3 || p.Initial != 200*time.Millisecond || p.Max != 2*time.Second || p.MaxRetryAfter != DefaultMaxRetryAfter || p.Sleep == nil || p.Now == nil {
		t.Errorf("defaults = %+v", p)
	}
	if got := (Retry{Initial: 5 * time.Second}).withDefaults().Max; got != 5*time.Second {
		t.Errorf("Max below Initial: got %v, want it raised to Initial", got)
	}
}

// closingServer drops the connection without an answer for its first
// drops requests, then answers 200. It counts requests.
func closingServer(t *testing.T, drops int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= drops {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			_ = conn.Close()
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetryTransportErrors(t *testing.T) {
	t.Run("dropped connections are retried", func(t *testing.T) {
		srv, n := closingServer(t, 2)
		rec := &clocktest.Sleeper{}
		resp, err := Retry{Sleep: rec.Sleep}.Get(context.Background(), srv.Client(), srv.URL, nil, 64)
		if err != nil || resp.StatusCode != 200 || string(resp.Body) != "ok" {
			t.Fatalf("Get = %+v, %v", resp, err)
		}
		if n.Load() != 3 || len(rec.Waits()) != 2 {
			t.Errorf("%d requests, %d waits; want 3 and 2", n.Load(), len(rec.Waits()))
		}
	})
	t.Run("connection refused: every attempt, then net/http's error", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		rec := &clocktest.Sleeper{}
		resp, err := Retry{Attempts: 4, Sleep: rec.Sleep}.Get(context.Background(), http.DefaultClient, u, nil, 64)
		var ne net.Error
		if resp != nil || !errors.As(err, &ne) {
			t.Fatalf("Get = %+v, %v; want no response and a net.Error", resp, err)
		}
		if len(rec.Waits()) != 3 {
			t.Errorf("%d waits, want 3", len(rec.Waits()))
		}
	})
	t.Run("client timeout is retried", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				<-r.Context().Done() // hang until the client gives up
				return
			}
			_, _ = w.Write([]byte("ok"))
		}))
		defer srv.Close()
		hc := srv.Client()
		hc.Timeout = 50 * time.Millisecond
		rec := &clocktest.Sleeper{}
		resp, err := Retry{Sleep: rec.Sleep}.Get(context.Background(), hc, srv.URL, nil, 64)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("Get = %+v, %v", resp, err)
		}
		if n.Load() != 2 {
			t.Errorf("%d requests, want 2", n.Load())
		}
	})
	t.Run("body cut short is retried", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Content-Length", "100")
				_, _ = w.Write([]byte("short"))
				return
			}
			_, _ = w.Write([]byte("ok"))
		}))
		defer srv.Close()
		resp, err := Retry{Sleep: (&clocktest.Sleeper{}).Sleep}.Get(context.Background(), srv.Client(), srv.URL, nil, 1024)
		if err != nil || string(resp.Body) != "ok" || n.Load() != 2 {
			t.Fatalf("Get = %+v, %v after %d requests; want ok after 2", resp, err, n.Load())
		}
	})
	t.Run("TLS certificate failure is not retried", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake
		srv.StartTLS()
		defer srv.Close()
		rec := &clocktest.Sleeper{}
		// A client that does not trust the test server's certificate.
		resp, err := Retry{Sleep: rec.Sleep}.Get(context.Background(), &http.Client{}, srv.URL, nil, 64)
		if resp != nil || err == nil {
			t.Fatalf("Get = %+v, %v; want a certificate error", resp, err)
		}
		if len(rec.Waits()) != 0 {
			t.Errorf("waits %v, want none: %v", rec.Waits(), err)
		}
	})
	t.Run("malformed URL is not retried", func(t *testing.T) {
		rec := &clocktest.Sleeper{}
		if _, err := (Retry{Sleep: rec.Sleep}).Get(context.Background(), http.DefaultClient, "http://[::1", nil, 64); err == nil {
			t.Fatal("want error")
		}
		if len(rec.Waits()) != 0 {
			t.Errorf("waits %v, want none", rec.Waits())
		}
	})
}

func TestRetryContext(t *testing.T) {
	t.Run("done context: no retry", func(t *testing.T) {
		srv, n := scripted(t, step{status: 500})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rec := &clocktest.Sleeper{}
		resp, err := Retry{Sleep: rec.Sleep}.Get(ctx, srv.Client(), srv.URL, nil, 64)
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Errorf("Get = %+v, %v; want context.Canceled", resp, err)
		}
		if n.Load() != 0 || len(rec.Waits()) != 0 {
			t.Errorf("%d requests, waits %v; want none", n.Load(), rec.Waits())
		}
	})
	t.Run("cancelled during a wait: the last answer", func(t *testing.T) {
		srv, n := scripted(t, step{status: 502})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sleeps := 0
		p := Retry{Attempts: 10, Sleep: func(ctx context.Context, d time.Duration) error {
			sleeps++
			cancel()
			return ctx.Err()
		}}
		resp, err := p.Get(ctx, srv.Client(), srv.URL, nil, 64)
		if err != nil || resp.StatusCode != 502 {
			t.Errorf("Get = %+v, %v; want the 502", resp, err)
		}
		if n.Load() != 1 || sleeps != 1 {
			t.Errorf("%d requests and %d sleeps, want 1 and 1", n.Load(), sleeps)
		}
	})
	t.Run("a wait past the deadline is not begun", func(t *testing.T) {
		srv, n := scripted(t, step{status: 503, retryAfter: "4"}, step{status: 200})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rec := &clocktest.Sleeper{}
		resp, err := Retry{MaxRetryAfter: 10 * time.Second, Sleep: rec.Sleep}.Get(ctx, srv.Client(), srv.URL, nil, 64)
		if err != nil || resp.StatusCode != 503 {
			t.Errorf("Get = %+v, %v; want the 503", resp, err)
		}
		if n.Load() != 1 || len(rec.Waits()) != 0 {
			t.Errorf("%d requests, waits %v; want 1 and none", n.Load(), rec.Waits())
		}
	})
	t.Run("retries stop at the deadline (real sleeps)", func(t *testing.T) {
		srv, n := scripted(t, step{status: 500})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			resp, err := Retry{Attempts: 1 << 20, Initial: time.Millisecond, Max: 5 * time.Millisecond}.Get(ctx, srv.Client(), srv.URL, nil, 64)
			if err == nil && resp.StatusCode != 500 {
				err = errors.New("unexpected status " + strconv.Itoa(resp.StatusCode))
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Get: %v; want the last 500 or a deadline error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Get did not return after its context's deadline")
		}
		if got := n.Load(); got < 2 || got >= 1<<20 {
			t.Errorf("%d requests; want some retries, stopped by the deadline", got)
		}
	})
}
