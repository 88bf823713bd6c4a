package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cqgate/cqgate/internal/flightcache"
)

const (
	// DefaultTTL is how long a Resolver caches a directory answer when
	// ResolverConfig.TTL is zero.
	DefaultTTL = time.Hour
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
	cache   *flightcache.Cache[*Organization] // canonical OID -> directory answer
}

// NewResolver returns a Resolver for cfg.
func NewResolver(cfg ResolverConfig) *Resolver {
	r := &Resolver{fetcher: cfg.Fetcher, static: make(map[string]Entry, len(cfg.Static))}
	ttl, now := cfg.TTL, cfg.Clock
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	r.cache = flightcache.New[*Organization](flightcache.Config{TTL: ttl, Clock: now})
	created := now()
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
	org, fetchedAt, err := r.cache.Get(ctx, oid, func(fctx context.Context) (*Organization, error) {
		org, err := r.fetcher.Organization(fctx, oid)
		switch {
		case err != nil:
			return nil, err
		case org == nil:
			return nil, fmt.Errorf("directory: lookup %s: fetcher returned no organization", oid)
		case org.OID != oid:
			return nil, fmt.Errorf("directory: lookup %s: directory returned organization %s", oid, org.OID)
		}
		return org, nil
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return nil, fmt.Errorf("directory: lookup %s: %w", oid, err)
		}
		return nil, err
	}
	return &Entry{Organization: org, Source: SourceDirectory, CachedAt: fetchedAt}, nil
}

// Forget drops the cached directory answer for oid, so that the next
// Lookup asks the directory again. A request already in flight is not
// cancelled, but later lookups do not join it.
func (r *Resolver) Forget(oid string) {
	if canon, err := ParseOID(oid); err == nil {
		oid = canon
	}
	r.cache.Forget(oid)
}
