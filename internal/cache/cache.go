package cache

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultFetchTimeout bounds a shared fetch when Config.FetchTimeout is
// zero, in case the fetch's HTTP client has no timeout of its own.
const DefaultFetchTimeout = 2 * time.Minute

// Item is what a Store keeps for a key.
type Item[V any] struct {
	Value     V
	FetchedAt time.Time
}

// Store keeps a Cache's items. Freshness is the Cache's to judge (by its
// clock); keep is only how long the Store must hold an item at least, so
// that it can free memory after. Implementations are safe for
// concurrent use.
type Store[V any] interface {
	Load(key string) (Item[V], bool)
	Save(key string, it Item[V], keep time.Duration)
	Delete(key string)
	Len() int
}

// Memory is the in-process Store: a sync.Map (lock-free reads on the
// hot path) whose items past their keep time are dropped, by its clock,
// at most once per sweep interval, when an item is saved.
type Memory[V any] struct {
	now   func() time.Time
	sweep time.Duration

	items   sync.Map // key -> *kept[V]
	sweepAt atomic.Int64
}

type kept[V any] struct {
	it    Item[V]
	until time.Time
}

var _ Store[int] = (*Memory[int])(nil)

// DefaultSweep is how often a Memory drops expired items by default.
const DefaultSweep = time.Minute

// NewMemory returns an empty in-process Store on clock (time.Now when
// nil) that drops expired items at most every sweep (DefaultSweep when
// zero or less).
func NewMemory[V any](clock func() time.Time, sweep time.Duration) *Memory[V] {
	if clock == nil {
		clock = time.Now
	}
	if sweep <= 0 {
		sweep = DefaultSweep
	}
	return &Memory[V]{now: clock, sweep: sweep}
}

// Load returns key's item, expired or not.
func (m *Memory[V]) Load(key string) (Item[V], bool) {
	v, ok := m.items.Load(key)
	if !ok {
		return Item[V]{}, false
	}
	return v.(*kept[V]).it, true
}

// Save keeps it for key for at least keep.
func (m *Memory[V]) Save(key string, it Item[V], keep time.Duration) {
	now := m.now()
	m.items.Store(key, &kept[V]{it: it, until: now.Add(keep)})
	at := m.sweepAt.Load()
	if now.UnixNano() < at || !m.sweepAt.CompareAndSwap(at, now.Add(m.sweep).UnixNano()) {
		return
	}
	m.items.Range(func(k, v any) bool {
		if !now.Before(v.(*kept[V]).until) {
			m.items.CompareAndDelete(k, v)
		}
		return true
	})
}

// Delete drops key's item.
func (m *Memory[V]) Delete(key string) { m.items.Delete(key) }

// Len is the number of items held, including expired ones not yet swept.
func (m *Memory[V]) Len() int {
	n := 0
	m.items.Range(func(any, any) bool { n++; return true })
	return n
}

// Range calls fn for every key held, until fn returns false.
func (m *Memory[V]) Range(fn func(key string) bool) {
	m.items.Range(func(k, _ any) bool { return fn(k.(string)) })
}

// Config configures a Cache.
type Config struct {
	// TTL is how long a fetched value is served. It must be positive.
	TTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// FetchTimeout bounds each shared fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
}

// Option configures a Cache.
type Option[V any] func(*Cache[V])

// WithStore keeps the Cache's items in s instead of an in-process
// Memory.
func WithStore[V any](s Store[V]) Option[V] { return func(c *Cache[V]) { c.items = s } }

// Cache holds values of type V by string key. It is safe for concurrent
// use.
type Cache[V any] struct {
	ttl          time.Duration
	now          func() time.Time
	fetchTimeout time.Duration
	items        Store[V]
	group        singleflight.Group
}

// New returns an empty Cache.
func New[V any](cfg Config, opts ...Option[V]) *Cache[V] {
	c := &Cache[V]{ttl: cfg.TTL, now: cfg.Clock, fetchTimeout: cfg.FetchTimeout}
	if c.now == nil {
		c.now = time.Now
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	for _, o := range opts {
		o(c)
	}
	if c.items == nil {
		c.items = NewMemory[V](c.now, DefaultSweep)
	}
	return c
}

// Get returns the value cached for key and when it was fetched. On a miss
// it calls fetch, once for all concurrent callers of key, and caches what
// it returns. If ctx ends first, Get returns ctx.Err() while the shared
// fetch goes on for the others.
func (c *Cache[V]) Get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, time.Time, error) {
	if e, ok := c.fresh(key); ok {
		return e.Value, e.FetchedAt, nil
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
		e := Item[V]{Value: v, FetchedAt: c.now()}
		// A copy: key may be a slice of a caller's request line, which
		// the cache must not keep alive.
		c.items.Save(strings.Clone(key), e, c.ttl)
		return e, nil
	})
	select {
	case <-ctx.Done():
		return zero, time.Time{}, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return zero, time.Time{}, res.Err
		}
		e := res.Val.(Item[V])
		return e.Value, e.FetchedAt, nil
	}
}

// Fresh returns key's value when it is fresh, without fetching. Callers
// on a hot path use it before Get, whose fetch closure they would
// otherwise allocate on every call.
func (c *Cache[V]) Fresh(key string) (V, bool) {
	e, ok := c.fresh(key)
	return e.Value, ok
}

// Forget drops key, so that the next Get fetches again. A fetch already
// in flight is not cancelled, but later lookups do not join it.
func (c *Cache[V]) Forget(key string) {
	c.group.Forget(key)
	c.items.Delete(key)
}

// Len is the number of entries held, fresh or not yet evicted.
func (c *Cache[V]) Len() int { return c.items.Len() }

// fresh returns key's entry if it is younger than the TTL by the clock.
func (c *Cache[V]) fresh(key string) (Item[V], bool) {
	e, ok := c.items.Load(key)
	if !ok || c.now().Sub(e.FetchedAt) >= c.ttl {
		return Item[V]{}, false
	}
	return e, true
}
