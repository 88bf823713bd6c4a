package flightcache

import (
	"context"
	"strings"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// DefaultFetchTimeout bounds a shared fetch when Config.FetchTimeout is
// zero, in case the fetch's HTTP client has no timeout of its own.
const DefaultFetchTimeout = 2 * time.Minute

// Config configures a Cache.
type Config struct {
	// TTL is how long a fetched value is served. It must be positive.
	TTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// FetchTimeout bounds each shared fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
}

// Cache holds values of type V by string key. It is safe for concurrent
// use.
type Cache[V any] struct {
	ttl          time.Duration
	now          func() time.Time
	fetchTimeout time.Duration
	items        *cache.Cache
	group        singleflight.Group
}

type entry[V any] struct {
	value     V
	fetchedAt time.Time
}

// New returns an empty Cache.
func New[V any](cfg Config) *Cache[V] {
	c := &Cache[V]{ttl: cfg.TTL, now: cfg.Clock, fetchTimeout: cfg.FetchTimeout}
	if c.now == nil {
		c.now = time.Now
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	c.items = cache.New(c.ttl, c.ttl)
	return c
}

// Get returns the value cached for key and when it was fetched. On a miss
// it calls fetch, once for all concurrent callers of key, and caches what
// it returns. If ctx ends first, Get returns ctx.Err() while the shared
// fetch goes on for the others.
func (c *Cache[V]) Get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, time.Time, error) {
	if e, ok := c.fresh(key); ok {
		return e.value, e.fetchedAt, nil
	}
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, time.Time{}, err
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// A flight that finished between our miss and DoChan has filled
		// the cache: do not fetch again.
		if e, ok := c.fresh(key); ok {
			return e, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout)
		defer cancel()
		v, err := fetch(fctx)
		if err != nil {
			return nil, err
		}
		e := entry[V]{value: v, fetchedAt: c.now()}
		// A copy: key may be a slice of a caller's request line, which
		// the cache must not keep alive.
		c.items.Set(strings.Clone(key), e, c.ttl)
		return e, nil
	})
	select {
	case <-ctx.Done():
		return zero, time.Time{}, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return zero, time.Time{}, res.Err
		}
		e := res.Val.(entry[V])
		return e.value, e.fetchedAt, nil
	}
}

// Forget drops key, so that the next Get fetches again. A fetch already
// in flight is not cancelled, but later lookups do not join it.
func (c *Cache[V]) Forget(key string) {
	c.group.Forget(key)
	c.items.Delete(key)
}

// Len is the number of entries held, fresh or not yet evicted.
func (c *Cache[V]) Len() int { return c.items.ItemCount() }

// fresh returns key's entry if it is younger than the TTL by the clock.
func (c *Cache[V]) fresh(key string) (entry[V], bool) {
	v, ok := c.items.Get(key)
	if !ok {
		return entry[V]{}, false
	}
	e := v.(entry[V])
	if c.now().Sub(e.fetchedAt) >= c.ttl {
		return entry[V]{}, false
	}
	return e, true
}
