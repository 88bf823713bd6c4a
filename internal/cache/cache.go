package cache

import (
	"context"
	"math"
	"strings"
	"sync"
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

// Memory is the in-process Store: a map of items by value (no
// allocation per item beyond the map's own slot) under a read-write
// lock, whose items past their keep time are dropped, by its clock, at
// most once per sweep interval, when an item is saved. A sync.Map costs
// about 150 bytes more per item (its trie nodes and a boxed value), which
// at 10,000 organizations in five caches is most of a megabyte.
type Memory[V any] struct {
	now   func() time.Time
	sweep time.Duration
	// dropped, when set, is told of every value that stops being the
	// one held for its key (WithDropped).
	dropped func(old, replacement V, replaced bool)

	mu      sync.RWMutex
	items   map[string]kept[V]
	sweepAt int64 // Unix nanoseconds; under mu
}

// kept is an item as a Memory holds it: times as Unix nanoseconds, 16
// bytes less each than a time.Time, so a map slot is 40 bytes instead of
// 72 for a pointer value (four caches hold one per organization).
// FetchedAt comes back as a wall-clock time (no monotonic reading) in
// time.Local, the same instant.
type kept[V any] struct {
	value     V
	fetchedAt int64 // Unix nanoseconds; noTime for the zero time
	until     int64 // Unix nanoseconds
}

// noTime stands for the zero time.Time, which has no Unix nanoseconds.
const noTime = math.MinInt64

// toNanos and fromNanos keep a time in an int64 and back: the zero
// time stays zero, every other time stays the same instant.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n)
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
	return &Memory[V]{now: clock, sweep: sweep, items: make(map[string]kept[V])}
}

// Load returns key's item, expired or not.
func (m *Memory[V]) Load(key string) (Item[V], bool) {
	m.mu.RLock()
	k, ok := m.items[key]
	m.mu.RUnlock()
	return Item[V]{Value: k.value, FetchedAt: fromNanos(k.fetchedAt)}, ok
}

// Save keeps it for key for at least keep.
func (m *Memory[V]) Save(key string, it Item[V], keep time.Duration) {
	now := m.now()
	nowNanos := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dropped != nil {
		if old, ok := m.items[key]; ok {
			m.dropped(old.value, it.Value, true)
		}
	}
	m.items[key] = kept[V]{value: it.Value, fetchedAt: toNanos(it.FetchedAt), until: now.Add(keep).UnixNano()}
	if nowNanos < m.sweepAt {
		return
	}
	m.sweepAt = now.Add(m.sweep).UnixNano()
	for k, v := range m.items {
		if nowNanos >= v.until {
			m.drop(k, v)
		}
	}
}

// Delete drops key's item.
func (m *Memory[V]) Delete(key string) {
	m.mu.Lock()
	if v, ok := m.items[key]; ok {
		m.drop(key, v)
	}
	m.mu.Unlock()
}

// drop deletes key's item v, under m.mu.
func (m *Memory[V]) drop(key string, v kept[V]) {
	delete(m.items, key)
	if m.dropped != nil {
		var zero V
		m.dropped(v.value, zero, false)
	}
}

// Len is the number of items held, including expired ones not yet swept.
func (m *Memory[V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.items)
}

// Range calls fn for every key held, until fn returns false. fn runs on
// a copy of the keys, so it may call the Memory's other methods.
func (m *Memory[V]) Range(fn func(key string) bool) {
	m.mu.RLock()
	keys := make([]string, 0, len(m.items))
	for k := range m.items {
		keys = append(keys, k)
	}
	m.mu.RUnlock()
	for _, k := range keys {
		if !fn(k) {
			return
		}
	}
}

// Config configures a Cache.
type Config struct {
	// TTL is how long a fetched value is served. It must be positive.
	TTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// FetchTimeout bounds each shared fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Keep is how long past its TTL an item is still held and returned
	// by Peek, for stale-if-error serving; 0 means not at all.
	Keep time.Duration
	// OwnKeys says the keys are strings made for the cache (never slices
	// of a larger buffer such as a request line), so Set keeps them as
	// they are instead of a copy: at thousands of entries the copy of a
	// URL-sized key is most of a hundred bytes each.
	OwnKeys bool
}

