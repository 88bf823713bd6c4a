package gateway

import (
	"context"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// credentials gets tenants' tokens from the shared cache, exchanging a
// fresh client assertion when the cache has none.
type credentials struct {
	cache     *assertion.Cache
	exchanger *assertion.Exchanger
}

var _ proxy.Credentials = (*credentials)(nil)

func tokenKey(t *tenant.Tenant) assertion.Key {
	return assertion.Key{TokenURL: t.TokenURL, ClientID: t.ClientID, Scope: t.Scope}
}

func (c *credentials) Token(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	return c.cache.Token(ctx, tokenKey(t), c.exchanger.Source(assertion.Request{
		TokenURL:  t.TokenURL,
		ClientID:  t.ClientID,
		Scope:     t.Scope,
		Algorithm: t.Algorithm,
	}))
}

func (c *credentials) Refused(t *tenant.Tenant, stale *assertion.Token) {
	c.cache.Invalidate(tokenKey(t), stale.AccessToken)
}
