package tenant

import (
	"sync"
	"sync/atomic"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
)

// CurrentLookup is a DirectoryLookup that says whether an organization
// it returned is still its current answer (*directory.Resolver). A
// Resolver vouches for (Current) only tenants built from one: a wrapper
// around a directory (counting its lookups, say) must pass it on.
type CurrentLookup interface {
	DirectoryLookup
	Current(oid string, a directory.Answer) bool
}

// CurrentDiscoverer is a TokenDiscoverer that says whether the result a
// Discover returned is still its current one (*discovery.Discoverer);
// as CurrentLookup, a wrapper must pass it on.
type CurrentDiscoverer interface {
	TokenDiscoverer
	Key(req discovery.Request) (string, bool)
	Version(key string, res *discovery.Result) (discovery.Cached, bool)
	Current(version discovery.Cached) bool
}

var (
	_ CurrentLookup     = (*directory.Resolver)(nil)
	_ CurrentDiscoverer = (*discovery.Discoverer)(nil)
)

// resolution is what one Describe built a Tenant from, shared by the
// tenant's copies (WithScope, WithPurposes): the cached entries that
// vouch for it, and values other packages derive from it.
type resolution struct {
	org directory.Answer
	// result is the cached discovery result; the zero Cached when the
	// token URL is configured.
	result discovery.Cached

	mu sync.Mutex // serializes writers of derived
	// derived are the values Derived keeps, newest first: a list, so
	// that finding one reads its node and the ones before it (no slice
	// header and array apart from them).
	derived atomic.Pointer[derivedValue]
	// kept is the tenant a Reuser keeps (Reused), nil until it does.
	kept atomic.Pointer[Tenant]
}

// Reused reports whether t is the very tenant a Reuser keeps for later
// requests, not a copy of it (WithScope, WithPurposes): then what
// Derived keeps lives across requests, and is worth building for a
// saving on each, and what t asks for (its TokenKey) is the same on
// every request, as t is never modified.
func (t *Tenant) Reused() bool { return t.res != nil && t.res.kept.Load() == t }

// Current reports whether t, a tenant r resolved, is still what r
// would resolve: its directory entry and discovery result are the
// cached ones it was built from and still fresh, so that building it
// again would give the same tenant. It allocates nothing. A tenant
// built from a stale answer (stale-if-error), or from a lookup or
// discoverer that cannot say (not *directory.Resolver or
// *discovery.Discoverer), or waiting for a UDAP registration, is never
// current: the Reuser then keeps it only for its TTL.
func (r *Resolver) Current(t *Tenant) bool {
	res := t.res
	if res == nil || !t.vouched {
		return false
	}
	dir, ok := r.Directory.(CurrentLookup)
	if !ok || !dir.Current(t.OID, res.org) {
		return false
	}
	if res.result == (discovery.Cached{}) {
		return true // the token URL is configured
	}
	disc, ok := r.Discovery.(CurrentDiscoverer)
	return ok && disc.Current(res.result)
}

// DerivedKey names a value derived from a tenant (Tenant.Derived).
type DerivedKey struct {
	// Kind names the deriving package's use, e.g. "proxy.rewriter".
	Kind string
	// A and B are what the value depends on besides the tenant.
	A, B string
}

type derivedValue struct {
	key  DerivedKey
	v    any
	next *derivedValue // older; never modified once stored
}

// withoutOldest returns a copy of the list d without its last node.
func withoutOldest(d *derivedValue) *derivedValue {
	if d == nil || d.next == nil {
		return nil
	}
	return &derivedValue{key: d.key, v: d.v, next: withoutOldest(d.next)}
}

// maxDerived bounds the values kept per resolved tenant: past it, a
// new key replaces the oldest one.
const maxDerived = 4

// Derived returns the value build makes for t under key, built once per
// resolved tenant (and shared with its copies) for up to four keys. It
// is for values that depend only on what copies share (OID, FHIRBase,
// endpoints), such as a response rewriter: kept on the tenant, they
// live exactly as long as it is reused. Errors are not kept. A tenant
// not made by a Resolver builds every time. Lookups allocate nothing.
func (t *Tenant) Derived(key DerivedKey, build func() (any, error)) (any, error) {
	res := t.res
	if res == nil {
		return build()
	}
	for d := res.derived.Load(); d != nil; d = d.next {
		if d.key == key {
			return d.v, nil
		}
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	head, n := res.derived.Load(), 0
	for d := head; d != nil; d = d.next {
		if d.key == key {
			return d.v, nil // built meanwhile: share that one
		}
		n++
	}
	if n >= maxDerived {
		head = withoutOldest(head)
	}
	res.derived.Store(&derivedValue{key: key, v: v, next: head})
	return v, nil
}