// Option configures a Cache.
type Option[V any] func(*Cache[V])

// WithStore keeps the Cache's items in s instead of an in-process
// Memory.
func WithStore[V any](s Store[V]) Option[V] { return func(c *Cache[V]) { c.items = s } }

// WithDropped has the Cache's in-process Memory call fn with every
// value that stops being the one held for its key: replaced by a Set
// or Put (replaced true, with the replacement, which may be the same
// value), or deleted by Delete, Forget or the sweep of expired items
// (replaced false). fn runs under the Memory's lock: it must be quick
// and must not call the Cache. A value's owner uses it to mark the
// value no longer current where a caller keeping it can see that
// without a map lookup. It cannot be combined with WithStore (New
// panics): another Store could drop items unseen.
func WithDropped[V any](fn func(old, replacement V, replaced bool)) Option[V] {
	return func(c *Cache[V]) { c.dropped = fn }
}

// Cache holds values of type V by string key. It is safe for concurrent
// use.
type Cache[V any] struct {
	ttl          time.Duration
	keep         time.Duration
	now          func() time.Time
	fetchTimeout time.Duration
	ownKeys      bool
	items        Store[V]
	dropped      func(old, replacement V, replaced bool)
	group        singleflight.Group
}

// New returns an empty Cache.
func New[V any](cfg Config, opts ...Option[V]) *Cache[V] {
	c := &Cache[V]{ttl: cfg.TTL, keep: max(cfg.Keep, 0), now: cfg.Clock, fetchTimeout: cfg.FetchTimeout, ownKeys: cfg.OwnKeys}
	if c.now == nil {
		c.now = time.Now
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.items == nil:
		m := NewMemory[V](c.now, DefaultSweep)
		m.dropped = c.dropped
		c.items = m
	case c.dropped != nil:
		panic("cache: WithDropped needs the in-process Memory, not WithStore")
	}
	return c
}

// Get returns the value cached for key and when it was fetched. On a miss
// it calls fetch, once for all concurrent callers of key, and caches what
// it returns. If ctx ends first, Get returns ctx.Err() while the shared
// fetch goes on for the others.
func (c *Cache[V]) Get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, time.Time, error) {
	return c.GetMaxAge(ctx, key, c.ttl, fetch)
}

// GetMaxAge is Get for a caller that takes a cached value only when it is
// younger than maxAge (at most the TTL): an older one is fetched again,
// and what is fetched is cached for the TTL as Get's is.
func (c *Cache[V]) GetMaxAge(ctx context.Context, key string, maxAge time.Duration, fetch func(context.Context) (V, error)) (V, time.Time, error) {
	if e, ok := c.within(key, maxAge); ok {
		return e.Value, e.FetchedAt, nil
	}
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, time.Time{}, err
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// A flight that finished between our miss and DoChan has filled
		// the cache: do not fetch again.
		if e, ok := c.within(key, maxAge); ok {
			return e, nil
		}
		v, err := c.detached(ctx, fetch)
		if err != nil {
			return nil, err
		}
		return c.Put(key, v), nil
	})
	return c.wait(ctx, ch)
}

// Do runs fetch once for all concurrent callers of key (and of Get and
// Refresh on key), detached from ctx's cancellation and bounded by the
// fetch timeout, and returns its value without caching it: fetch decides
// what is kept (Put, Set, Forget). It is for callers whose policy —
// stale-if-error, per-entry expiry, refusing a refresh — sits on top of
// the cache. If ctx ends first, Do returns ctx.Err() while the shared
// fetch goes on for the others.
func (c *Cache[V]) Do(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	if err := ctx.Err(); err != nil {
		var zero V
		return zero, err
	}
	v, _, err := c.wait(ctx, c.group.DoChan(key, c.flight(ctx, fetch)))
	return v, err
}

// Refresh starts fetch in the background as Do would, unless a fetch of
// key is in flight already (then that one is the refresh), and returns at
// once. done, when not nil, is called with the flight's error when it
// ends. It is for refreshing a value ahead of its expiry while callers
// keep getting the cached one.
func (c *Cache[V]) Refresh(ctx context.Context, key string, fetch func(context.Context) (V, error), done func(error)) {
	ch := c.group.DoChan(key, c.flight(ctx, fetch))
	if done != nil {
		go func() { done((<-ch).Err) }()
	}
}

