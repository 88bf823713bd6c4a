package gateway

import (
	"context"

	"github.com/cqgate/cqgate/api"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/ratelimit"
	"github.com/cqgate/cqgate/tenant"
)

// reusedTenants is what the router asks about tenants: FHIR requests
// resolve through the Reuser (proxy.reuse_resolved), while the lookup
// endpoint and scope checks go to the Resolver.
type reusedTenants struct {
	*tenant.Resolver
	reuse *tenant.Reuser
}

var _ api.Tenants = reusedTenants{}

func (t reusedTenants) Resolve(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return t.reuse.Resolve(ctx, oid)
}

// rateLimiter builds the per-organization limits of proxy.rate_limit and
// organizations.<oid>.rate_limit: nil when nothing is limited; with a
// cluster, one budget per organization for the whole fleet, decided by
// this replica's own limiter while Redis fails.
func rateLimiter(cfg *config.Config, cl *cluster.Cluster) api.Limiter {
	limit := func(r config.RateLimit) ratelimit.Limit {
		return ratelimit.Limit{RequestsPerSecond: r.RequestsPerSecond, Burst: r.Burst, MaxWait: r.MaxWait}
	}
	per := map[string]ratelimit.Limit{}
	for oid, org := range cfg.Organizations {
		if org.RateLimit != nil {
			per[oid] = limit(*org.RateLimit)
		}
	}
	local := ratelimit.New(limit(cfg.Proxy.RateLimit), per)
	switch {
	case !local.Enabled():
		return nil
	case cl != nil:
		return cl.RateLimiter(limit(cfg.Proxy.RateLimit), per, local)
	}
	return local
}
