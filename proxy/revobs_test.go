package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/tenant"
)

// rev-obs: cqgate_token_cache_requests_total{result="hit"} means "a
// cached token was served" (internal/metrics/labels.go). A request that
// got no token at all, because the cache answered with the failure it is
// holding (failure hold), is not a hit.
func TestRevObsHeldFailureIsNotACacheHit(t *testing.T) {
	obs := &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
	cache := assertion.NewCache(assertion.CacheConfig{MinInterval: -1})
	// No signer: every exchange fails (network_error), and the cache
	// holds the failure for FailureHold (1 s by default).
	tokens := NewTokens(cache, map[string]*assertion.Exchanger{"default": {}}, obs)
	tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token", ClientID: "c", Scope: "system/*.read"}
	for i := range 3 {
		if tok, err := tokens.Token(context.Background(), tn); err == nil || tok != nil {
			t.Fatalf("call %d: got a token %v", i, tok)
		}
	}
	if obs.cache[metrics.CacheHit] != 0 {
		t.Errorf("three requests that got no token were counted as %d cache hits (cache %v, exchanges %v)",
			obs.cache[metrics.CacheHit], obs.cache, obs.exchanges)
	}
}

type blockingToken struct {
	started chan struct{}
	release chan struct{}
	tok     *assertion.Token
}

func (b blockingToken) Token(context.Context) (*assertion.Token, error) {
	close(b.started)
	<-b.release
	return b.tok, nil
}

// rev-obs: result="miss" is "a token had to be fetched (or waited for)"
// (internal/metrics/labels.go CacheMiss). A request that waits for the
// exchange another request started is counted as a hit.
func TestRevObsWaitingForAnExchangeIsAMiss(t *testing.T) {
	obs := &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
	cache := assertion.NewCache(assertion.CacheConfig{MinInterval: -1})
	tokens := NewTokens(cache, map[string]*assertion.Exchanger{"default": {}}, obs)
	tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token", ClientID: "c", Scope: "system/*.read"}
	// Another request's exchange for the same token context is under way.
	src := blockingToken{started: make(chan struct{}), release: make(chan struct{}),
		tok: &assertion.Token{AccessToken: "fresh", TokenType: "Bearer", ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}}
	go func() { _, _ = cache.Token(context.Background(), tn.TokenKey(), src) }()
	<-src.started
	done := make(chan error, 1)
	go func() {
		_, err := tokens.Token(context.Background(), tn)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the request is waiting for the exchange
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if obs.cache[metrics.CacheMiss] != 1 || obs.cache[metrics.CacheHit] != 0 {
		t.Errorf("a request that waited for an exchange was counted as %v, want one miss", obs.cache)
	}
}

// rev-obs: outcome="throttled" of cqgate_token_exchanges_total is "the
// token endpoint asked us to slow down (429 or 503 with Retry-After), or
// a local limit held the exchange back" (internal/metrics/labels.go
// ExchangeThrottled; docs/deploy.md lists the outcome). A token
// endpoint's 429 with Retry-After is counted as http_error.
func TestRevObsTokenEndpoint429IsThrottled(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"message":"slow down"}`)
	}))
	defer ts.Close()
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
	ex := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder}, HTTPClient: ts.Client(),
		Retry: assertion.RetryPolicy{Attempts: 1}}
	obs := &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
	tokens := NewTokens(assertion.NewCache(assertion.CacheConfig{MinInterval: -1}), map[string]*assertion.Exchanger{"default": ex}, obs)
	tn := &tenant.Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: ts.URL + "/token", ClientID: "c", Scope: "system/*.read"}
	if _, err := tokens.Token(context.Background(), tn); err == nil {
		t.Fatal("got a token from a 429")
	}
	if obs.exchanges[metrics.ExchangeThrottled] != 1 {
		t.Errorf("a 429 with Retry-After from the token endpoint was counted as %v, want throttled", obs.exchanges)
	}
}
