package assertion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// numberedTokens is a token endpoint that issues at-1, at-2, ... with the
// given lifetime.
func numberedTokens(expiresIn int) func(http.ResponseWriter, *http.Request, url.Values) {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request, f url.Values) {
		jsonResponse(200, fmt.Sprintf(`{"access_token":"at-SECRET-%d","token_type":"Bearer","expires_in":%d}`, n.Add(1), expiresIn))(w, r, f)
	}
}

func TestCacheKeySeparatesB2BContexts(t *testing.T) {
	clock := newFakeClock()
	ts := newTokenServer(t, numberedTokens(570))
	e := newExchanger(t, clock, ts.Client())
	c := NewCache(CacheConfig{Clock: clock.Now})
	treat := fullB2B()
	payment := fullB2B()
	payment.PurposeOfUse = []string{"urn:oid:2.16.840.1.113883.5.8#HPAYMT"}
	otherUser := fullB2B()
	otherUser.SubjectName, otherUser.SubjectID = "Dr. John Doe", "urn:oid:2.16.840.1.113883.4.6#9876543210"

	get := func(b *B2B, identity string) string {
		t.Helper()
		r := Request{TokenURL: ts.URL + "/token", ClientID: "c", Scope: "system/*.read", UDAP: true, B2B: b}
		k := r.Key()
		k.Identity = identity
		tok, err := c.Token(context.Background(), k, e.Source(r))
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	steps := []struct {
		name     string
		b2b      *B2B
		identity string
		want     string
		calls    int
	}{
		{"treatment", treat, "", "at-SECRET-1", 1},
		{"treatment again, same context rebuilt", fullB2B(), "", "at-SECRET-1", 1},
		{"payment", payment, "", "at-SECRET-2", 2},
		{"another user", otherUser, "", "at-SECRET-3", 3},
		{"no context", nil, "", "at-SECRET-4", 4},
		{"treatment with another identity", treat, "second", "at-SECRET-5", 5},
		{"payment again", payment, "", "at-SECRET-2", 5},
		{"no context again", nil, "", "at-SECRET-4", 5},
	}
	for _, s := range steps {
		if got := get(s.b2b, s.identity); got != s.want || ts.calls() != s.calls {
			t.Errorf("%s: token %q after %d exchanges, want %q after %d", s.name, got, ts.calls(), s.want, s.calls)
		}
	}
	// Each exchange asserted its own context.
	_, payload := rawSegments(t, ts.forms[1].Get("client_assertion"))
	pou := payload["extensions"].(map[string]any)["hl7-b2b"].(map[string]any)["purpose_of_use"].([]any)
	if len(pou) != 1 || pou[0] != "urn:oid:2.16.840.1.113883.5.8#HPAYMT" {
		t.Errorf("second exchange asserted %v", pou)
	}
}

func TestCacheMinIntervalThrottles401Storm(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	c := NewCache(CacheConfig{Clock: clock.Now, RefreshAhead: -1}) // MinInterval: the 60s default
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second}
	mustToken(t, c, src, "tok-1")

	storm := func(stale string, wantRetryAt time.Time) {
		t.Helper()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				c.Invalidate(testKey, stale)
				_, err := c.Token(context.Background(), testKey, src)
				var te *ThrottledError
				if !errors.Is(err, ErrThrottled) || !errors.As(err, &te) {
					t.Errorf("err = %v, want ErrThrottled", err)
					return
				}
				if !te.RetryAt.Equal(wantRetryAt) || te.Key != testKey {
					t.Errorf("ThrottledError = %+v, want RetryAt %v", te, wantRetryAt)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "assertion: ") || !strings.Contains(msg, testKey.TokenURL) || !strings.Contains(msg, wantRetryAt.UTC().Format(time.RFC3339)) {
					t.Errorf("message %q should name the token URL and when to retry", msg)
				}
				assertNoSecrets(t, "ThrottledError", msg, stale)
			})
		}
		wg.Wait()
	}

	storm("tok-1", t0.Add(time.Minute))
	if n := src.n.Load(); n != 1 {
		t.Fatalf("%d exchanges during the storm, want 1", n)
	}
	if s := c.Stats(); s.Throttled != 50 || s.Exchanges != 1 {
		t.Errorf("Stats = %+v", s)
	}
	clock.Advance(59 * time.Second)
	if _, err := c.Token(context.Background(), testKey, src); !errors.Is(err, ErrThrottled) {
		t.Fatalf("59s later: err = %v, want still throttled", err)
	}
	clock.Advance(time.Second)
	mustToken(t, c, src, "tok-2") // MinInterval after tok-1's exchange

	storm("tok-2", t0.Add(2*time.Minute))
	clock.Advance(time.Minute)
	mustToken(t, c, src, "tok-3")

	// A refusal more than MinInterval after the exchange is exchanged at
	// once.
	clock.Advance(61 * time.Second)
	c.Invalidate(testKey, "tok-3")
	mustToken(t, c, src, "tok-4")
	if n := src.n.Load(); n != 4 {
		t.Errorf("%d exchanges, want 4: one per interval", n)
	}

	// MinInterval < 0 turns throttling off.
	c2 := NewCache(CacheConfig{Clock: clock.Now, MinInterval: -1, RefreshAhead: -1})
	mustToken(t, c2, src, "tok-5")
	c2.Invalidate(testKey, "tok-5")
	mustToken(t, c2, src, "tok-6")
}

