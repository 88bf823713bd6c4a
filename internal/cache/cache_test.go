package cache

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

// recordingStore is a Store other than Memory: a map that counts what
// the Cache asks of it.
type recordingStore struct {
	mu          sync.Mutex
	items       map[string]Item[int]
	saves, dels int
}

func (s *recordingStore) Load(key string) (Item[int], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	return it, ok
}

func (s *recordingStore) Save(key string, it Item[int], _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	s.items[key] = it
}

func (s *recordingStore) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dels++
	delete(s.items, key)
}

func (s *recordingStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// The storage seam: a Cache keeps its items in the Store it is given,
// and a second Cache on the same Store (another replica) is answered
// from it without fetching.
func TestWithStore(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	st := &recordingStore{items: map[string]Item[int]{}}
	a := New(Config{TTL: time.Minute, Clock: clock.Now}, WithStore[int](st))
	b := New(Config{TTL: time.Minute, Clock: clock.Now}, WithStore[int](st))
	var calls atomic.Int64
	fetch := func(context.Context) (int, error) { calls.Add(1); return 7, nil }
	if v, _, err := a.Get(context.Background(), "k", fetch); err != nil || v != 7 {
		t.Fatalf("a: %d %v", v, err)
	}
	if v, _, err := b.Get(context.Background(), "k", fetch); err != nil || v != 7 || calls.Load() != 1 {
		t.Fatalf("b: %d %v after %d fetches, want the stored value and 1 fetch", v, err, calls.Load())
	}
	if st.saves != 1 || a.Len() != 1 {
		t.Errorf("saves = %d, Len = %d; want 1, 1", st.saves, a.Len())
	}
	b.Forget("k")
	if st.dels != 1 || a.Len() != 0 {
		t.Errorf("Forget: deletes = %d, Len = %d; want 1, 0", st.dels, a.Len())
	}
	clock.Advance(time.Minute)
	if _, _, err := a.Get(context.Background(), "k", fetch); err != nil || calls.Load() != 2 {
		t.Errorf("after Forget: %d fetches, want 2", calls.Load())
	}
}
