package revocation

import (
	"sync"
	"time"
)

// cache holds answers (and failures) until a deadline. It is bounded:
// when full, expired entries go first, then arbitrary ones.
type cache struct {
	max int
	mu  sync.Mutex
	m   map[string]cacheEntry
}

type cacheEntry struct {
	val   any
	err   error
	until time.Time
}

func newCache(max int) *cache { return &cache{max: max, m: map[string]cacheEntry{}} }

func (c *cache) get(key string, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return cacheEntry{}, false
	}
	if !now.Before(e.until) {
		delete(c.m, key)
		return cacheEntry{}, false
	}
	return e, true
}

func (c *cache) put(key string, e cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