func TestCacheNaturalRefreshRespectsMinInterval(t *testing.T) {
	tests := []struct {
		name        string
		minInterval time.Duration
		expiresIn   time.Duration
		refreshAt   time.Duration // after issue
	}{
		{"long token: margin decides", time.Minute, 570 * time.Second, 510 * time.Second},
		{"60s token, halved margin deferred to MinInterval", time.Minute, 60 * time.Second, 60 * time.Second},
		{"90s token, margin 45s deferred to 60s", time.Minute, 90 * time.Second, 60 * time.Second},
		{"30s token expires before MinInterval: replaced at expiry", time.Minute, 30 * time.Second, 30 * time.Second},
		{"no MinInterval: halved margin", -1, 60 * time.Second, 30 * time.Second},
		{"MinInterval 2m on a 100s token", 2 * time.Minute, 100 * time.Second, 100 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			c := NewCache(CacheConfig{Clock: clock.Now, MinInterval: tc.minInterval, RefreshAhead: -1})
			src := &countingSource{clock: clock, expiresIn: tc.expiresIn}
			mustToken(t, c, src, "tok-1")
			clock.Advance(tc.refreshAt - time.Second)
			mustToken(t, c, src, "tok-1")
			clock.Advance(time.Second)
			mustToken(t, c, src, "tok-2")
			if s := c.Stats(); s.Throttled != 0 || s.Exchanges != 2 {
				t.Errorf("Stats = %+v: a natural refresh is never refused", s)
			}
		})
	}
}

