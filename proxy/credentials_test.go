package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/bench/scale"
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
	obs := &countedTokens{cache: map[metrics.CacheResult]int{}, exchanges: map[metrics.ExchangeOutcome]int{}}
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