func (c *Cache[V]) flight(ctx context.Context, fetch func(context.Context) (V, error)) func() (any, error) {
	return func() (any, error) {
		v, err := c.detached(ctx, fetch)
		if err != nil {
			return nil, err
		}
		return Item[V]{Value: v, FetchedAt: c.now()}, nil
	}
}

// detached calls fetch on ctx's values without its cancellation, bounded
// by the fetch timeout.
func (c *Cache[V]) detached(ctx context.Context, fetch func(context.Context) (V, error)) (V, error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout)
	defer cancel()
	return fetch(fctx)
}

// wait waits for a flight's result until ctx is done.
func (c *Cache[V]) wait(ctx context.Context, ch <-chan singleflight.Result) (V, time.Time, error) {
	var zero V
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

// Put caches v for key as fetched now, and returns the item kept.
func (c *Cache[V]) Put(key string, v V) Item[V] {
	it := Item[V]{Value: v, FetchedAt: c.now()}
	c.Set(key, it)
	return it
}

// Set caches it for key as it is: fresh until it.FetchedAt plus the TTL,
// held for Peek the Keep after that.
func (c *Cache[V]) Set(key string, it Item[V]) {
	if !c.ownKeys {
		// A copy: key may be a slice of a caller's request line, which
		// the cache must not keep alive.
		key = strings.Clone(key)
	}
	c.items.Save(key, it, c.ttl+c.keep)
}

// Peek returns key's item, fresh or not, while it is held: until its
// TTL plus Keep have passed since it was fetched. It never fetches;
// stale-if-error serving uses it after a failed Get or Do.
func (c *Cache[V]) Peek(key string) (Item[V], bool) {
	e, ok := c.items.Load(key)
	if !ok || c.now().After(e.FetchedAt.Add(c.ttl+c.keep)) {
		return Item[V]{}, false
	}
	return e, true
}

// Stored returns key's item as the Store holds it, fresh or not and
// without reading the clock: for a caller that judges an item by its
// own rules ("is this still the entry I built from"), allocation-free.
func (c *Cache[V]) Stored(key string) (Item[V], bool) { return c.items.Load(key) }

// Fresh returns key's value when it is fresh, without fetching. Callers
// on a hot path use it before Get, whose fetch closure they would
// otherwise allocate on every call.
func (c *Cache[V]) Fresh(key string) (V, bool) {
	e, ok := c.within(key, c.ttl)
	return e.Value, ok
}

// Forget drops key, so that the next Get fetches again. A fetch already
// in flight is not cancelled, but later lookups do not join it.
func (c *Cache[V]) Forget(key string) {
	c.group.Forget(key)
	c.items.Delete(key)
}

// Delete drops key's item. Unlike Forget it leaves a fetch in flight
// joinable, so a flight can drop what it must no longer serve.
func (c *Cache[V]) Delete(key string) { c.items.Delete(key) }

// ForgetMatching forgets every held key for which match is true, when
// the Store can list its keys (Memory can); it reports whether it could.
func (c *Cache[V]) ForgetMatching(match func(key string) bool) bool {
	r, ok := c.items.(interface{ Range(func(key string) bool) })
	if !ok {
		return false
	}
	var keys []string
	r.Range(func(k string) bool {
		if match(k) {
			keys = append(keys, k)
		}
		return true
	})
	for _, k := range keys {
		c.Forget(k)
	}
	return true
}

// Len is the number of entries held, fresh or not yet evicted.
func (c *Cache[V]) Len() int { return c.items.Len() }

// within returns key's entry if it is younger than maxAge (and the TTL)
// by the clock.
func (c *Cache[V]) within(key string, maxAge time.Duration) (Item[V], bool) {
	e, ok := c.items.Load(key)
	if !ok || c.now().Sub(e.FetchedAt) >= min(maxAge, c.ttl) {
		return Item[V]{}, false
	}
	return e, true
}