func TestCacheFailureHold(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now, RefreshAhead: -1}) // FailureHold 1s, MinInterval 60s
	src := &countingSource{clock: clock, expiresIn: 570 * time.Second}
	src.fail.Store(1 << 30)
	otherKey := Key{TokenURL: "https://other.example.com/token", ClientID: "c"}
	other := &countingSource{clock: clock, expiresIn: 570 * time.Second}

	holds := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, hold := range holds {
		hold *= time.Second
		_, first := c.Token(context.Background(), testKey, src)
		if !errors.Is(first, errUpstream) || src.n.Load() != int64(i+1) {
			t.Fatalf("failure %d: err = %v after %d exchanges", i+1, first, src.n.Load())
		}
		clock.Advance(hold - time.Millisecond)
		for range 5 {
			if _, err := c.Token(context.Background(), testKey, src); err != first {
				t.Fatalf("failure %d held: err = %v, want the same error", i+1, err)
			}
		}
		if src.n.Load() != int64(i+1) {
			t.Fatalf("an exchange happened within the %v hold", hold)
		}
		// Other keys are unaffected.
		if i == 0 {
			mustTokenFor(t, c, otherKey, other, "tok-1")
		}
		clock.Advance(time.Millisecond)
	}
	if s := c.Stats(); s.Failures != int64(len(holds)) || s.Held != int64(5*len(holds)) {
		t.Errorf("Stats = %+v", s)
	}

	// Success clears the count: the next failure is held for 1s again.
	src.fail.Store(0)
	if tok, err := c.Token(context.Background(), testKey, src); err != nil || tok.AccessToken != "tok-9" {
		t.Fatalf("after recovery: %v, %v", tok, err)
	}
	clock.Advance(570 * time.Second)
	src.fail.Store(1)
	if _, err := c.Token(context.Background(), testKey, src); !errors.Is(err, errUpstream) {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	mustToken(t, c, src, "tok-11")

	// ErrNoKey reached no server: it is not held.
	noKey := tokenSourceFunc(func(context.Context) (*Token, error) { return nil, fmt.Errorf("x: %w", ErrNoKey) })
	k3 := Key{TokenURL: "https://third.example.com/token"}
	for range 2 {
		if _, err := c.Token(context.Background(), k3, noKey); !errors.Is(err, ErrNoKey) {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.Held != int64(5*len(holds)) {
		t.Errorf("ErrNoKey was held: %+v", s)
	}

	// FailureHold < 0 turns holding off.
	c2 := NewCache(CacheConfig{Clock: clock.Now, FailureHold: -1})
	src2 := &countingSource{clock: clock, expiresIn: time.Hour}
	src2.fail.Store(2)
	for range 2 {
		if _, err := c2.Token(context.Background(), testKey, src2); !errors.Is(err, errUpstream) {
			t.Fatal(err)
		}
	}
	mustTokenFor(t, c2, testKey, src2, "tok-3")
}

func mustTokenFor(t *testing.T, c *Cache, k Key, src TokenSource, want string) {
	t.Helper()
	tok, err := c.Token(context.Background(), k, src)
	if err != nil || tok.AccessToken != want {
		t.Fatalf("Token(%v) = %v, %v; want %s", k, tok, err, want)
	}
}

// gatedSource issues tok-1 at once and makes every later call wait for
// release; it records whether a call saw its context end.
type gatedSource struct {
	clock     *clocktest.Clock
	expiresIn time.Duration
	n         atomic.Int64
	release   chan struct{}
	fail      atomic.Bool
	sawCancel atomic.Bool
}

func (s *gatedSource) Token(ctx context.Context) (*Token, error) {
	n := s.n.Add(1)
	if n > 1 {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, fmt.Errorf("assertion: gated source: %w", ctx.Err())
		}
	}
	if ctx.Err() != nil {
		s.sawCancel.Store(true)
	}
	if s.fail.Load() {
		return nil, fmt.Errorf("%w (attempt %d)", errUpstream, n)
	}
	return &Token{AccessToken: fmt.Sprintf("tok-%d", n), ExpiresIn: s.expiresIn, Expiry: s.clock.Now().Add(s.expiresIn)}, nil
}

func TestCacheRefreshAhead(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now}) // margin 60s, ahead 120s
	src := &gatedSource{clock: clock, expiresIn: 570 * time.Second, release: make(chan struct{})}
	mustToken(t, c, src, "tok-1")

	// Refresh point 510s, window from 390s.
	clock.Advance(389 * time.Second)
	mustToken(t, c, src, "tok-1")
	if s := c.Stats(); s.BackgroundRefreshes != 0 {
		t.Fatalf("background refresh before the window: %+v", s)
	}
	clock.Advance(time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	tok, err := c.Token(ctx, testKey, src) // returns while the refresh waits
	cancel()
	if err != nil || tok.AccessToken != "tok-1" {
		t.Fatalf("in the window: %v, %v; want the old token at once", tok, err)
	}
	got := concurrently(t, 20, func() (*Token, error) { return c.Token(context.Background(), testKey, src) })
	for i, g := range got {
		if g != "tok-1" {
			t.Errorf("caller %d got %q while the refresh runs", i, g)
		}
	}
	waitFor(t, "the background exchange to start", func() bool { return src.n.Load() == 2 })
	if s := c.Stats(); s.BackgroundRefreshes != 1 || s.Exchanges != 2 || s.Misses != 1 {
		t.Errorf("Stats = %+v, want exactly one background exchange and no caller waiting", s)
	}

	close(src.release)
	waitFor(t, "the new token", func() bool {
		tok, err := c.Token(context.Background(), testKey, src)
		return err == nil && tok.AccessToken == "tok-2"
	})
	if src.sawCancel.Load() {
		t.Error("the background exchange saw the caller's cancellation")
	}
	if n := src.n.Load(); n != 2 {
		t.Errorf("%d exchanges, want 2", n)
	}
	// tok-2 was obtained at 390s: refresh at 900s, window from 780s.
	clock.Advance(389 * time.Second)
	mustToken(t, c, src, "tok-2")
	if s := c.Stats(); s.BackgroundRefreshes != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestCacheRefreshAheadFailure(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	var hooked []string
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	c := NewCache(CacheConfig{Clock: clock.Now, OnRefreshError: func(k Key, err error) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, k.String()+": "+err.Error())
		log.Error("background token refresh failed", "key", k.String(), "err", err)
	}})
	src := &gatedSource{clock: clock, expiresIn: 570 * time.Second, release: make(chan struct{})}
	close(src.release)
	mustToken(t, c, src, "tok-1")
	src.fail.Store(true)

	clock.Advance(400 * time.Second) // in the window
	mustToken(t, c, src, "tok-1")    // still valid: the caller never sees the failure
	waitFor(t, "the hook", func() bool { mu.Lock(); defer mu.Unlock(); return len(hooked) == 1 })
	mu.Lock()
	if !strings.Contains(hooked[0], "ehr.example.com") || !strings.Contains(hooked[0], "attempt 2") {
		t.Errorf("hook got %q", hooked[0])
	}
	mu.Unlock()

	// The failure is held (1s): no new background exchange until then.
	mustToken(t, c, src, "tok-1")
	if n := src.n.Load(); n != 2 {
		t.Fatalf("%d exchanges within the hold", n)
	}
	clock.Advance(time.Second)
	mustToken(t, c, src, "tok-1")
	waitFor(t, "a second background attempt", func() bool { mu.Lock(); defer mu.Unlock(); return len(hooked) == 2 })
	if s := c.Stats(); s.BackgroundRefreshes != 2 || s.Failures != 2 || s.Misses != 1 {
		t.Errorf("Stats = %+v", s)
	}
	assertNoSecrets(t, "refresh error log", logs.String(), "tok-1")
}

