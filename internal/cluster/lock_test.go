package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/redistest"
)

// 50 goroutines on three replicas contend for one lock: never two
// holders at once.
func TestLockExclusive(t *testing.T) {
	srv := redistest.Start(t)
	replicas := []*Cluster{replica(t, srv, nil), replica(t, srv, nil), replica(t, srv, nil)}
	ctx := context.Background()
	var inside, maxInside, acquisitions atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := replicas[i%len(replicas)]
			for time.Now().Before(deadline) {
				lease, ok, err := c.Lock(ctx, cacheKey, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				acquisitions.Add(1)
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				if err := lease.Release(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d holders at once", maxInside.Load())
	}
	if acquisitions.Load() < 10 {
		t.Errorf("only %d acquisitions in a second; the lock is not passed on", acquisitions.Load())
	}
	t.Logf("%d acquisitions", acquisitions.Load())
}

// A holder that crashes (never releases) loses the lock when its TTL
// ends; until then nobody else gets it.
func TestLockExpiresAfterCrash(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, nil), replica(t, srv, nil)
	ctx := context.Background()
	if _, ok, err := a.Lock(ctx, cacheKey, 300*time.Millisecond); !ok || err != nil {
		t.Fatalf("first Lock: %v, %v", ok, err)
	}
	start := time.Now()
	if _, ok, err := b.Lock(ctx, cacheKey, time.Second); ok || err != nil {
		t.Fatalf("second Lock while held: %v, %v", ok, err)
	}
	eventually(t, 5*time.Second, "lock of a crashed holder expires", func() bool {
		_, ok, err := b.Lock(ctx, cacheKey, time.Second)
		return ok && err == nil
	})
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("lock taken over after %s, before its TTL of 300ms", d)
	}
}

// A holder whose lock expired cannot release or extend the lock a new
// holder took.
func TestLockOwnerCheck(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, nil), replica(t, srv, nil)
	ctx := context.Background()
	slow, ok, err := a.Lock(ctx, cacheKey, 50*time.Millisecond)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	time.Sleep(100 * time.Millisecond)
	next, ok, err := b.Lock(ctx, cacheKey, 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("Lock after expiry: %v, %v", ok, err)
	}
	if err := slow.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("expired holder's Release: %v, want ErrLeaseLost", err)
	}
	if err := slow.Extend(ctx, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("expired holder's Extend: %v, want ErrLeaseLost", err)
	}
	if _, ok, _ := a.Lock(ctx, cacheKey, time.Second); ok {
		t.Fatal("the new holder's lock was released by the old holder")
	}
	if err := next.Extend(ctx, 10*time.Second); err != nil {
		t.Errorf("holder's Extend: %v", err)
	}
	if pttl := raw(t, srv).PTTL(ctx, "cqgate:lock:"+Ref(cacheKey)).Val(); pttl < 9*time.Second {
		t.Errorf("after Extend the lock has %s left, want about 10s", pttl)
	}
	if err := next.Release(ctx); err != nil {
		t.Errorf("holder's Release: %v", err)
	}
	if err := next.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("second Release: %v, want ErrLeaseLost", err)
	}
	if _, ok, err := a.Lock(ctx, cacheKey, time.Second); !ok || err != nil {
		t.Errorf("Lock after release: %v, %v", ok, err)
	}
	if _, _, err := a.Lock(ctx, cacheKey, 0); err == nil {
		t.Error("Lock with a zero TTL accepted")
	}
}

// Waiters on other replicas are woken by the holder's notification, long
// before they would poll.
func TestWaitWokenByNotification(t *testing.T) {
	srv := redistest.Start(t)
	slowPoll := func(c *Config) { c.PollInterval = time.Minute }
	holder := replica(t, srv, slowPoll)
	waiters := []*Cluster{replica(t, srv, slowPoll), replica(t, srv, slowPoll)}
	subscribed(t, srv, holder, waiters[0], waiters[1])
	ctx := context.Background()

	for _, finish := range []string{"store", "release"} {
		t.Run(finish, func(t *testing.T) {
			lease, ok, err := holder.Lock(ctx, cacheKey+finish, time.Minute)
			if !ok || err != nil {
				t.Fatal(ok, err)
			}
			var wg sync.WaitGroup
			woken := make(chan time.Duration, 20)
			started := time.Now()
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					if err := waiters[i%2].Wait(wctx, cacheKey+finish); err != nil {
						t.Error(err)
					}
					woken <- time.Since(started)
				}()
			}
			time.Sleep(200 * time.Millisecond)
			if len(woken) != 0 {
				t.Fatal("a waiter returned while the lock was held")
			}
			switch finish {
			case "store":
				err = holder.Store(ctx, cacheKey+finish, []byte("token"), time.Now().Add(time.Hour))
			case "release":
				err = lease.Release(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			close(woken)
			for d := range woken {
				if d > 5*time.Second {
					t.Errorf("a waiter woke after %s; the poll interval is a minute, so not by notification", d)
				}
			}
			if finish == "store" {
				if v, _, ok, err := waiters[0].Load(ctx, cacheKey+finish); !ok || err != nil || string(v) != "token" {
					t.Errorf("Load after waking: %q, %v, %v", v, ok, err)
				}
			}
		})
	}
}

