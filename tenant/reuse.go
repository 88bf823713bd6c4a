package tenant

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/internal/cache"
)

// Source resolves OIDs to tenants; *Resolver is one.
type Source interface {
	Resolve(ctx context.Context, oid string) (*Tenant, error)
}

// Checker says whether a tenant its Source resolved is still what the
// Source would resolve now (*Resolver.Current). It must not allocate:
// the Reuser asks it on every request.
type Checker interface {
	Current(t *Tenant) bool
}

// Reuser remembers each resolved tenant, so that an organization is
// resolved (directory and discovery cache lookups, endpoint choice, URL
// and egress checks, settings) once per change of what it rests on
// rather than once per request:
//
//   - a tenant its Source vouches for (a Checker: *Resolver) is reused
//     for as long as the directory entry and discovery result it was
//     built from are the cached ones and fresh by their own TTLs (not
//     replaced, forgotten, expired, or due for a refresh ahead of
//     expiry); the check reads a mark the caches set on an entry
//     they stop holding, and two times, whatever the number of
//     organizations;
//   - any other tenant (built from a stale answer, waiting for a UDAP
//     registration, or from a Source that cannot say) is reused for at
//     most TTL (proxy.reuse_resolved), and not at all when TTL is zero.
//
// Reusing a vouched tenant is transparent (resolving again would build
// the same tenant from the same entries), so it is on whatever TTL says.
//
// Concurrent requests for an organization not resolved yet (or no
// longer reusable) share one Resolve (internal/cache's single flight):
// a thousand waiting callers cost one resolution. Failures are never
// reused. Tenants no longer reusable are swept, at most once per sweep
// interval, so memory follows the organizations whose sources are
// cached. Tenants are shared between requests and must not be modified
// (WithScope and WithPurposes copy).
type Reuser struct {
	next  Source
	check Checker // nil: TTL only
	ttl   time.Duration
	now   func() time.Time
	items *cache.Memory[*Tenant]
	c     *cache.Cache[*Tenant] // canonical OID -> tenant
	// sweepAt is when tenants no longer reusable are dropped next
	// (Unix nanoseconds).
	sweepAt atomic.Int64
}

var _ Source = (*Reuser)(nil)

// sweepEvery bounds how long tenants no longer reusable stay in memory.
const sweepEvery = time.Minute

// held is how long the store keeps a tenant at least: the Reuser
// sweeps its own (sweep), by reusability rather than age.
const held = 100 * 365 * 24 * time.Hour

// Reuse returns a Reuser over next. When next is a Checker, the tenants
// it vouches for are reused while current; others are reused for ttl.
// With a ttl of zero or less and a next that is not a Checker, reuse is
// off: every call goes to next. clock is time.Now when nil.
func Reuse(next Source, ttl time.Duration, clock func() time.Time) *Reuser {
	if clock == nil {
		clock = time.Now
	}
	r := &Reuser{next: next, ttl: max(ttl, 0), now: clock}
	r.check, _ = next.(Checker)
	if ttl > 0 || r.check != nil {
		r.items = cache.NewMemory[*Tenant](clock, held)
		// The cache's TTL is not what decides reuse (keeps is), but it
		// must be positive.
		// OwnKeys: Resolve keys each tenant by a string of its own
		// (keyOf), not one the caller may slice from a request line.
		r.c = cache.New(cache.Config{TTL: max(ttl, time.Nanosecond), Keep: held, Clock: clock, OwnKeys: true}, cache.WithStore[*Tenant](r.items))
		r.sweepAt.Store(clock().Add(sweepEvery).UnixNano())
	}
	return r
}

// Resolve returns the tenant for a canonical OID, reusing a kept one
// while it is reusable. ctx bounds this caller's wait; a resolution
// shared with other callers goes on when it ends.
func (r *Reuser) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	if r.c == nil {
		return r.next.Resolve(ctx, oid)
	}
	if t, ok := r.reusable(oid); ok { // no closure allocated on the hot path
		return t, nil
	}
	return r.c.Do(ctx, oid, func(ctx context.Context) (*Tenant, error) {
		// A flight that finished between the miss and this one has
		// kept a tenant: do not resolve again.
		if t, ok := r.reusable(oid); ok {
			return t, nil
		}
		t, err := r.next.Resolve(ctx, oid)
		if err != nil {
			return nil, err
		}
		if t.res != nil {
			t.res.kept.Store(t)
		}
		r.c.Put(keyOf(oid, t), t)
		r.sweep()
		return t, nil
	})
}

// keyOf is the key t is kept under for oid: the tenant's own OID when it
// is oid (as a Resolver's is), so that the key costs nothing more, or a
// copy of oid, which may be a slice of a request line.
func keyOf(oid string, t *Tenant) string {
	if t.OID == oid {
		return t.OID
	}
	return strings.Clone(oid)
}

// reusable returns the tenant kept for oid if it may be served.
func (r *Reuser) reusable(oid string) (*Tenant, bool) {
	it, ok := r.items.Load(oid)
	if !ok {
		return nil, false
	}
	return it.Value, r.keeps(it)
}

// keeps says whether a kept tenant may still be served: its Source
// vouches for it, or it is younger than the TTL.
func (r *Reuser) keeps(it cache.Item[*Tenant]) bool {
	if r.check != nil && r.check.Current(it.Value) {
		return true
	}
	return r.now().Sub(it.FetchedAt) < r.ttl
}

// sweep drops the tenants that may no longer be served, at most once
// per sweepEvery.
func (r *Reuser) sweep() {
	now := r.now().UnixNano()
	at := r.sweepAt.Load()
	if now < at || !r.sweepAt.CompareAndSwap(at, now+int64(sweepEvery)) {
		return
	}
	r.items.Range(func(oid string) bool {
		if it, ok := r.items.Load(oid); ok && !r.keeps(it) {
			r.items.Delete(oid)
		}
		return true
	})
}

// Forget drops the tenant kept for oid, so that the next Resolve asks
// the Source again.
func (r *Reuser) Forget(oid string) {
	if r.c != nil {
		r.c.Forget(oid)
	}
}

// Len is the number of tenants kept, reusable or not yet swept.
func (r *Reuser) Len() int {
	if r.c == nil {
		return 0
	}
	return r.c.Len()
}