func TestCacheExchangeTimeout(t *testing.T) {
	clock := newFakeClock()
	errs := make(chan error, 1)
	c := NewCache(CacheConfig{Clock: clock.Now, ExchangeTimeout: 50 * time.Millisecond, OnRefreshError: func(_ Key, err error) { errs <- err }})
	src := &gatedSource{clock: clock, expiresIn: 570 * time.Second, release: make(chan struct{})} // never released
	mustToken(t, c, src, "tok-1")
	clock.Advance(400 * time.Second)
	mustToken(t, c, src, "tok-1")
	select {
	case err := <-errs:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the exchange timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the background exchange was not bounded")
	}
	// A foreground exchange is bounded the same way.
	clock.Advance(200 * time.Second)
	if _, err := c.Token(context.Background(), testKey, src); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("foreground: err = %v", err)
	}
}

func TestCacheSweepsIdleKeys(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(CacheConfig{Clock: clock.Now, RefreshAhead: -1})
	src := &countingSource{clock: clock, expiresIn: 60 * time.Second}
	for i := range 100 {
		mustTokenFor(t, c, Key{TokenURL: testKey.TokenURL, Context: fmt.Sprint(i)}, src, fmt.Sprintf("tok-%d", i+1))
	}
	live := Key{TokenURL: testKey.TokenURL, Context: "live"}
	clock.Advance(2 * time.Minute) // every token has expired
	mustTokenFor(t, c, live, src, "tok-101")
	waitFor(t, "the sweep", func() bool { c.mu.RLock(); defer c.mu.RUnlock(); return len(c.states) == 1 })
	// A swept key works as before.
	mustTokenFor(t, c, Key{TokenURL: testKey.TokenURL, Context: "7"}, src, "tok-102")
	mustTokenFor(t, c, live, src, "tok-101")
}

