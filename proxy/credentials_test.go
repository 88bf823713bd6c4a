package proxy

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/tenant"
)

// countedTokens counts what Tokens observes; a background refresh
// observes its exchange from a goroutine of its own (counts reads the
// counters then).
type countedTokens struct {
	mu        sync.Mutex
	cache     map[metrics.CacheResult]int
	exchanges map[metrics.ExchangeOutcome]int
}

func newCountedTokens() *countedTokens {
	return &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
}

func (c *countedTokens) TokenCache(r metrics.CacheResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[r]++
}

func (c *countedTokens) TokenExchange(o metrics.ExchangeOutcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exchanges[o]++
}

// counts is what was counted so far, as label values.
func (c *countedTokens) counts() (cache, exchanges map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cache, exchanges = map[string]int{}, map[string]int{}
	for r, n := range c.cache {
		cache[r.String()] = n
	}
	for o, n := range c.exchanges {
		exchanges[o.String()] = n
	}
	return cache, exchanges
}

type fixedToken struct{ tok *assertion.Token }

func (f fixedToken) Token(context.Context) (*assertion.Token, error) { return f.tok, nil }

func TestTokens(t *testing.T) {
	obs := newCountedTokens()
	cache := assertion.NewCache(assertion.CacheConfig{MinInterval: -1})
	// An exchanger without a signer fails every exchange: the test sees
	// whether Tokens asked for one.
	tokens := NewTokens(cache, map[string]*assertion.Exchanger{"default": {}}, obs)
	tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token", ClientID: "c", Scope: "system/*.read"}
	warm := &assertion.Token{AccessToken: "warm-token", TokenType: "Bearer", ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}
	if _, err := cache.Token(context.Background(), tn.TokenKey(), fixedToken{warm}); err != nil {
		t.Fatal(err)
	}

	tok, err := tokens.Token(context.Background(), tn)
	if err != nil || tok.AccessToken != "warm-token" || obs.cache[metrics.CacheHit] != 1 {
		t.Fatalf("warm: %v %v %v", tok, err, obs.cache)
	}
	// Another scope is another token context: a miss, exchanged.
	if _, err := tokens.Token(context.Background(), tn.WithScope("system/Patient.read")); err == nil {
		t.Fatal("exchange without a signer succeeded")
	}
	if obs.cache[metrics.CacheMiss] != 1 || obs.exchanges[metrics.ExchangeNetworkError] != 1 {
		t.Fatalf("miss: %v %v", obs.cache, obs.exchanges)
	}
	// A refused token is not handed out again.
	tokens.Refused(tn, warm)
	if tok, err := tokens.Token(context.Background(), tn); err == nil || tok != nil || obs.cache[metrics.CacheMiss] != 2 {
		t.Fatalf("after refusal: %v %v %v", tok, err, obs.cache)
	}
	// An identity nobody configured is cqgate's misconfiguration.
	other := *tn
	other.Identity = "nobody"
	_, err = tokens.Token(context.Background(), &other)
	var c failure.Classified
	if err == nil || !errors.As(err, &c) || c.Kind() != failure.Misconfigured {
		t.Fatalf("unknown identity: %v", err)
	}
}

// A tenant a Reuser keeps finds its token through the Slot kept on it:
// the same token its Key finds, refused as it is; a copy asking for
// another scope still has a token context of its own.
func TestTokensOfAKeptTenant(t *testing.T) {
	srv := scale.NewServer()
	defer srv.Close()
	r := srv.Resolver("k", tenant.Settings{ClientID: "c", Scope: "system/Patient.read"})
	ctx := context.Background()
	kept, err := tenant.Reuse(r, time.Second, nil).Resolve(ctx, scale.OID(5))
	if err != nil || !kept.Reused() {
		t.Fatalf("kept tenant: %v (reused %v)", err, kept != nil && kept.Reused())
	}
	obs := newCountedTokens()
	cache := assertion.NewCache(assertion.CacheConfig{MinInterval: -1})
	tokens := NewTokens(cache, map[string]*assertion.Exchanger{"default": {}}, obs)
	warm := &assertion.Token{AccessToken: "kept-token", TokenType: "Bearer", ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}
	if _, err := cache.Token(ctx, kept.TokenKey(), fixedToken{warm}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		tok, err := tokens.Token(ctx, kept)
		if err != nil || tok.AccessToken != "kept-token" {
			t.Fatalf("kept: %v %v", tok, err)
		}
	}
	if tokens.slot(kept) == nil || obs.cache[metrics.CacheHit] != 2 {
		t.Fatalf("no Slot kept, or hits %v", obs.cache)
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = tokens.Token(ctx, kept) }); got != 1 {
		t.Errorf("a kept tenant's token costs %v allocations, want 1 (the exchange source)", got)
	}
	// Another scope: not the kept tenant's token context.
	copied := kept.WithScope("system/Observation.read")
	if tokens.slot(copied) != nil {
		t.Error("a copy with another scope uses the kept tenant's Slot")
	}
	if tok, err := tokens.Token(ctx, copied); err == nil || tok != nil {
		t.Fatalf("a copy with another scope got %v, %v; want its own exchange (which fails here)", tok, err)
	}
	// Refused through the Key, gone through the Slot.
	tokens.Refused(kept, warm)
	if tok, err := tokens.Token(ctx, kept); err == nil || tok != nil {
		t.Fatalf("after refusal: %v %v", tok, err)
	}
}

// blockingToken is another request's exchange: it says it started, and
// answers tok once released.
type blockingToken struct {
	started, release chan struct{}
	tok              *assertion.Token
}

func (b blockingToken) Token(context.Context) (*assertion.Token, error) {
	close(b.started)
	<-b.release
	return b.tok, nil
}

// waitFor waits until cond holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
	}
}

// TestTokenCacheResults: a request for a token is a hit
// (cqgate_token_cache_requests_total{result="hit"}, and the cqgate.token
// span's cqgate.token.cache) only when the cache served a token at once;
// a request that waited for an exchange (another request's too) or got
// the failure the cache holds is a miss, and a refresh ahead that the
// request starts in the background leaves it a hit.
func TestTokenCacheResults(t *testing.T) {
	tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token", ClientID: "c", Scope: "system/*.read"}
	token := func(expiry time.Time) *assertion.Token {
		return &assertion.Token{AccessToken: "cached", TokenType: "Bearer", ExpiresIn: time.Until(expiry), Expiry: expiry}
	}
	for _, tc := range []struct {
		name string
		// run asks tokens for tn's token after setting cache up; now
		// is the cache's clock.
		run           func(t *testing.T, tokens *Tokens, cache *assertion.Cache, now *atomic.Pointer[time.Time], refreshed <-chan struct{})
		wantCache     map[string]int
		wantExchanges map[string]int
	}{
		{name: "a cached token: a hit",
			run: func(t *testing.T, tokens *Tokens, cache *assertion.Cache, _ *atomic.Pointer[time.Time], _ <-chan struct{}) {
				if _, err := cache.Token(context.Background(), tn.TokenKey(), fixedToken{token(time.Now().Add(time.Hour))}); err != nil {
					t.Fatal(err)
				}
				if _, err := tokens.Token(context.Background(), tn); err != nil {
					t.Fatal(err)
				}
			},
			wantCache: map[string]int{"hit": 1}, wantExchanges: map[string]int{}},
		{name: "a cached token refreshed ahead in the background: a hit",
			run: func(t *testing.T, tokens *Tokens, cache *assertion.Cache, now *atomic.Pointer[time.Time], refreshed <-chan struct{}) {
				if _, err := cache.Token(context.Background(), tn.TokenKey(), fixedToken{token(now.Load().Add(10 * time.Minute))}); err != nil {
					t.Fatal(err)
				}
				later := now.Load().Add(8 * time.Minute) // past the refresh-ahead point, before the refresh point
				now.Store(&later)
				if tok, err := tokens.Token(context.Background(), tn); err != nil || tok.AccessToken != "cached" {
					t.Fatalf("got %v, %v; want the cached token", tok, err)
				}
				<-refreshed // the refresh (which fails: no signer) ran tn's exchanger
			},
			wantCache: map[string]int{"hit": 1}, wantExchanges: map[string]int{"network_error": 1}},
		{name: "waiting for another request's exchange: a miss",
			run: func(t *testing.T, tokens *Tokens, cache *assertion.Cache, _ *atomic.Pointer[time.Time], _ <-chan struct{}) {
				other := blockingToken{started: make(chan struct{}), release: make(chan struct{}), tok: token(time.Now().Add(time.Hour))}
				go func() { _, _ = cache.Token(context.Background(), tn.TokenKey(), other) }()
				<-other.started
				done := make(chan error, 1)
				go func() {
					_, err := tokens.Token(context.Background(), tn)
					done <- err
				}()
				waitFor(t, "the request found no token", func() bool { return cache.Stats().Misses == 2 })
				close(other.release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			},
			wantCache: map[string]int{"miss": 1}, wantExchanges: map[string]int{}},
		{name: "the failure the cache holds: a miss, without an exchange",
			run: func(t *testing.T, tokens *Tokens, _ *assertion.Cache, _ *atomic.Pointer[time.Time], _ <-chan struct{}) {
				// No signer: the exchange fails (network_error), and
				// the cache holds the failure for a second.
				for i := range 3 {
					if tok, err := tokens.Token(context.Background(), tn); err == nil || tok != nil {
						t.Fatalf("request %d got a token %v", i, tok)
					}
				}
			},
			wantCache: map[string]int{"miss": 3}, wantExchanges: map[string]int{"network_error": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now atomic.Pointer[time.Time]
			start := time.Now()
			now.Store(&start)
			refreshed := make(chan struct{})
			cache := assertion.NewCache(assertion.CacheConfig{MinInterval: -1, Clock: func() time.Time { return *now.Load() },
				OnRefreshError: func(assertion.Key, error) { close(refreshed) }})
			obs := newCountedTokens()
			tokens := NewTokens(cache, map[string]*assertion.Exchanger{"default": {}}, obs)
			tc.run(t, tokens, cache, &now, refreshed)
			if cache, exchanges := obs.counts(); !maps.Equal(cache, tc.wantCache) || !maps.Equal(exchanges, tc.wantExchanges) {
				t.Errorf("counted cache results %v and exchanges %v, want %v and %v", cache, exchanges, tc.wantCache, tc.wantExchanges)
			}
		})
	}
}

// TestExchangeOutcomes: cqgate_token_exchanges_total counts a token
// endpoint asking cqgate to slow down (a 429, or a 503 with
// Retry-After) as throttled, whatever its body.
func TestExchangeOutcomes(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gateway.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	holder := keys.NewHolder(keys.NewStatic(m), keys.HolderOptions{})
	if _, err := holder.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		body       string
		want       metrics.ExchangeOutcome
	}{
		{"a token", http.StatusOK, "", `{"access_token":"issued","token_type":"Bearer","expires_in":300}`, metrics.ExchangeSuccess},
		{"an OAuth error", http.StatusBadRequest, "", `{"error":"invalid_client"}`, metrics.ExchangeOAuthError},
		{"429 with Retry-After", http.StatusTooManyRequests, "30", `{"message":"slow down"}`, metrics.ExchangeThrottled},
		{"429 without Retry-After", http.StatusTooManyRequests, "", `{"message":"slow down"}`, metrics.ExchangeThrottled},
		{"429 with an OAuth error", http.StatusTooManyRequests, "30", `{"error":"slow_down"}`, metrics.ExchangeThrottled},
		{"503 with Retry-After", http.StatusServiceUnavailable, "30", `{"message":"maintenance"}`, metrics.ExchangeThrottled},
		{"503 without Retry-After", http.StatusServiceUnavailable, "", `{"message":"down"}`, metrics.ExchangeHTTPError},
		{"500", http.StatusInternalServerError, "", `<html>oops</html>`, metrics.ExchangeHTTPError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			ex := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder}, HTTPClient: ts.Client(), Retry: assertion.RetryPolicy{Attempts: 1}}
			obs := newCountedTokens()
			tokens := NewTokens(assertion.NewCache(assertion.CacheConfig{MinInterval: -1}), map[string]*assertion.Exchanger{"default": ex}, obs)
			tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: ts.URL + "/token", ClientID: "c", Scope: "system/*.read"}
			_, _ = tokens.Token(context.Background(), tn)
			if _, exchanges := obs.counts(); !maps.Equal(exchanges, map[string]int{tc.want.String(): 1}) {
				t.Errorf("%d (Retry-After %q) counted as %v, want %s", tc.status, tc.retryAfter, exchanges, tc.want)
			}
		})
	}
}
