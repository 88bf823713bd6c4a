package assertion

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// countingSource issues tok-1, tok-2, ... and can be made to block or
// fail.
type countingSource struct {
	clock     *clocktest.Clock
	expiresIn time.Duration
	n         atomic.Int64
	gate      chan struct{} // if non-nil, Token waits for it to close
	fail      atomic.Int64  // number of calls still to fail
	sawCancel atomic.Bool   // the shared ctx was cancelled
}

var errUpstream = errors.New("assertion: upstream failure")

func (s *countingSource) Token(ctx context.Context) (*Token, error) {
	n := s.n.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if ctx.Err() != nil {
		s.sawCancel.Store(true)
	}
	if s.fail.Add(-1) >= 0 {
		return nil, errUpstream
	}
	t := &Token{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer", ExpiresIn: s.expiresIn}
	if s.expiresIn > 0 {
		t.Expiry = s.clock.Now().Add(s.expiresIn)
	}
	return t, nil
}

// basicConfig turns off the policies layered over plain caching (refresh
// ahead, minimum interval, failure hold), for tests of caching itself.
func basicConfig(clock *clocktest.Clock) CacheConfig {
	return CacheConfig{Clock: clock.Now, RefreshAhead: -1, MinInterval: -1, FailureHold: -1}
}

var testKey = Key{TokenURL: "https://ehr.example.com/token", ClientID: "client-1", Scope: "system/*.read"}

func mustToken(t *testing.T, c *Cache, src TokenSource, want string) {
	t.Helper()
	tok, err := c.Token(context.Background(), testKey, src)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if tok.AccessToken != want {
		t.Fatalf("Token = %q, want %q", tok.AccessToken, want)
	}
}

func TestCacheHitAndExpiry(t *testing.T) {
	tests := []struct {
		name      string
		cfg       CacheConfig
		expiresIn time.Duration
		refreshAt time.Duration // after issue
	}{
		{"default margin", CacheConfig{}, 570 * time.Second, 510 * time.Second},
		{"custom margin", CacheConfig{RefreshMargin: 10 * time.Second}, 300 * time.Second, 290 * time.Second},
		{"margin equal to lifetime halves", CacheConfig{}, 60 * time.Second, 30 * time.Second},
		{"margin above lifetime halves", CacheConfig{RefreshMargin: 10 * time.Minute}, 300 * time.Second, 150 * time.Second},
		{"no expires_in uses default lifetime", CacheConfig{}, 0, 4 * time.Minute},
		{"no expires_in, custom default", CacheConfig{DefaultLifetime: 30 * time.Minute}, 0, 29 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			tc.cfg.Clock = clock.Now
			tc.cfg.RefreshAhead, tc.cfg.MinInterval, tc.cfg.FailureHold = -1, -1, -1
			c := NewCache(tc.cfg)
			src := &countingSource{clock: clock, expiresIn: tc.expiresIn}

			mustToken(t, c, src, "tok-1")
			mustToken(t, c, src, "tok-1")
			if got, want := c.Stats(), (CacheStats{Hits: 1, Misses: 1, Exchanges: 1}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			clock.Advance(tc.refreshAt - time.Second)
			mustToken(t, c, src, "tok-1")
			clock.Advance(time.Second)
			mustToken(t, c, src, "tok-2")
			mustToken(t, c, src, "tok-2")
			if got, want := c.Stats(), (CacheStats{Hits: 3, Misses: 2, Exchanges: 2}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
		})
	}
}

func TestCacheKeysAreSeparate(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now})
	src := &countingSource{clock: clock, expiresIn: time.Hour}
	keys := []Key{
		testKey,
		{TokenURL: testKey.TokenURL, ClientID: testKey.ClientID, Scope: "system/Patient.read"},
		{TokenURL: testKey.TokenURL, ClientID: "client-2", Scope: testKey.Scope},
		{TokenURL: "https://other.example.com/token", ClientID: testKey.ClientID, Scope: testKey.Scope},
	}
	for i, k := range keys {
		tok, err := c.Token(context.Background(), k, src)
		if err != nil || tok.AccessToken != fmt.Sprintf("tok-%d", i+1) {
			t.Errorf("key %v: %v, %v", k, tok, err)
		}
	}
}

func TestKeyString(t *testing.T) {
	tests := []struct{ a, b Key }{
		{Key{TokenURL: "a", ClientID: "b c"}, Key{TokenURL: "a b", ClientID: "c"}},
		{Key{TokenURL: "x&client_id=y", ClientID: ""}, Key{TokenURL: "x", ClientID: "y"}},
		{Key{ClientID: "c", Scope: ""}, Key{ClientID: "", Scope: "c"}},
		{Key{Scope: "a|b"}, Key{Scope: "a b"}},
	}
	for _, tc := range tests {
		if tc.a.String() == tc.b.String() {
			t.Errorf("%#v and %#v share the cache key %q", tc.a, tc.b, tc.a.String())
		}
	}
	if testKey.String() != (Key{TokenURL: testKey.TokenURL, ClientID: testKey.ClientID, Scope: testKey.Scope}).String() {
		t.Error("equal keys differ")
	}
}

