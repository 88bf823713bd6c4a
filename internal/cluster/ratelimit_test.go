package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/internal/redistest"
)

// Two replicas share one budget: together they get what one would.
func TestRateLimiterSharedBudget(t *testing.T) {
	srv := redistest.Start(t)
	lim := ratelimit.Limit{RequestsPerSecond: 50, Burst: 5}
	limiters := []*RateLimiter{
		replica(t, srv, nil).RateLimiter(lim, nil, nil),
		replica(t, srv, nil).RateLimiter(lim, nil, nil),
	}
	ctx := context.Background()
	const run = time.Second
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < run {
				err := limiters[i%2].Wait(ctx, "1.2.3")
				var le *ratelimit.LimitedError
				switch {
				case err == nil:
					allowed.Add(1)
				case errors.As(err, &le):
					refused.Add(1)
				default:
					t.Error(err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	budget := float64(lim.Burst) + lim.RequestsPerSecond*elapsed
	got := float64(allowed.Load())
	t.Logf("allowed %d, refused %d in %.2fs; budget %.0f", allowed.Load(), refused.Load(), elapsed, budget)
	if got > budget+1 || got < 0.5*budget {
		t.Errorf("allowed %.0f requests in %.2fs across two replicas; the shared budget is %.0f (each alone would have allowed it twice over)", got, elapsed, budget)
	}
}

func TestRateLimiterWaitAndRefuse(t *testing.T) {
	srv := redistest.Start(t)
	c := replica(t, srv, nil)
	ctx := context.Background()
	l := c.RateLimiter(ratelimit.Limit{RequestsPerSecond: 10, Burst: 1, MaxWait: 250 * time.Millisecond},
		map[string]ratelimit.Limit{"9.9.9": {RequestsPerSecond: 2, Burst: 1}, "8.8.8": {}}, nil)

	if !l.Enabled() || l.LimitFor("9.9.9").RequestsPerSecond != 2 || l.LimitFor("1.2.3").RequestsPerSecond != 10 {
		t.Fatal("Enabled/LimitFor do not reflect the limits")
	}
	if err := l.Wait(ctx, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := l.Wait(ctx, "1.2.3"); err != nil {
		t.Fatalf("second turn within max_wait: %v", err)
	}
	if d := time.Since(start); d < 60*time.Millisecond || d > time.Second {
		t.Errorf("second turn waited %s, want about 100ms", d)
	}

	if err := l.Wait(ctx, "9.9.9"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err := l.Wait(ctx, "9.9.9")
	var le *ratelimit.LimitedError
	if !errors.As(err, &le) || le.OID != "9.9.9" || le.RetryAfter() < 300*time.Millisecond || le.RetryAfter() > 500*time.Millisecond {
		t.Fatalf("turn beyond max_wait: %v, want a LimitedError for 9.9.9 with Retry-After about 500ms", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("refusal took %s; it must not wait", time.Since(start))
	}

	for range 5 {
		if err := l.Wait(ctx, "8.8.8"); err != nil {
			t.Fatalf("organization without a limit: %v", err)
		}
	}

	// A caller that gives up while waiting gets its context's error.
	slow := c.RateLimiter(ratelimit.Limit{RequestsPerSecond: 1, Burst: 1, MaxWait: 5 * time.Second}, nil, nil)
	if err := slow.Wait(ctx, "7.7.7"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := slow.Wait(cctx, "7.7.7"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled wait: %v", err)
	}

	var none *RateLimiter
	if none.Enabled() || none.Wait(ctx, "1.2.3") != nil {
		t.Error("a nil RateLimiter limits")
	}
	if c.RateLimiter(ratelimit.Limit{}, map[string]ratelimit.Limit{"1.2.3": {}}, nil).Enabled() {
		t.Error("a limiter without any limit says it is enabled")
	}
}
