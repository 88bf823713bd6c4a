package assertion

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

const (
	// DefaultRefreshMargin is how long before expiry a cached token is
	// replaced.
	DefaultRefreshMargin = 60 * time.Second
	// DefaultTokenLifetime is assumed when the server gave no expires_in.
	DefaultTokenLifetime = 5 * time.Minute
)

// Key identifies a cached token. Tokens are reused only for requests with
// an equal Key.
type Key struct {
	TokenURL string
	ClientID string
	Scope    string
}

// String encodes k unambiguously for use as a cache key. New fields (a
// B2B context digest, say) are appended as further name=value pairs.
func (k Key) String() string {
	var b strings.Builder
	b.WriteString("token_url=")
	b.WriteString(url.QueryEscape(k.TokenURL))
	b.WriteString("&client_id=")
	b.WriteString(url.QueryEscape(k.ClientID))
	b.WriteString("&scope=")
	b.WriteString(url.QueryEscape(k.Scope))
	return b.String()
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// RefreshMargin: a token is replaced once now ≥ Expiry − RefreshMargin.
	// When it is not shorter than the token's lifetime, half the lifetime
	// is used instead. Zero or negative means DefaultRefreshMargin.
	RefreshMargin time.Duration
	// DefaultLifetime is the lifetime assumed when the server gave no
	// expires_in. Zero or negative means DefaultTokenLifetime.
	DefaultLifetime time.Duration
	// Clock returns the current time; nil means time.Now. It should be
	// the clock the Exchanger uses.
	Clock func() time.Time
}

// CacheStats are counters since the Cache was created.
type CacheStats struct {
	// Hits counts calls answered from the cache.
	Hits int64
	// Misses counts calls that found no fresh token.
	Misses int64
	// Exchanges counts calls to the underlying TokenSource.
	Exchanges int64
}

// Cache keeps access tokens until shortly before they expire. For each
// Key, concurrent callers that find no fresh token share one exchange.
// Errors are not cached. A Cache is safe for concurrent use.
type Cache struct {
	margin   time.Duration
	lifetime time.Duration
	clock    func() time.Time

	mu     sync.Mutex // orders stores against Invalidate's compare-and-delete
	tokens *gocache.Cache
	group  singleflight.Group

	hits, misses, exchanges atomic.Int64
}

type cacheEntry struct {
	token     Token
	refreshAt time.Time
}

// NewCache returns an empty Cache.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{
		margin:   cfg.RefreshMargin,
		lifetime: cfg.DefaultLifetime,
		clock:    cfg.Clock,
		// Entries carry their own TTL. go-cache measures it on the wall
		// clock, so freshness is also checked against Clock on every read.
		tokens: gocache.New(gocache.NoExpiration, time.Minute),
	}
	if c.margin <= 0 {
		c.margin = DefaultRefreshMargin
	}
	if c.lifetime <= 0 {
		c.lifetime = DefaultTokenLifetime
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	return c
}

// Token returns the cached token for key while it is fresh, and otherwise
// obtains one from src. Concurrent callers for the same key share a
// single call to src, which runs under context.WithoutCancel(ctx) so that
// one caller giving up does not fail the others; each caller still
// returns as soon as its own ctx is done. Bound src with the HTTP
// client's Timeout. The returned Token is the caller's own copy.
func (c *Cache) Token(ctx context.Context, key Key, src TokenSource) (*Token, error) {
	k := key.String()
	if t, ok := c.lookup(k); ok {
		c.hits.Add(1)
		return t, nil
	}
	c.misses.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("assertion: waiting for token: %w", err)
	}
	ch := c.group.DoChan(k, func() (any, error) {
		// A flight that ended just before this one may have stored a
		// fresh token.
		if t, ok := c.lookup(k); ok {
			return t, nil
		}
		c.exchanges.Add(1)
		t, err := src.Token(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		if t == nil || t.AccessToken == "" {
			return nil, errors.New("assertion: token source returned no access token")
		}
		c.store(k, t)
		return t, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("assertion: waiting for token: %w", ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		t := *res.Val.(*Token)
		return &t, nil
	}
}

// Invalidate drops the cached token for key if its AccessToken is stale,
// typically one a resource server has just rejected with 401. A cached
// token that differs from stale was already obtained to replace it and is
// kept, so a burst of 401s for one old token causes exactly one exchange.
func (c *Cache) Invalidate(key Key, stale string) {
	k := key.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.tokens.Get(k)
	if !ok {
		return
	}
	if e := v.(*cacheEntry); subtle.ConstantTimeCompare([]byte(e.token.AccessToken), []byte(stale)) == 1 {
		c.tokens.Delete(k)
	}
}

// Source returns a TokenSource that serves key from the cache and falls
// back to src.
func (c *Cache) Source(key Key, src TokenSource) TokenSource {
	return &cachedSource{c: c, key: key, src: src}
}

type cachedSource struct {
	c   *Cache
	key Key
	src TokenSource
}

func (s *cachedSource) Token(ctx context.Context) (*Token, error) {
	return s.c.Token(ctx, s.key, s.src)
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Exchanges: c.exchanges.Load()}
}

// lookup returns a copy of the cached token for k if it is still fresh.
func (c *Cache) lookup(k string) (*Token, bool) {
	v, ok := c.tokens.Get(k)
	if !ok {
		return nil, false
	}
	e := v.(*cacheEntry)
	if !c.clock().Before(e.refreshAt) {
		return nil, false
	}
	t := e.token
	return &t, true
}

// store caches t until Expiry − margin; a token that is already due for
// refresh is not cached.
func (c *Cache) store(k string, t *Token) {
	now := c.clock()
	expiry := t.Expiry
	if expiry.IsZero() {
		expiry = now.Add(c.lifetime)
	}
	lifetime := t.ExpiresIn
	if lifetime <= 0 {
		lifetime = expiry.Sub(now)
	}
	margin := c.margin
	if margin >= lifetime {
		margin = lifetime / 2
	}
	refreshAt := expiry.Add(-margin)
	ttl := refreshAt.Sub(now)
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens.Set(k, &cacheEntry{token: *t, refreshAt: refreshAt}, ttl)
}