// concurrently runs n callers of c.Token released together and returns
// the tokens they got.
func concurrently(t *testing.T, n int, call func() (*Token, error)) []string {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := call()
			errs[i] = err
			if tok != nil {
				got[i] = tok.AccessToken
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent call: %v", err)
		}
	}
	return got
}

// waitFor polls cond until it holds. It may be called from any goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheConcurrentCallersShareOneExchange(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now})
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second, gate: make(chan struct{})}
	go func() {
		// Hold the exchange until every caller has missed, then let it go.
		waitFor(t, "50 misses", func() bool { return c.Stats().Misses == 50 })
		time.Sleep(20 * time.Millisecond)
		close(src.gate)
	}()
	got := concurrently(t, 50, func() (*Token, error) { return c.Token(context.Background(), testKey, src) })
	for i, tok := range got {
		if tok != "tok-1" {
			t.Errorf("caller %d got %q", i, tok)
		}
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
	if s := c.Stats(); s.Exchanges != 1 || s.Misses != 50 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestCacheWaiterHonoursOwnContext(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now})
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second, gate: make(chan struct{})}

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { // starts the shared exchange with a context it then cancels
		_, err := c.Token(ctx, testKey, src)
		first <- err
	}()
	waitFor(t, "exchange to start", func() bool { return src.n.Load() == 1 })

	second := make(chan *Token, 1)
	go func() {
		tok, err := c.Token(context.Background(), testKey, src)
		if err != nil {
			t.Errorf("second caller: %v", err)
		}
		second <- tok
	}()
	waitFor(t, "second caller to wait", func() bool { return c.Stats().Misses == 2 })

	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled caller did not return while the exchange was blocked")
	}

	close(src.gate)
	if tok := <-second; tok == nil || tok.AccessToken != "tok-1" {
		t.Errorf("second caller got %v", tok)
	}
	if src.sawCancel.Load() {
		t.Error("the shared exchange saw the first caller's cancellation")
	}
	mustToken(t, c, src, "tok-1") // the shared result was cached
	if n := src.n.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	c.Invalidate(testKey, "tok-1")
	if _, err := c.Token(done, testKey, src); !errors.Is(err, context.Canceled) {
		t.Errorf("done ctx on a miss: err = %v", err)
	}
	if n := src.n.Load(); n != 1 {
		t.Errorf("a done ctx started an exchange")
	}
}

func TestCacheInvalidate(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(basicConfig(clock))
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second}
	mustToken(t, c, src, "tok-1")

	// A token that is not the cached one is ignored.
	c.Invalidate(testKey, "tok-0")
	c.Invalidate(testKey, "")
	c.Invalidate(Key{TokenURL: "https://other.example.com/token"}, "tok-1")
	mustToken(t, c, src, "tok-1")

	// 50 callers see a 401 for tok-1, invalidate it and ask again: one
	// new exchange.
	got := concurrently(t, 50, func() (*Token, error) {
		c.Invalidate(testKey, "tok-1")
		return c.Token(context.Background(), testKey, src)
	})
	for i, tok := range got {
		if tok != "tok-2" {
			t.Errorf("caller %d got %q, want tok-2", i, tok)
		}
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("%d exchanges, want 2", n)
	}

	// A late Invalidate for the old token keeps the new one.
	c.Invalidate(testKey, "tok-1")
	mustToken(t, c, src, "tok-2")
	c.Invalidate(testKey, "tok-2")
	mustToken(t, c, src, "tok-3")
}

func TestCacheInvalidateWhileExchangeBlocked(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(basicConfig(clock))
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second}
	mustToken(t, c, src, "tok-1")
	src.gate = make(chan struct{})
	go func() {
		waitFor(t, "50 misses", func() bool { return c.Stats().Misses == 51 })
		time.Sleep(20 * time.Millisecond)
		close(src.gate)
	}()
	got := concurrently(t, 50, func() (*Token, error) {
		c.Invalidate(testKey, "tok-1")
		return c.Token(context.Background(), testKey, src)
	})
	for i, tok := range got {
		if tok != "tok-2" {
			t.Errorf("caller %d got %q, want tok-2", i, tok)
		}
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("%d exchanges, want 2", n)
	}
}

func TestCacheErrorsAreNotCached(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(basicConfig(clock))
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second, gate: make(chan struct{})}
	src.fail.Store(1)
	go func() {
		waitFor(t, "10 misses", func() bool { return c.Stats().Misses == 10 })
		time.Sleep(20 * time.Millisecond) // let the last caller join the flight
		close(src.gate)
	}()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.Token(context.Background(), testKey, src); !errors.Is(err, errUpstream) {
				t.Errorf("waiter err = %v, want the shared failure", err)
			}
		})
	}
	wg.Wait()
	mustToken(t, c, src, "tok-2")
	if s := c.Stats(); s.Exchanges != 2 || s.Hits != 0 {
		t.Errorf("Stats = %+v, want 2 exchanges and no hits", s)
	}
}

