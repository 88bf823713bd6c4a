package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/tenant"
)

// TokenObserver counts what Tokens does; *metrics.Metrics is one.
type TokenObserver interface {
	TokenCache(metrics.CacheResult)
	TokenExchange(metrics.ExchangeOutcome)
}

// Tokens are the gateway's Credentials: tenants' tokens from the shared
// cache, keyed by each tenant's token context (tenant.Tenant.TokenKey),
// and on a miss a fresh client assertion, signed by the tenant's
// identity, exchanged for one.
type Tokens struct {
	cache      *assertion.Cache
	exchangers map[string]*assertion.Exchanger
	obs        TokenObserver
}

var _ Credentials = (*Tokens)(nil)

// NewTokens returns Tokens over cache, exchanging with the exchanger of
// each identity (by name). obs may be nil.
func NewTokens(cache *assertion.Cache, exchangers map[string]*assertion.Exchanger, obs TokenObserver) *Tokens {
	return &Tokens{cache: cache, exchangers: exchangers, obs: obs}
}

// exchanger is the exchanger of t's identity.
func (c *Tokens) exchanger(t *tenant.Tenant) (*assertion.Exchanger, error) {
	ex, ok := c.exchangers[t.IdentityName()]
	if !ok {
		return nil, t.UnknownIdentity()
	}
	return ex, nil
}

// Token returns a valid access token for t, from the cache or exchanged.
func (c *Tokens) Token(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	return c.token(ctx, t, new(exchangeOnMiss))
}

// token is Token with the exchanging source given: Forward passes one
// that is part of the request's route, which saves its allocation.
func (c *Tokens) token(ctx context.Context, t *tenant.Tenant, src *exchangeOnMiss) (*assertion.Token, error) {
	ex, err := c.exchanger(t)
	if err != nil {
		return nil, err
	}
	// The token request itself is only built on a miss.
	src.ex, src.t, src.obs = ex, t, c.obs
	ctx, span := tracing.Start(ctx, "cqgate.token")
	var tok *assertion.Token
	var hit bool
	if s := c.slot(t); s != nil {
		tok, hit, err = c.cache.TokenAtHit(ctx, s, src)
	} else {
		tok, hit, err = c.cache.TokenHit(ctx, t.TokenKey(), src)
	}
	endToken(span, hit, err)
	c.count(hit, err)
	return tok, err
}

// count counts a request for a token: a hit only when the cache served
// one at once (whether src ran says nothing: a refresh ahead runs it in
// the background of a hit, and a request waiting for another's exchange
// or answered with a held failure never runs it); a local limit holding
// the exchange back is a throttled exchange too.
func (c *Tokens) count(hit bool, err error) {
	if c.obs == nil {
		return
	}
	if hit {
		c.obs.TokenCache(metrics.CacheHit)
	} else {
		c.obs.TokenCache(metrics.CacheMiss)
	}
	if errors.Is(err, assertion.ErrThrottled) {
		c.obs.TokenExchange(metrics.ExchangeThrottled)
	}
}

// Refused drops stale, which t's FHIR server refused, from the cache.
func (c *Tokens) Refused(t *tenant.Tenant, stale *assertion.Token) {
	c.cache.Invalidate(t.TokenKey(), stale.AccessToken)
}

// Exchange performs a new exchange for t, bypassing the cache (cqgate
// token).
func (c *Tokens) Exchange(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	ex, err := c.exchanger(t)
	if err != nil {
		return nil, err
	}
	tok, err := ex.Exchange(ctx, t.TokenRequest())
	if err != nil {
		return nil, fmt.Errorf("proxy: exchanging for %s: %w", t.OID, err)
	}
	return tok, nil
}

var _ assertion.TokenSource = (*exchangeOnMiss)(nil)

// tokenSlotKind names the token cache Slot kept on a reused tenant.
const tokenSlotKind = "proxy.token-slot"

// slot returns the token cache's Slot for t's TokenKey, kept on t when
// a Reuser keeps t, so that a request to a reused tenant finds its token
// without building its Key (a B2B context's digest is a JSON encoding
// and a SHA-256) and the cache's map lookup (hashing and comparing the
// Key's six strings): about a microsecond at 10,000 organizations
// (issue 18). nil for any other tenant, copies of a kept one included
// (they may ask for another scope or purpose of use): those take the
// map.
func (c *Tokens) slot(t *tenant.Tenant) *assertion.Slot {
	if !t.Reused() {
		return nil
	}
	v, err := t.Derived(tenant.DerivedKey{Kind: tokenSlotKind}, func() (any, error) { return c.cache.Slot(t), nil })
	if err != nil {
		return nil
	}
	return v.(*assertion.Slot)
}

// exchangeOnMiss exchanges a new client assertion for t's token when the
// cache calls it, and counts the exchanges by outcome (when obs is set).
type exchangeOnMiss struct {
	ex  *assertion.Exchanger
	t   *tenant.Tenant
	obs TokenObserver
}

func (s *exchangeOnMiss) Token(ctx context.Context) (*assertion.Token, error) {
	// The token endpoint may be on a private address the tenant is
	// allowed (egress.AllowPrivate); the request's own context does not
	// say so (the proxy picks the FHIR pool by the tenant).
	tok, err := s.ex.Exchange(s.t.Context(ctx), s.t.TokenRequest())
	if s.obs != nil {
		s.obs.TokenExchange(exchangeOutcome(err))
	}
	return tok, err
}

// exchangeOutcome is the outcome of an exchange that ended in err: a
// token endpoint asking cqgate to slow down (a 429, or a 503 with
// Retry-After) is throttled whatever its body says.
func exchangeOutcome(err error) metrics.ExchangeOutcome {
	var re *assertion.RetrieveError
	switch {
	case err == nil:
		return metrics.ExchangeSuccess
	case !errors.As(err, &re):
		return metrics.ExchangeNetworkError
	case re.StatusCode == http.StatusTooManyRequests, re.StatusCode == http.StatusServiceUnavailable && re.RetryIn > 0:
		return metrics.ExchangeThrottled
	case re.ErrorCode != "":
		return metrics.ExchangeOAuthError
	case re.StatusCode != 0:
		return metrics.ExchangeHTTPError
	}
	return metrics.ExchangeNetworkError
}
