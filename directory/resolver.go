package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

const (
	// DefaultTTL is how long a Resolver caches a directory answer when
	// ResolverConfig.TTL is zero.
	DefaultTTL = time.Hour

	// sharedFetchTimeout bounds a shared directory fetch, which runs
	// detached from its callers' cancellation, in case the Fetcher's
	// HTTP client has no timeout of its own.
	sharedFetchTimeout = 2 * time.Minute
)

// Sources of an Entry.
const (
	SourceStatic    = "static"
	SourceDirectory = "directory"
)

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	// Fetcher asks the directory; nil means only Static entries resolve.
	Fetcher Fetcher
	// Static maps OIDs (bare or "urn:oid:" form) to organizations known
	// from configuration. They win over the directory and are never
	// fetched. Keys that are not valid OIDs and nil values are ignored.
	Static map[string]*Organization
	// TTL is how long directory answers are cached; 0 means DefaultTTL.
	TTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Entry is a resolved organization.
type Entry struct {
	// Organization is shared with the cache: do not modify it.
	Organization *Organization
	// Source is SourceStatic or SourceDirectory.
	Source string
	// CachedAt is when the directory answered, or for a static entry
	// when the Resolver was created.
	CachedAt time.Time
}

// Resolver resolves OIDs to organizations: static entries first, then
// the directory, whose answers it caches for a TTL. Concurrent lookups of
// one OID share one directory request. Failed lookups are not cached. A
// Resolver is safe for concurrent use.
type Resolver struct {
	fetcher Fetcher
	static  map[string]Entry
	ttl     time.Duration
	now     func() time.Time
	cache   *cache.Cache // canonical OID -> Entry
	group   singleflight.Group
}

// NewResolver returns a Resolver for cfg.
func NewResolver(cfg ResolverConfig) *Resolver {
	r := &Resolver{
		fetcher: cfg.Fetcher,
		static:  make(map[string]Entry, len(cfg.Static)),
		ttl:     cfg.TTL,
		now:     cfg.Clock,
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.now == nil {
		r.now = time.Now
	}
	created := r.now()
	for key, org := range cfg.Static {
		oid, err := ParseOID(key)
		if err != nil || org == nil {
			continue
		}
		o := *org // do not modify the caller's value
		if o.OID == "" {
			o.OID = oid
		}
		r.static[oid] = Entry{Organization: &o, Source: SourceStatic, CachedAt: created}
	}
	// go-cache expires items by the wall clock; Lookup also checks the
	// injected Clock, so the wall-clock expiry only frees memory.
	r.cache = cache.New(r.ttl, r.ttl)
	return r
}

// Lookup returns the organization for oid (bare or "urn:oid:" form).
// It returns an error wrapping ErrInvalidOID for a malformed OID and
// ErrNotFound when neither the static entries nor the directory know it.
// ctx bounds only this caller's wait: a directory request shared with
// other callers goes on when ctx is done.
func (r *Resolver) Lookup(ctx context.Context, oid string) (*Entry, error) {
	oid, err := ParseOID(oid)
	if err != nil {
		return nil, err
	}
	if e, ok := r.static[oid]; ok {
		return &e, nil
	}
	if r.fetcher == nil {
		return nil, fmt.Errorf("%w: %s (no directory configured)", ErrNotFound, oid)
	}
	if e, ok := r.cached(oid); ok {
		return &e, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("directory: lookup %s: %w", oid, err)
	}
	ch := r.group.DoChan(oid, func() (any, error) {
		// A flight that finished between our cache miss and DoChan has
		// filled the cache: do not ask the directory again.
		if e, ok := r.cached(oid); ok {
			return e, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedFetchTimeout)
		defer cancel()
		org, err := r.fetcher.Organization(fctx, oid)
		if err != nil {
			return nil, err
		}
		if org == nil {
			return nil, fmt.Errorf("directory: lookup %s: fetcher returned no organization", oid)
		}
		if org.OID != oid {
			return nil, fmt.Errorf("directory: lookup %s: directory returned organization %s", oid, org.OID)
		}
		e := Entry{Organization: org, Source: SourceDirectory, CachedAt: r.now()}
		r.cache.Set(oid, e, r.ttl)
		return e, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("directory: lookup %s: %w", oid, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		e, ok := res.Val.(Entry)
		if !ok {
			return nil, errors.New("directory: lookup: internal error: unexpected flight result")
		}
		return &e, nil
	}
}

// Forget drops the cached directory answer for oid, so that the next
// Lookup asks the directory again. A request already in flight is not
// cancelled, but later lookups do not join it.
func (r *Resolver) Forget(oid string) {
	if canon, err := ParseOID(oid); err == nil {
		oid = canon
	}
	r.group.Forget(oid)
	r.cache.Delete(oid)
}

// cached returns the cached entry for oid if it is younger than the TTL
// by the Resolver's clock.
func (r *Resolver) cached(oid string) (Entry, bool) {
	v, ok := r.cache.Get(oid)
	if !ok {
		return Entry{}, false
	}
	e, ok := v.(Entry)
	if !ok || r.now().Sub(e.CachedAt) >= r.ttl {
		return Entry{}, false
	}
	return e, true
}
