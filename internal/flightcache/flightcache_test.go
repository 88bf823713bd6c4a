package flightcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

func TestGetCachesForTTL(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	c := New[string](Config{TTL: time.Minute, Clock: clock.Now})
	var calls atomic.Int64
	fetch := func(context.Context) (string, error) { calls.Add(1); return "v", nil }

	steps := []struct {
		advance   time.Duration
		wantCalls int64
	}{{0, 1}, {30 * time.Second, 1}, {29 * time.Second, 1}, {time.Second, 2}, {10 * time.Second, 2}}
	for i, s := range steps {
		clock.Advance(s.advance)
		v, at, err := c.Get(context.Background(), "k", fetch)
		if err != nil || v != "v" || at.IsZero() {
			t.Fatalf("step %d: %q %v %v", i, v, at, err)
		}
		if got := calls.Load(); got != s.wantCalls {
			t.Fatalf("step %d: %d fetches, want %d", i, got, s.wantCalls)
		}
	}
	c.Forget("k")
	if _, _, _ = c.Get(context.Background(), "k", fetch); calls.Load() != 3 {
		t.Errorf("Forget did not force a fetch")
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	boom := errors.New("boom")
	if _, _, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	v, _, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("after an error: %d %v", v, err)
	}
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	var calls atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) (int, error) { calls.Add(1); <-release; return 42, nil }
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, _, err := c.Get(context.Background(), "k", fetch); v != 42 || err != nil {
				t.Errorf("Get = %d %v", v, err)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("%d fetches, want 1", calls.Load())
	}
}

func TestCallerCancellationDoesNotFailOthers(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	release := make(chan struct{})
	var fetchCtxErr atomic.Value
	fetch := func(ctx context.Context) (int, error) {
		<-release
		if err := ctx.Err(); err != nil {
			fetchCtxErr.Store(err)
		}
		return 1, nil
	}
	impatient, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := c.Get(impatient, "k", fetch); done <- err }()
	patient := make(chan int, 1)
	time.Sleep(10 * time.Millisecond)
	go func() { v, _, _ := c.Get(context.Background(), "k", fetch); patient <- v }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient caller got %v", err)
	}
	close(release)
	if v := <-patient; v != 1 {
		t.Fatalf("patient caller got %d", v)
	}
	if err := fetchCtxErr.Load(); err != nil {
		t.Errorf("the shared fetch saw the impatient caller's cancellation: %v", err)
	}
}

func TestFetchTimeoutBoundsDetachedFetch(t *testing.T) {
	c := New[int](Config{TTL: time.Hour, FetchTimeout: 20 * time.Millisecond})
	_, _, err := c.Get(context.Background(), "k", func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
