package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/tenant"
)

type countedTokens struct {
	cache     map[metrics.CacheResult]int
	exchanges map[metrics.ExchangeOutcome]int
}

func (c *countedTokens) TokenCache(r metrics.CacheResult)        { c.cache[r]++ }
func (c *countedTokens) TokenExchange(o metrics.ExchangeOutcome) { c.exchanges[o]++ }

type fixedToken struct{ tok *assertion.Token }

func (f fixedToken) Token(context.Context) (*assertion.Token, error) { return f.tok, nil }

func TestTokens(t *testing.T) {
	obs := &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
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
