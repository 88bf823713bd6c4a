package tenant

import (
	"context"
	"time"

	"github.com/cqgate/cqgate/internal/cache"
)

// Source resolves OIDs to tenants; *Resolver is one.
type Source interface {
	Resolve(ctx context.Context, oid string) (*Tenant, error)
}

// Reuser remembers each resolved tenant for a short time, so that a busy
// organization is resolved (directory and discovery cache lookups,
// endpoint choice, URL and egress checks, settings) once per TTL rather
// than once per request. Concurrent requests for an organization not
// resolved yet (or no longer) share one Resolve (internal/cache's single
// flight): a thousand waiting callers cost one resolution. The caches
// behind the Source keep their own freshness, stale-if-error and
// refresh-ahead rules; a reused tenant is at most TTL older than what
// the Source would answer. Failures are never reused. Tenants are shared
// between requests and must not be modified (WithScope and WithPurposes
// copy).
type Reuser struct {
	next  Source
	ttl   time.Duration
	items *cache.Memory[*Tenant]
	c     *cache.Cache[*Tenant] // canonical OID -> tenant
}

var _ Source = (*Reuser)(nil)

// sweepEvery bounds how long expired entries of organizations no longer
// asked for stay in memory.
const sweepEvery = time.Minute

// Reuse returns a Reuser over next. A ttl of zero or less turns reuse
// off: every call goes to next. clock is time.Now when nil.
func Reuse(next Source, ttl time.Duration, clock func() time.Time) *Reuser {
	r := &Reuser{next: next, ttl: ttl}
	if ttl > 0 {
		r.items = cache.NewMemory[*Tenant](clock, sweepEvery)
		r.c = cache.New(cache.Config{TTL: ttl, Clock: clock}, cache.WithStore[*Tenant](r.items))
	}
	return r
}

// Resolve returns the tenant for a canonical OID, reusing one resolved
// less than TTL ago. ctx bounds this caller's wait; a resolution shared
// with other callers goes on when it ends.
func (r *Reuser) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	if r.c == nil {
		return r.next.Resolve(ctx, oid)
	}
	if t, ok := r.c.Fresh(oid); ok { // no closure allocated on the hot path
		return t, nil
	}
	t, _, err := r.c.Get(ctx, oid, func(ctx context.Context) (*Tenant, error) {
		return r.next.Resolve(ctx, oid)
	})
	return t, err
}

// Forget drops the tenant kept for oid, so that the next Resolve asks
// the Source again.
func (r *Reuser) Forget(oid string) {
	if r.c != nil {
		r.c.Forget(oid)
	}
}

// Len is the number of tenants kept, expired or not.
func (r *Reuser) Len() int {
	if r.c == nil {
		return 0
	}
	return r.c.Len()
}
