package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// credentials gets tenants' tokens from the shared cache, exchanging a
// fresh client assertion, signed by the tenant's identity, when the cache
// has none.
type credentials struct {
	cache      *assertion.Cache
	identities map[string]*identity
	// metrics counts cache hits, misses and exchanges; nil counts none.
	metrics *metrics.Metrics
}

var _ proxy.Credentials = (*credentials)(nil)

// request is the token request for t.
func request(t *tenant.Tenant) assertion.Request {
	r := assertion.Request{
		TokenURL:  t.TokenURL,
		ClientID:  t.ClientID,
		Scope:     t.Scope,
		Algorithm: t.Algorithm,
		Accepted:  t.SigningAlgorithms,
		UDAP:      t.UDAP,
	}
	if t.UDAP {
		r.B2B = t.B2B
	}
	return r
}

// tokenKey is the cache key of t's tokens: the FHIR base they are for,
// token URL, client, scope, identity and the digest of the B2B context
// asserted.
func tokenKey(t *tenant.Tenant) assertion.Key {
	k := request(t).Key()
	k.Resource = t.FHIRBase
	k.Identity = identityName(t)
	return k
}

func identityName(t *tenant.Tenant) string {
	if t.Identity == "" {
		return config.DefaultIdentity
	}
	return t.Identity
}

func (c *credentials) identity(t *tenant.Tenant) (*identity, error) {
	id, ok := c.identities[identityName(t)]
	if !ok {
		return nil, outcome.Errorf(http.StatusInternalServerError, outcome.Exception, "gateway: %s uses identity %q, which is not configured", t.OID, identityName(t))
	}
	return id, nil
}

func (c *credentials) Token(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	id, err := c.identity(t)
	if err != nil {
		return nil, err
	}
	// One small value per request; the token request itself is only
	// built on a miss.
	src := &exchangeOnMiss{ex: id.exchanger, t: t, m: c.metrics}
	ctx, span := tracing.Start(ctx, "cqgate.token")
	tok, err := c.cache.Token(ctx, tokenKey(t), src)
	endToken(span, src.called.Load(), err)
	if c.metrics == nil {
		return tok, err
	}
	switch {
	case errors.Is(err, assertion.ErrThrottled):
		c.metrics.TokenExchange(metrics.ExchangeThrottled)
	case src.called.Load():
		c.metrics.TokenCache(metrics.CacheMiss)
	default:
		c.metrics.TokenCache(metrics.CacheHit)
	}
	return tok, err
}

var _ assertion.TokenSource = (*exchangeOnMiss)(nil)

// exchangeOnMiss exchanges a new client assertion for t's token when the
// cache calls it, and counts the exchanges by outcome (when m is set).
type exchangeOnMiss struct {
	ex     *assertion.Exchanger
	t      *tenant.Tenant
	m      *metrics.Metrics
	called atomic.Bool
}

func (s *exchangeOnMiss) Token(ctx context.Context) (*assertion.Token, error) {
	s.called.Store(true)
	tok, err := s.ex.Exchange(ctx, request(s.t))
	if s.m == nil {
		return tok, err
	}
	var re *assertion.RetrieveError
	switch {
	case err == nil:
		s.m.TokenExchange(metrics.ExchangeSuccess)
	case errors.As(err, &re) && re.ErrorCode != "":
		s.m.TokenExchange(metrics.ExchangeOAuthError)
	case errors.As(err, &re) && re.StatusCode != 0:
		s.m.TokenExchange(metrics.ExchangeHTTPError)
	default:
		s.m.TokenExchange(metrics.ExchangeNetworkError)
	}
	return tok, err
}

func (c *credentials) Refused(t *tenant.Tenant, stale *assertion.Token) {
	c.cache.Invalidate(tokenKey(t), stale.AccessToken)
}

// exchange performs a new exchange for t, bypassing the cache.
func (c *credentials) exchange(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	id, err := c.identity(t)
	if err != nil {
		return nil, err
	}
	tok, err := id.exchanger.Exchange(ctx, request(t))
	if err != nil {
		return nil, fmt.Errorf("gateway: exchanging for %s: %w", t.OID, err)
	}
	return tok, nil
}
