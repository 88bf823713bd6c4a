package tenant

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source resolves OIDs to tenants; *Resolver is one.
type Source interface {
	Resolve(ctx context.Context, oid string) (*Tenant, error)
}

// Reuser remembers each resolved tenant for a short time, so that a busy
// organization is resolved (directory and discovery cache lookups,
// endpoint choice, URL and egress checks, settings) once per TTL rather
// than once per request. The caches behind the Source keep their own
// freshness, stale-if-error and refresh-ahead rules; a reused tenant is at
// most TTL older than what the Source would answer. Failures are never
// reused. Tenants are shared between requests and must not be modified
// (WithScope and WithPurposes copy).
type Reuser struct {
	next Source
	ttl  time.Duration
	now  func() time.Time

	items sync.Map // canonical OID -> *reused
	// sweepAt is when expired entries are next dropped (UnixNano).
	sweepAt atomic.Int64
}

type reused struct {
	t     *Tenant
	until time.Time
}

var _ Source = (*Reuser)(nil)

// sweepEvery bounds how long expired entries of organizations no longer
// asked for stay in memory.
const sweepEvery = time.Minute

// Reuse returns a Reuser over next. A ttl of zero or less turns reuse
// off: every call goes to next. clock is time.Now when nil.
func Reuse(next Source, ttl time.Duration, clock func() time.Time) *Reuser {
	if clock == nil {
		clock = time.Now
	}
	return &Reuser{next: next, ttl: ttl, now: clock}
}

// Resolve returns the tenant for a canonical OID, reusing one resolved
// less than TTL ago.
func (r *Reuser) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	if r.ttl <= 0 {
		return r.next.Resolve(ctx, oid)
	}
	now := r.now()
	if v, ok := r.items.Load(oid); ok {
		if e := v.(*reused); now.Before(e.until) {
			return e.t, nil
		}
	}
	t, err := r.next.Resolve(ctx, oid)
	if err != nil {
		return nil, err
	}
	// A copy of the key: oid may be a slice of a caller's request line.
	r.items.Store(strings.Clone(oid), &reused{t: t, until: now.Add(r.ttl)})
	r.sweep(now)
	return t, nil
}

// Forget drops the tenant kept for oid, so that the next Resolve asks
// the Source again.
func (r *Reuser) Forget(oid string) { r.items.Delete(oid) }

// Len is the number of tenants kept, expired or not.
func (r *Reuser) Len() int {
	n := 0
	r.items.Range(func(any, any) bool { n++; return true })
	return n
}

// sweep drops expired entries at most once per sweepEvery.
func (r *Reuser) sweep(now time.Time) {
	at := r.sweepAt.Load()
	if now.UnixNano() < at || !r.sweepAt.CompareAndSwap(at, now.Add(sweepEvery).UnixNano()) {
		return
	}
	r.items.Range(func(k, v any) bool {
		if !now.Before(v.(*reused).until) {
			r.items.CompareAndDelete(k, v)
		}
		return true
	})
}
