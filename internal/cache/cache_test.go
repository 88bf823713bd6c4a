package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

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

func TestPeekHoldsPastTTLForKeep(t *testing.T) {
	tests := []struct {
		name     string
		keep     time.Duration
		advance  time.Duration
		wantPeek bool
		wantGet  bool // served fresh, without fetching
	}{
		{"fresh", time.Hour, 30 * time.Second, true, true},
		{"expired, within keep", time.Hour, time.Minute + 30*time.Minute, true, false},
		{"at the end of keep", time.Hour, time.Minute + time.Hour, true, false},
		{"past keep", time.Hour, time.Minute + time.Hour + time.Second, false, false},
		{"no keep, expired", 0, time.Minute + time.Second, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
			c := New[string](Config{TTL: time.Minute, Keep: tt.keep, Clock: clock.Now})
			put := c.Put("k", "v")
			clock.Advance(tt.advance)
			it, ok := c.Peek("k")
			if ok != tt.wantPeek || (ok && (it.Value != "v" || !it.FetchedAt.Equal(put.FetchedAt))) {
				t.Errorf("Peek = %+v %v, want held %v", it, ok, tt.wantPeek)
			}
			if _, ok := c.Fresh("k"); ok != tt.wantGet {
				t.Errorf("Fresh = %v, want %v", ok, tt.wantGet)
			}
		})
	}
}

func TestSetKeepsFetchedAt(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	c := New[int](Config{TTL: time.Minute, Clock: clock.Now})
	old := clock.Now().Add(-50 * time.Second)
	c.Set("k", Item[int]{Value: 1, FetchedAt: old})
	if v, ok := c.Fresh("k"); !ok || v != 1 {
		t.Fatalf("Fresh = %d %v", v, ok)
	}
	clock.Advance(10 * time.Second)
	if _, ok := c.Fresh("k"); ok {
		t.Errorf("fresh a minute after its FetchedAt")
	}
}

func TestGetMaxAge(t *testing.T) {
	tests := []struct {
		name      string
		age       time.Duration
		maxAge    time.Duration
		wantFetch bool
	}{
		{"younger than maxAge", 10 * time.Second, 30 * time.Second, false},
		{"older than maxAge", 40 * time.Second, 30 * time.Second, true},
		{"maxAge above the TTL is the TTL", 70 * time.Second, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
			c := New[string](Config{TTL: time.Minute, Clock: clock.Now})
			c.Put("k", "old")
			clock.Advance(tt.age)
			fetched := false
			v, at, err := c.GetMaxAge(context.Background(), "k", tt.maxAge, func(context.Context) (string, error) {
				fetched = true
				return "new", nil
			})
			if err != nil || fetched != tt.wantFetch {
				t.Fatalf("fetched = %v (err %v), want %v", fetched, err, tt.wantFetch)
			}
			if tt.wantFetch && (v != "new" || !at.Equal(clock.Now())) {
				t.Errorf("got %q at %v", v, at)
			}
			if !tt.wantFetch && v != "old" {
				t.Errorf("got %q", v)
			}
		})
	}
}

func TestDoSharesAndDoesNotCache(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	var calls atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) (int, error) { calls.Add(1); <-release; return 42, nil }
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.Do(context.Background(), "k", fetch); err != nil || v != 42 {
				errs <- fmt.Errorf("Do = %d %v", v, err)
			}
		}()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if _, ok := c.Peek("k"); ok {
		t.Errorf("Do cached its value")
	}
}

func TestDoDetachesFromCallerCancellation(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	var fetchErr atomic.Value
	go func() {
		<-started
		cancel()
	}()
	done := make(chan struct{})
	c.Refresh(ctx, "k", func(fctx context.Context) (int, error) {
		close(started)
		<-release
		if err := fctx.Err(); err != nil {
			fetchErr.Store(err)
		}
		c.Put("k", 7)
		return 7, nil
	}, func(err error) {
		if err != nil {
			fetchErr.Store(err)
		}
		close(done)
	})
	if _, err := c.Do(ctx, "k", func(context.Context) (int, error) { t.Error("second fetch"); return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Do after cancel = %v", err)
	}
	close(release)
	<-done
	if err := fetchErr.Load(); err != nil {
		t.Errorf("the shared fetch saw %v", err)
	}
	if v, ok := c.Fresh("k"); !ok || v != 7 {
		t.Errorf("Fresh = %d %v", v, ok)
	}
}

func TestForgetMatching(t *testing.T) {
	c := New[int](Config{TTL: time.Hour})
	for _, k := range []string{"a\x001", "a\x002", "ab\x001", "b\x001"} {
		c.Put(k, 1)
	}
	if !c.ForgetMatching(func(k string) bool { return strings.HasPrefix(k, "a\x00") }) {
		t.Fatal("Memory cannot list its keys")
	}
	for k, want := range map[string]bool{"a\x001": false, "a\x002": false, "ab\x001": true, "b\x001": true} {
		if _, ok := c.Peek(k); ok != want {
			t.Errorf("%q held = %v, want %v", k, ok, want)
		}
	}
}

func TestDeleteAndForget(t *testing.T) {
	tests := []struct {
		name       string
		drop       func(c *Cache[int], key string)
		wantJoined bool // a lookup after the drop joins the fetch in flight
	}{
		{"Delete leaves the flight joinable", (*Cache[int]).Delete, true},
		{"Forget does not", (*Cache[int]).Forget, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[int](Config{TTL: time.Hour})
			c.Put("k", 1)
			started, release := make(chan struct{}), make(chan struct{})
			done := make(chan struct{})
			c.Refresh(context.Background(), "k", func(context.Context) (int, error) {
				close(started)
				<-release
				return 2, nil
			}, func(error) { close(done) })
			<-started
			tt.drop(c, "k")
			if _, ok := c.Peek("k"); ok {
				t.Errorf("item held after the drop")
			}
			var second atomic.Bool
			got := make(chan int, 1)
			go func() {
				v, _ := c.Do(context.Background(), "k", func(context.Context) (int, error) { second.Store(true); return 3, nil })
				got <- v
			}()
			// A lookup that did not join finishes without the release; one
			// that joined waits for it.
			var v int
			select {
			case v = <-got:
				close(release)
			case <-time.After(200 * time.Millisecond):
				close(release)
				v = <-got
			}
			<-done
			if joined := !second.Load(); joined != tt.wantJoined || (joined && v != 2) {
				t.Errorf("joined = %v (value %d), want %v", joined, v, tt.wantJoined)
			}
		})
	}
}