func TestCacheStatsAndKeyStringHideSecrets(t *testing.T) {
	clock := newFakeClock()
	ts := newTokenServer(t, numberedTokens(570))
	e := newExchanger(t, clock, ts.Client())
	c := NewCache(CacheConfig{Clock: clock.Now})
	r := Request{TokenURL: ts.URL + "/token", ClientID: "c", B2B: fullB2B()}
	tok, err := c.Token(context.Background(), r.Key(), e.Source(r))
	if err != nil {
		t.Fatal(err)
	}
	c.Invalidate(r.Key(), tok.AccessToken)
	_, err = c.Token(context.Background(), r.Key(), e.Source(r))
	for what, s := range map[string]string{
		"Key.String":   r.Key().String(),
		"Key %+v":      fmt.Sprintf("%+v", r.Key()),
		"Stats":        fmt.Sprintf("%+v", c.Stats()),
		"throttled":    err.Error(),
		"throttled %v": fmt.Sprintf("%+v", err),
	} {
		assertNoSecrets(t, what, s, tok.AccessToken, ts.lastAssertion(), "Jane")
	}
}

// A caller varying scopes (or purposes of use) cannot multiply one
// partner's exchanges: beyond MaxContextsPerResource keys per Resource a
// new key gets a ContextLimitError without an exchange; other resources
// are unaffected; a key's slot is freed once its token expired and
// MinInterval passed since its last exchange, failed or not.
func TestCacheContextCap(t *testing.T) {
	clock := newFakeClock()
	src := &countingSource{clock: clock, expiresIn: 2 * time.Minute}
	c := NewCache(CacheConfig{Clock: clock.Now, RefreshAhead: -1, MinInterval: time.Minute, FailureHold: time.Second, MaxContextsPerResource: 3})
	key := func(res string, i int) Key {
		return Key{Resource: res, TokenURL: "https://auth.example.com/token", ClientID: "c", Scope: fmt.Sprintf("system/R%d.read", i)}
	}
	ctx := context.Background()
	limited := 0
	for i := range 50 {
		_, err := c.Token(ctx, key("https://a.example/r4", i), src)
		var cle *ContextLimitError
		switch {
		case err == nil && i < 3:
		case errors.As(err, &cle) && errors.Is(err, ErrTooManyContexts) && i >= 3:
			limited++
			if cle.Limit != 3 || cle.RetryAfter() <= 0 || cle.RetryAfter() > 2*time.Minute {
				t.Errorf("limit error %+v", cle)
			}
		default:
			t.Fatalf("context %d: %v", i, err)
		}
	}
	if n := src.n.Load(); n != 3 || limited != 47 {
		t.Fatalf("exchanges = %d, limited = %d; want 3 and 47", n, limited)
	}
	// The cached contexts keep being served, another resource is not
	// limited by a's.
	for i := range 3 {
		if _, err := c.Token(ctx, key("https://a.example/r4", i), src); err != nil {
			t.Errorf("cached context %d: %v", i, err)
		}
	}
	if _, err := c.Token(ctx, key("https://b.example/r4", 0), src); err != nil {
		t.Errorf("another resource: %v", err)
	}

	// A failed exchange holds its slot for MinInterval as well.
	clock.Advance(3 * time.Minute) // every token of a has expired
	src.fail.Store(3)
	for i := 10; i < 13; i++ {
		if _, err := c.Token(ctx, key("https://a.example/r4", i), src); !errors.Is(err, errUpstream) {
			t.Fatalf("failing context %d: %v", i, err)
		}
	}
	clock.Advance(2 * time.Second) // past the failure hold, not past MinInterval
	if _, err := c.Token(ctx, key("https://a.example/r4", 20), src); !errors.Is(err, ErrTooManyContexts) {
		t.Fatalf("a new context while failed ones hold their slots: %v", err)
	}
	clock.Advance(time.Minute)
	if _, err := c.Token(ctx, key("https://a.example/r4", 20), src); err != nil {
		t.Fatalf("a new context after MinInterval: %v", err)
	}
	if n := src.n.Load(); n != 3+1+3+1 {
		t.Errorf("exchanges = %d, want 8", n)
	}
}