func TestCacheRejectsEmptyToken(t *testing.T) {
	c := NewCache(CacheConfig{})
	empty := tokenSourceFunc(func(context.Context) (*Token, error) { return &Token{}, nil })
	if _, err := c.Token(context.Background(), testKey, empty); err == nil {
		t.Error("empty token accepted")
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now})
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second}
	tok, err := c.Token(context.Background(), testKey, src)
	if err != nil {
		t.Fatal(err)
	}
	tok.AccessToken = "mutated"
	mustToken(t, c, src, "tok-1")
}

type tokenSourceFunc func(context.Context) (*Token, error)

func (f tokenSourceFunc) Token(ctx context.Context) (*Token, error) { return f(ctx) }

// TestCacheSourceWithExchanger composes Cache.Source over
// Exchanger.Source against an httptest token endpoint.
func TestCacheSourceWithExchanger(t *testing.T) {
	clock := newFakeClock()
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"`+testAccessToken+`","token_type":"Bearer","expires_in":570}`))
	req := Request{TokenURL: ts.URL + "/token", ClientID: "client-1", Scope: "system/*.read"}
	c := NewCache(basicConfig(clock))
	src := c.Source(Key{TokenURL: req.TokenURL, ClientID: req.ClientID, Scope: req.Scope}, newExchanger(t, clock, ts.Client()).Source(req))

	got := concurrently(t, 50, func() (*Token, error) { return src.Token(context.Background()) })
	for _, tok := range got {
		if tok != testAccessToken {
			t.Fatalf("got %q", tok)
		}
	}
	if ts.calls() != 1 {
		t.Errorf("%d token requests, want 1", ts.calls())
	}
	clock.Advance(510 * time.Second)
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ts.calls() != 2 {
		t.Errorf("%d token requests after the refresh margin, want 2", ts.calls())
	}

	// Failures pass through uncached and without secrets.
	ts.setRespond(jsonResponse(http.StatusUnauthorized, `{"error":"invalid_client"}`, "X-Request-Id", "abc"))
	c.Invalidate(Key{TokenURL: req.TokenURL, ClientID: req.ClientID, Scope: req.Scope}, testAccessToken)
	for range 2 {
		_, err := src.Token(context.Background())
		var re *RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.RequestID != "abc" {
			t.Fatalf("err = %v", err)
		}
		checkNoLeaks(t, err, nil, ts.lastAssertion(), testAccessToken)
	}
	if ts.calls() != 4 {
		t.Errorf("%d token requests, want 4 (errors are not cached)", ts.calls())
	}
}

// fixedKey is a Keyed of one Key.
type fixedKey Key

func (k fixedKey) TokenKey() Key { return Key(k) }

// A Slot finds the same token as its Key, with the same accounting;
// once the Cache sweeps the key and makes it anew, the Slot follows; a
// Slot of another Cache is looked up by its Key.
func TestCacheSlot(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(basicConfig(clock))
	src := &countingSource{clock: clock, expiresIn: time.Hour}
	if size := unsafe.Sizeof(Slot{}); size > 32 {
		t.Errorf("a Slot is %d bytes, more than 32 (one per reused tenant)", size)
	}
	s := c.Slot(fixedKey(testKey))
	if s.Key() != testKey {
		t.Fatalf("Key = %v", s.Key())
	}
	ctx := context.Background()
	tokenAt := func(c *Cache, s *Slot, want string) {
		t.Helper()
		tok, err := c.TokenAt(ctx, s, src)
		if err != nil || tok.AccessToken != want {
			t.Fatalf("TokenAt = %v, %v; want %s", tok, err, want)
		}
		if got := tok.Authorization(); len(got) != 1 || got[0] != "Bearer "+want {
			t.Fatalf("Authorization = %q", got)
		}
	}
	tokenAt(c, s, "tok-1")
	mustToken(t, c, src, "tok-1") // the Key's token is the Slot's
	tokenAt(c, s, "tok-1")
	if got, want := c.Stats(), (CacheStats{Hits: 2, Misses: 1, Exchanges: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = c.TokenAt(ctx, s, src) }); got != 0 {
		t.Errorf("TokenAt allocates %v times on a hit", got)
	}

	// Expired and idle: the next exchange's sweep drops the key.
	clock.Advance(2 * time.Hour)
	other := Key{TokenURL: testKey.TokenURL, ClientID: "client-2", Scope: testKey.Scope}
	if _, err := c.Token(ctx, other, src); err != nil {
		t.Fatal(err)
	}
	// The sweep runs after the exchange has handed its token over.
	waitFor(t, "the sweep of the idle key", func() bool { st := s.st.Load(); return st != nil && st.removed.Load() })
	tokenAt(c, s, "tok-3")
	mustToken(t, c, src, "tok-3") // the key made anew is the Slot's
	if st := s.st.Load(); st.removed.Load() || c.states[testKey] != st {
		t.Error("the Slot does not follow the key made anew")
	}

	d := NewCache(basicConfig(clock))
	tokenAt(d, s, "tok-4") // another Cache's Slot: its own token for the Key
	if _, ok := d.states[testKey]; !ok {
		t.Error("another Cache's Slot was not looked up by its Key")
	}
}
