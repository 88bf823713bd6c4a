package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/internal/redistest"
)

// countingWaiter is a fallback limiter that counts its turns.
type countingWaiter struct{ n int }

func (w *countingWaiter) Wait(context.Context, string) error { w.n++; return nil }

// Redis killed: every operation fails fast with a typed error naming the
// operation, counted by the observer and free of secrets; after Redis
// comes back (empty), everything works again, notifications included.
func TestRedisKilledAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	obs := &observer{}
	edit := func(c *Config) { c.Timeout = 300 * time.Millisecond; c.PollInterval = time.Minute }
	a := replica(t, srv, edit, WithObserver(obs))
	b := replica(t, srv, edit)
	subscribed(t, srv, a, b)
	ctx := context.Background()
	token := []byte("eyJhbGciOiJSUzM4NCJ9.the-access-token.sig")
	exp := time.Now().Add(time.Hour)
	if err := a.Store(ctx, cacheKey, token, exp); err != nil {
		t.Fatal(err)
	}
	lease, ok, err := a.Lock(ctx, cacheKey, time.Minute)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	fallback := &countingWaiter{}
	limited := a.RateLimiter(ratelimit.Limit{RequestsPerSecond: 1, Burst: 1}, nil, fallback)
	open := a.RateLimiter(ratelimit.Limit{RequestsPerSecond: 1, Burst: 1}, nil, nil)

	srv.Kill()

	ops := []struct {
		op  string
		run func() error
	}{
		{OpLoad, func() error { _, _, _, err := a.Load(ctx, cacheKey); return err }},
		{OpStore, func() error { return a.Store(ctx, cacheKey, token, exp) }},
		{OpInvalidate, func() error { _, err := a.Invalidate(ctx, cacheKey, token); return err }},
		{OpLock, func() error { _, _, err := a.Lock(ctx, cacheKey, time.Minute); return err }},
		{OpRelease, func() error { return lease.Release(ctx) }},
		{OpExtend, func() error { return lease.Extend(ctx, time.Minute) }},
		{OpWait, func() error { return a.Wait(ctx, cacheKey) }},
		{OpMinInterval, func() error { _, err := a.MinInterval(ctx, cacheKey, time.Minute); return err }},
	}
	for _, o := range ops {
		start := time.Now()
		err := o.run()
		took := time.Since(start)
		var se *StoreError
		if !errors.As(err, &se) || se.Op != o.op {
			t.Errorf("%s with Redis down: %v, want a *StoreError{Op: %s}", o.op, err, o.op)
			continue
		}
		if took > 3*time.Second {
			t.Errorf("%s took %s to fail; the timeout is 300ms", o.op, took)
		}
		if obs.count(o.op) != 1 {
			t.Errorf("%s counted %d times, want 1", o.op, obs.count(o.op))
		}
		for _, secret := range []string{string(token), cacheKey, Ref(cacheKey)} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s error %q contains %q", o.op, err, secret)
			}
		}
	}
	if err := limited.Wait(ctx, "1.2.3"); err != nil || fallback.n != 1 {
		t.Errorf("rate limit with Redis down: %v, fallback used %d times; want the fallback's answer", err, fallback.n)
	}
	if err := open.Wait(ctx, "1.2.3"); err != nil {
		t.Errorf("rate limit with Redis down and no fallback: %v, want the request to go", err)
	}
	if obs.count(OpRateLimit) != 2 {
		t.Errorf("rate limit errors counted %d times, want 2", obs.count(OpRateLimit))
	}

	srv.Restart() // empty
	eventually(t, 5*time.Second, "Load after restart", func() bool {
		_, _, ok, err := a.Load(ctx, cacheKey)
		return err == nil && !ok
	})
	if err := a.Store(ctx, cacheKey, token, exp); err != nil {
		t.Fatalf("Store after restart: %v", err)
	}
	if v, _, ok, err := b.Load(ctx, cacheKey); !ok || err != nil || string(v) != string(token) {
		t.Fatalf("Load on another replica after restart: %v, %v", ok, err)
	}
	// Both replicas subscribed again: a waiter with a one-minute poll
	// interval is woken by the other's release.
	subscribed(t, srv, a, b)
	lease, ok, err = a.Lock(ctx, cacheKey, time.Minute)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- b.Wait(wctx, cacheKey)
	}()
	time.Sleep(50 * time.Millisecond)
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait after restart: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("waiter not woken after Redis restarted: no resubscription")
	}
}