// A lost notification (here: a holder that crashes, so none is sent)
// costs at most a poll interval after the lock is gone.
func TestWaitPollsWithoutNotification(t *testing.T) {
	srv := redistest.Start(t)
	a := replica(t, srv, func(c *Config) { c.PollInterval = 50 * time.Millisecond })
	ctx := context.Background()
	if _, ok, err := a.Lock(ctx, cacheKey, 300*time.Millisecond); !ok || err != nil {
		t.Fatal(ok, err)
	}
	start := time.Now()
	if err := a.Wait(ctx, cacheKey); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("Wait returned after %s; want soon after the 300ms lock expired", d)
	}
	// A lock that is not held: no wait at all.
	start = time.Now()
	if err := a.Wait(ctx, "nobody holds this"); err != nil || time.Since(start) > time.Second {
		t.Errorf("Wait on a free lock: %v after %s", err, time.Since(start))
	}
	// The caller's context bounds the wait.
	if _, ok, _ := a.Lock(ctx, cacheKey, time.Minute); !ok {
		t.Fatal("Lock")
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := a.Wait(wctx, cacheKey); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past the caller's deadline: %v", err)
	}
}

func TestMinInterval(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, nil), replica(t, srv, nil)
	ctx := context.Background()
	const key = "token_url=https%3A%2F%2Fauth.partner.example%2Ftoken"
	if turn, err := a.MinInterval(ctx, key, 400*time.Millisecond); turn != (Turn{Allowed: true}) || err != nil {
		t.Fatalf("first turn: %+v, %v", turn, err)
	}
	turn, err := b.MinInterval(ctx, key, 400*time.Millisecond)
	if turn.Allowed || turn.Refused || err != nil || turn.RetryAfter <= 0 || turn.RetryAfter > 400*time.Millisecond {
		t.Fatalf("second turn on another replica: %+v, %v; want refused with a wait up to 400ms", turn, err)
	}
	if turn, _ := a.MinInterval(ctx, "another endpoint", 400*time.Millisecond); !turn.Allowed {
		t.Error("another key shares the interval")
	}
	time.Sleep(turn.RetryAfter + 20*time.Millisecond)
	if turn, err := b.MinInterval(ctx, key, 400*time.Millisecond); !turn.Allowed || err != nil {
		t.Errorf("turn after the interval: %+v, %v", turn, err)
	}
	if turn, _ := a.MinInterval(ctx, key, 0); !turn.Allowed {
		t.Error("a zero interval refused a turn")
	}
}

// A token refused by its resource server (Invalidate removed it) marks
// the running interval refused, for every replica; a token another
// replica replaced, or an interval that has ended, does not.
func TestMinIntervalTellsARefusedToken(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, nil), replica(t, srv, nil)
	ctx := context.Background()
	if turn, err := a.MinInterval(ctx, cacheKey, time.Minute); !turn.Allowed || err != nil {
		t.Fatalf("first turn: %+v, %v", turn, err)
	}
	if err := a.Store(ctx, cacheKey, []byte("new-token"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Invalidate(ctx, cacheKey, []byte("old-token")); err != nil {
		t.Fatal(err)
	}
	if turn, err := b.MinInterval(ctx, cacheKey, time.Minute); turn.Allowed || turn.Refused || err != nil {
		t.Errorf("after an old token's invalidation: %+v, %v; want not allowed, not refused", turn, err)
	}
	if removed, err := b.Invalidate(ctx, cacheKey, []byte("new-token")); !removed || err != nil {
		t.Fatalf("Invalidate = %v, %v", removed, err)
	}
	turn, err := replica(t, srv, nil).MinInterval(ctx, cacheKey, time.Minute)
	if turn.Allowed || !turn.Refused || turn.RetryAfter <= 50*time.Second || err != nil {
		t.Errorf("after the current token's invalidation, another replica: %+v, %v; want refused, the interval's expiry kept", turn, err)
	}
	// With no interval running, an invalidation marks nothing.
	if err := a.Store(ctx, "other", []byte("t"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Invalidate(ctx, "other", []byte("t")); err != nil {
		t.Fatal(err)
	}
	if turn, err := a.MinInterval(ctx, "other", time.Minute); !turn.Allowed || err != nil {
		t.Errorf("no interval running: %+v, %v", turn, err)
	}
}