// A key is copied unless the cache is told the keys are its own: a key
// sliced from a larger string must not keep that string alive.
func TestKeyCopies(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ownKeys bool
		shared  bool
	}{
		{"copied by default", false, false},
		{"kept with OwnKeys", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			line := "GET /fhir/2.999.1/Patient/1 HTTP/1.1"
			key := line[10:17]
			c := New[int](Config{TTL: time.Hour, OwnKeys: tt.ownKeys})
			c.Put(key, 1)
			var held string
			c.items.(*Memory[int]).Range(func(k string) bool { held = k; return false })
			if held != key {
				t.Fatalf("held key %q, want %q", held, key)
			}
			if shared := unsafe.StringData(held) == unsafe.StringData(key); shared != tt.shared {
				t.Errorf("key shares the caller's bytes: %v, want %v", shared, tt.shared)
			}
		})
	}
}

// A Memory keeps FetchedAt as Unix nanoseconds: what comes back is the
// same instant (and the zero time stays zero), whatever the location.
func TestMemoryKeepsFetchedAtInstant(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	for _, at := range []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(2026, 11, 1, 12, 0, 0, 123456789, time.UTC),
		time.Date(2026, 11, 1, 21, 0, 0, 1, tokyo),
		time.Now(), // with a monotonic reading
	} {
		m := NewMemory[int](nil, 0)
		m.Save("k", Item[int]{Value: 7, FetchedAt: at}, time.Hour)
		got, ok := m.Load("k")
		if !ok || got.Value != 7 || !got.FetchedAt.Equal(at) || got.FetchedAt.IsZero() != at.IsZero() {
			t.Errorf("Save(FetchedAt %v) then Load = %v, %+v", at, ok, got)
		}
	}
}

// A Memory's slot for a pointer value is its key and three words: the
// value and two int64 times, not two time.Time.
func TestMemorySlotSize(t *testing.T) {
	if got := unsafe.Sizeof(kept[*int]{}); got != 24 {
		t.Errorf("kept[*int] is %d bytes, want 24", got)
	}
}

// WithDropped tells of every value that stops being the one held for
// its key, on every path an item leaves or is overwritten by.
func TestWithDropped(t *testing.T) {
	type drop struct {
		old, replacement int
		replaced         bool
	}
	tests := []struct {
		name   string
		change func(c *Cache[int], clock *clocktest.Clock)
		want   []drop
	}{
		{"Put over another value", func(c *Cache[int], _ *clocktest.Clock) { c.Put("k", 2) }, []drop{{1, 2, true}}},
		{"Set of the same value", func(c *Cache[int], _ *clocktest.Clock) {
			it, _ := c.Peek("k")
			c.Set("k", it)
		}, []drop{{1, 1, true}}},
		{"Put of another key", func(c *Cache[int], _ *clocktest.Clock) { c.Put("j", 2) }, nil},
		{"Delete", func(c *Cache[int], _ *clocktest.Clock) { c.Delete("k") }, []drop{{1, 0, false}}},
		{"Delete of a key not held", func(c *Cache[int], _ *clocktest.Clock) { c.Delete("j") }, nil},
		{"Forget", func(c *Cache[int], _ *clocktest.Clock) { c.Forget("k") }, []drop{{1, 0, false}}},
		{"ForgetMatching", func(c *Cache[int], _ *clocktest.Clock) {
			c.ForgetMatching(func(k string) bool { return k == "k" })
		}, []drop{{1, 0, false}}},
		{"swept once expired", func(c *Cache[int], clock *clocktest.Clock) {
			clock.Advance(2 * time.Hour) // past TTL and keep, and the sweep interval
			c.Put("j", 2)                // a save sweeps
		}, []drop{{1, 0, false}}},
		{"Do does not store", func(c *Cache[int], _ *clocktest.Clock) {
			_, _ = c.Do(context.Background(), "k", func(context.Context) (int, error) { return 3, nil })
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
			var got []drop
			c := New(Config{TTL: time.Hour, Keep: time.Minute, Clock: clock.Now},
				WithDropped(func(old, replacement int, replaced bool) { got = append(got, drop{old, replacement, replaced}) }))
			c.Put("k", 1)
			if got != nil {
				t.Fatalf("a first Put told of %v", got)
			}
			tt.change(c, clock)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("dropped %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("not with another Store", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("New took WithDropped with WithStore")
			}
		}()
		New(Config{TTL: time.Hour}, WithStore[int](&recordingStore{items: map[string]Item[int]{}}),
			WithDropped(func(int, int, bool) {}))
	})
}