// A hung Redis costs an operation its timeout, not more.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	obs := &observer{}
	a := replica(t, srv, func(c *Config) { c.Timeout = 100 * time.Millisecond }, WithObserver(obs))
	ctx := context.Background()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	start := time.Now()
	_, _, ok, err := a.Load(ctx, cacheKey)
	took := time.Since(start)
	srv.Thaw()
	var se *StoreError
	if !errors.As(err, &se) || se.Op != OpLoad || ok {
		t.Fatalf("Load from a hung Redis: %v", err)
	}
	if took > 2*time.Second {
		t.Errorf("Load from a hung Redis took %s; the timeout is 100ms", took)
	}
	eventually(t, 5*time.Second, "Load after Redis answers again", func() bool {
		_, _, _, err := a.Load(ctx, cacheKey)
		return err == nil
	})
}

// Redis killed while replicas are busy: every operation either works or
// fails with a *StoreError within its timeout, never hangs or panics;
// after the restart they work again.
func TestRedisKilledMidRun(t *testing.T) {
	srv := redistest.Start(t)
	edit := func(c *Config) { c.Timeout = 300 * time.Millisecond; c.PollInterval = 20 * time.Millisecond }
	replicas := []*Cluster{replica(t, srv, edit), replica(t, srv, edit)}
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	var (
		mu       sync.Mutex
		ok, fail int
		slowest  time.Duration
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := replicas[i%2]
			key := fmt.Sprintf("%s&n=%d", cacheKey, i%3)
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				var err error
				switch i % 4 {
				case 0:
					_, _, _, err = c.Load(ctx, key)
				case 1:
					err = c.Store(ctx, key, []byte("token"), exp)
				case 2:
					var lease *Lease
					var got bool
					if lease, got, err = c.Lock(ctx, key, time.Second); err == nil && got {
						err = lease.Release(ctx)
						if errors.Is(err, ErrLeaseLost) {
							err = nil // it may expire while Redis is away
						}
					}
				case 3:
					wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					err = c.Wait(wctx, key)
					cancel()
					if errors.Is(err, context.DeadlineExceeded) {
						err = nil
					}
				}
				took := time.Since(start)
				var se *StoreError
				mu.Lock()
				slowest = max(slowest, took)
				switch {
				case err == nil:
					ok++
				case errors.As(err, &se):
					fail++
				default:
					t.Errorf("untyped error: %v", err)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	okBefore := ok
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d operations worked, %d failed with a StoreError; slowest %s", ok, fail, slowest)
	if fail == 0 {
		t.Error("no operation failed while Redis was down")
	}
	if ok == okBefore {
		t.Error("no operation worked after Redis restarted")
	}
	if slowest > 3*time.Second {
		t.Errorf("an operation took %s; the timeout is 300ms", slowest)
	}
}

// A replica starts while Redis is down, and uses it once it is up.
func TestStartWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	obs := &observer{}
	start := time.Now()
	a := replica(t, srv, func(c *Config) { c.Timeout = 300 * time.Millisecond }, WithObserver(obs))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("New took %s with Redis down", d)
	}
	ctx := context.Background()
	var se *StoreError
	if _, _, _, err := a.Load(ctx, cacheKey); !errors.As(err, &se) {
		t.Fatalf("Load with Redis down: %v", err)
	}
	srv.Restart()
	eventually(t, 5*time.Second, "Store once Redis is up", func() bool {
		return a.Store(ctx, cacheKey, []byte("token"), time.Now().Add(time.Hour)) == nil
	})
	subscribed(t, srv, a)
	if v, _, ok, err := a.Load(ctx, cacheKey); !ok || err != nil || string(v) != "token" {
		t.Fatalf("Load: %v, %v", ok, err)
	}
}
