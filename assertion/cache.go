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

	"github.com/cqgate/cqgate/internal/cluster"
)

const (
	// DefaultRefreshMargin is how long before expiry a cached token is
	// replaced.
	DefaultRefreshMargin = 60 * time.Second
	// DefaultTokenLifetime is assumed when the server gave no expires_in.
	DefaultTokenLifetime = 5 * time.Minute
	// DefaultMinInterval is the shortest time between two exchanges for
	// one Key (Cerner: "attempts at intervals lower than one minute may
	// result in throttling").
	DefaultMinInterval = time.Minute
	// DefaultFailureHold is how long the first failed exchange for a Key
	// is remembered; it doubles with every further failure.
	DefaultFailureHold = time.Second
	// DefaultExchangeTimeout bounds one exchange (all its attempts)
	// that a Cache runs on behalf of its callers.
	DefaultExchangeTimeout = time.Minute
)

// Key identifies a cached token. Tokens are reused only for requests with
// an equal Key. Key is comparable; the Cache indexes tokens by the Key
// value itself.
type Key struct {
	// Resource is the resource server (FHIR base) the token is for:
	// partners sharing one authorization server each get their own
	// tokens, and one partner refusing a token never affects another's.
	Resource string
	TokenURL string
	ClientID string
	Scope    string
	// Identity names the client identity (key and certificate) the token
	// was obtained with, when a Cache serves several.
	Identity string
	// Context is the digest of the authorization context the token was
	// asserted for ((*B2B).Digest(); empty for none): a token may only be
	// used in the context it was requested for.
	Context string
}

// String encodes k unambiguously, for logs. It holds no secret (Context
// is a digest).
func (k Key) String() string {
	var b strings.Builder
	if k.Resource != "" {
		b.WriteString("resource=")
		b.WriteString(url.QueryEscape(k.Resource))
		b.WriteString("&")
	}
	b.WriteString("token_url=")
	b.WriteString(url.QueryEscape(k.TokenURL))
	b.WriteString("&client_id=")
	b.WriteString(url.QueryEscape(k.ClientID))
	b.WriteString("&scope=")
	b.WriteString(url.QueryEscape(k.Scope))
	if k.Identity != "" {
		b.WriteString("&identity=")
		b.WriteString(url.QueryEscape(k.Identity))
	}
	if k.Context != "" {
		b.WriteString("&context=")
		b.WriteString(url.QueryEscape(k.Context))
	}
	return b.String()
}

// ErrThrottled is matched (errors.Is) by a *ThrottledError.
var ErrThrottled = errors.New("assertion: token exchange throttled")

// ThrottledError is returned by Cache.Token instead of exchanging when the
// token for Key was invalidated (a resource server refused it) less than
// MinInterval after it was obtained. A new exchange is allowed at RetryAt.
type ThrottledError struct {
	Key     Key
	RetryAt time.Time
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("assertion: the token from %s for client %q was refused less than the minimum interval after it was obtained; no new exchange until %s",
		e.Key.TokenURL, e.Key.ClientID, e.RetryAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// ErrTooManyContexts is matched (errors.Is) by a *ContextLimitError.
var ErrTooManyContexts = errors.New("assertion: too many token contexts for one resource server")

// ContextLimitError is returned by Cache.Token instead of exchanging when
// Key.Resource already has CacheConfig.MaxContextsPerResource other keys
// (scopes, purposes of use, client ids) in use: callers cannot multiply
// a partner's token exchanges by varying what they ask for.
type ContextLimitError struct {
	Resource string
	Limit    int
	// Wait is how long until a context of Resource may be freed.
	Wait time.Duration
}

func (e *ContextLimitError) Error() string {
	return fmt.Sprintf("assertion: %s already has %d token contexts (scope, purposes of use, client) in use, the most allowed (tokens.max_contexts_per_organization); "+
		"no token for another context until one is free, in %s at the latest", e.Resource, e.Limit, e.Wait.Round(time.Second))
}

// Is makes errors.Is(err, ErrTooManyContexts) true.
func (e *ContextLimitError) Is(target error) bool { return target == ErrTooManyContexts }

// RetryAfter is when asking again makes sense (Retry-After).
func (e *ContextLimitError) RetryAfter() time.Duration { return e.Wait }

// CacheConfig configures a Cache.
type CacheConfig struct {
	// RefreshMargin: a token is replaced once now ≥ Expiry − RefreshMargin.
	// When it is not shorter than the token's lifetime, half the lifetime
	// is used instead. Zero or negative means DefaultRefreshMargin.
	RefreshMargin time.Duration
	// RefreshAhead: a token used less than RefreshAhead before its
	// refresh point is renewed in the background while callers keep
	// getting it. It is capped at half the time from issue to refresh
	// point. Zero means 2×RefreshMargin; negative turns it off.
	RefreshAhead time.Duration
	// MinInterval is the shortest time between two successful exchanges
	// for one Key. Zero means DefaultMinInterval; negative turns it off.
	MinInterval time.Duration
	// FailureHold is how long a failed exchange for a Key is remembered
	// (callers get the same error, without a new exchange); it doubles
	// with each consecutive failure up to MinInterval (DefaultMinInterval
	// when MinInterval is off). Zero means DefaultFailureHold; negative
	// turns remembering off.
	FailureHold time.Duration
	// MaxContextsPerResource caps the keys with one Key.Resource (a
	// partner's FHIR base) the cache keeps at once; a key beyond it gets
	// a *ContextLimitError. A key's slot is freed once it is idle: no
	// exchange running, its token expired, and MinInterval passed since
	// its last exchange, successful or not. With MinInterval, a partner
	// thus sees at most MaxContextsPerResource exchanges per MinInterval
	// (plus one per key whenever a token expires sooner). Zero or
	// negative means no cap.
	MaxContextsPerResource int
	// ExchangeTimeout bounds each exchange the cache runs, foreground or
	// background, including its retries. Zero or negative means
	// DefaultExchangeTimeout.
	ExchangeTimeout time.Duration
	// DefaultLifetime is the lifetime assumed when the server gave no
	// expires_in. Zero or negative means DefaultTokenLifetime.
	DefaultLifetime time.Duration
	// Clock returns the current time; nil means time.Now. It should be
	// the clock the Exchanger uses.
	Clock func() time.Time
	// Shared, when set, is the tier replicas share (L2; see SharedTier):
	// a key missing here is read there before it is exchanged, each
	// exchange runs under a fleet-wide lock, MinInterval holds across
	// the fleet, and Invalidate reaches every replica. Nil: this
	// replica alone.
	Shared SharedTier
	// LockTTL is how long a fleet-wide exchange lock lasts unless its
	// holder extends it (a crashed holder's lock ends then). Zero or
	// negative means DefaultLockTTL.
	LockTTL time.Duration
	// OnRefreshError, if set, is called with the error of every failed
	// background refresh (nobody else sees it: callers keep getting the
	// still valid token). The error holds no secret.
	OnRefreshError func(Key, error)
}

// CacheStats are counters since the Cache was created.
type CacheStats struct {
	// Hits counts calls answered from the cache.
	Hits int64
	// Misses counts calls that found no usable token.
	Misses int64
	// Exchanges counts calls to the underlying TokenSource, foreground
	// and background.
	Exchanges int64
	// Failures counts exchanges that failed.
	Failures int64
	// Throttled counts calls refused with ErrThrottled.
	Throttled int64
	// Held counts calls answered with a remembered failure.
	Held int64
	// BackgroundRefreshes counts exchanges started ahead of time in the
	// background (also counted in Exchanges).
	BackgroundRefreshes int64
	// SharedHits counts tokens taken from the shared tier instead of
	// exchanging (with CacheConfig.Shared).
	SharedHits int64
	// LocalFallbacks counts exchanges made without the fleet because the
	// shared tier failed.
	LocalFallbacks int64
}

// Cache keeps access tokens until shortly before they expire, and decides
// when a new one may be obtained. Per Key:
//
//   - Sharing: concurrent callers that find no usable token share one
//     exchange. It runs under context.WithoutCancel(ctx), bounded by
//     ExchangeTimeout, so one caller giving up does not fail the others;
//     each caller still returns as soon as its own ctx is done.
//   - Refresh ahead: a caller that gets a token less than RefreshAhead
//     before its refresh point starts one background exchange (unless
//     one is running, a failure is being held, or MinInterval forbids
//     it), so busy tokens are renewed before anyone has to wait.
//   - Minimum interval: a successful exchange is followed by another only
//     MinInterval later (measured from the start of the exchange).
//     Natural refreshes respect it without failing anyone: the refresh
//     point of a token is moved to MinInterval after its exchange when
//     that is later, but never past the token's expiry. So a server that
//     issues tokens shorter than MinInterval (plus margin) gets one
//     exchange per token lifetime, at expiry: an expired token is always
//     replaced. A token that was invalidated (a resource server answered
//     401) is different: that may be a storm, so within MinInterval the
//     caller gets a *ThrottledError (errors.Is ErrThrottled) saying when
//     an exchange is allowed again, and no exchange happens.
//   - Failure hold: a failed exchange is remembered for FailureHold,
//     doubling with every consecutive failure up to MinInterval; in that
//     time callers that need a new token get the same error without a new
//     exchange, so a failing token endpoint is not hammered. ErrNoKey
//     (nothing was sent) is not held. Other keys are unaffected; a
//     success clears the count.
//
// A Cache is safe for concurrent use.
type Cache struct {
	margin, ahead, minInterval time.Duration
	hold, timeout, lifetime    time.Duration
	clock                      func() time.Time
	onRefreshError             func(Key, error)
	maxContexts                int
	shared                     SharedTier
	lockTTL                    time.Duration
	stopShared                 func()

	mu        sync.RWMutex
	states    map[Key]*keyState
	contexts  map[string]int // keys in states per Key.Resource, when capped
	lastSweep time.Time      // guarded by mu

	hits, misses, exchanges, failures, throttled, held, background atomic.Int64
	sharedHits, localFallbacks                                     atomic.Int64
}

// keyState is everything the Cache knows about one Key.
type keyState struct {
	// entry is the cached token; read without the lock on the hit path.
	entry atomic.Pointer[cacheEntry]

	mu          sync.Mutex
	flight      *flight   // the exchange in progress, if any
	lastSuccess time.Time // start of the last successful exchange
	lastStart   time.Time // start of the last exchange
	invalidated bool      // the token was dropped by Invalidate since
	failures    int       // consecutive failed exchanges
	failUntil   time.Time // the failure is held until then
	failErr     error
	// removed says the state was swept from the map: look the key up
	// again. Set under the locks; read without them by a Slot.
	removed atomic.Bool
	// ref is the key's name in the shared tier (cluster.Ref), when
	// there is one: invalidations name keys by it.
	ref string
}

type cacheEntry struct {
	token     Token
	expiry    time.Time // when the token expires
	refreshAt time.Time // served until then
	aheadAt   time.Time // background refresh from then on
	// raw is the token as the shared tier holds it, when there is one:
	// an invalidation names the very value refused.
	raw []byte
	// pre is token's prebuilt values (token.pre points here).
	pre prebuilt
}

// flight is one exchange; done is closed when tok or err is set.
type flight struct {
	done chan struct{}
	tok  *Token
	err  error
}

// sweepEvery is how often idle keys are dropped from the map.
const sweepEvery = time.Minute

// NewCache returns an empty Cache.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{
		margin:         cfg.RefreshMargin,
		ahead:          cfg.RefreshAhead,
		minInterval:    cfg.MinInterval,
		hold:           cfg.FailureHold,
		timeout:        cfg.ExchangeTimeout,
		lifetime:       cfg.DefaultLifetime,
		clock:          cfg.Clock,
		onRefreshError: cfg.OnRefreshError,
		maxContexts:    max(cfg.MaxContextsPerResource, 0),
		states:         make(map[Key]*keyState),
		contexts:       make(map[string]int),
		shared:         cfg.Shared,
		lockTTL:        cfg.LockTTL,
	}
	if c.lockTTL <= 0 {
		c.lockTTL = DefaultLockTTL
	}
	if c.margin <= 0 {
		c.margin = DefaultRefreshMargin
	}
	switch {
	case c.ahead == 0:
		c.ahead = 2 * c.margin
	case c.ahead < 0:
		c.ahead = 0
	}
	switch {
	case c.minInterval == 0:
		c.minInterval = DefaultMinInterval
	case c.minInterval < 0:
		c.minInterval = 0
	}
	switch {
	case c.hold == 0:
		c.hold = DefaultFailureHold
	case c.hold < 0:
		c.hold = 0
	}
	if c.timeout <= 0 {
		c.timeout = DefaultExchangeTimeout
	}
	if c.lifetime <= 0 {
		c.lifetime = DefaultTokenLifetime
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.shared != nil {
		c.stopShared = c.shared.OnInvalidation(c.onInvalidation)
	}
	return c
}

// state returns the state of key, creating it if need be, unless that
// would exceed MaxContextsPerResource.
func (c *Cache) state(key Key) (*keyState, error) {
	c.mu.RLock()
	st := c.states[key]
	c.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.states[key]; st != nil {
		return st, nil
	}
	if c.maxContexts > 0 {
		if c.contexts[key.Resource] >= c.maxContexts {
			if wait := c.reclaim(key.Resource); wait > 0 {
				return nil, &ContextLimitError{Resource: key.Resource, Limit: c.maxContexts, Wait: wait}
			}
		}
		c.contexts[key.Resource]++
	}
	st = &keyState{}
	if c.shared != nil {
		st.ref = cluster.Ref(key.String())
	}
	c.states[key] = st
	return st, nil
}

// reclaim drops resource's idle keys, under c.mu. It returns 0 when a
// slot is free now, else how long until one may be.
func (c *Cache) reclaim(resource string) time.Duration {
	now := c.clock()
	wait := time.Duration(-1)
	for k, st := range c.states {
		if k.Resource != resource {
			continue
		}
		st.mu.Lock()
		if st.idle(now, c.minInterval) {
			c.remove(k, st)
		} else if d := st.idleAt(now, c.minInterval).Sub(now); wait < 0 || d < wait {
			wait = d
		}
		st.mu.Unlock()
	}
	if c.contexts[resource] < c.maxContexts {
		return 0
	}
	return max(wait, time.Second)
}

// remove forgets key, under c.mu and st.mu.
func (c *Cache) remove(key Key, st *keyState) {
	st.removed.Store(true)
	delete(c.states, key)
	if c.maxContexts > 0 {
		if c.contexts[key.Resource]--; c.contexts[key.Resource] <= 0 {
			delete(c.contexts, key.Resource)
		}
	}
}

// Token returns the cached token for key while it is usable, and
// otherwise obtains one from src, as the Cache's rules say (see Cache).
// The returned Token may be shared with other callers: do not modify
// it. The error is src's, a remembered failure of src, a
// *ThrottledError, or the caller's context ending.
func (c *Cache) Token(ctx context.Context, key Key, src TokenSource) (*Token, error) {
	tok, _, err := c.TokenHit(ctx, key, src)
	return tok, err
}

// TokenHit is Token that also reports whether the call was a hit: a
// usable token served from the cache at once, without an exchange, a
// wait for one (another caller's included) or a read of the shared
// tier; a refresh ahead that the call starts runs in the background and
// leaves it a hit. A call that gets no token (a remembered failure, a
// *ThrottledError) is never one. CacheStats.Hits counts the same calls.
func (c *Cache) TokenHit(ctx context.Context, key Key, src TokenSource) (*Token, bool, error) {
	st, err := c.state(key)
	if err != nil {
		return nil, false, err
	}
	return c.token(ctx, st, key, nil, src)
}

// Slot is a Key's place in a Cache, for a caller that asks for the same
// Key on every request (the proxy keeps one per resolved tenant):
// TokenAt with it is Token without the map lookup, which hashes and
// compares every string of the Key. It follows the key when the Cache
// sweeps it and makes it anew. It keeps what gives the Key, not the
// Key, which is built again only then: 32 bytes and three pointers per
// organization for the garbage collector to follow, not 112 and eight.
type Slot struct {
	c   *Cache
	key Keyed
	st  atomic.Pointer[keyState]
}

// Keyed gives the Key of the tokens it is sent with; it must give the
// same Key every time (tenant.Tenant, which is never modified, does).
type Keyed interface {
	TokenKey() Key
}

// Slot returns a Slot for key's Key in c; it finds the key's place on
// first use.
func (c *Cache) Slot(key Keyed) *Slot { return &Slot{c: c, key: key} }

// Key is the Key s is for.
func (s *Slot) Key() Key { return s.key.TokenKey() }

// TokenAt is Token for s's Key (c's Token when s is another Cache's).
func (c *Cache) TokenAt(ctx context.Context, s *Slot, src TokenSource) (*Token, error) {
	tok, _, err := c.TokenAtHit(ctx, s, src)
	return tok, err
}

// TokenAtHit is TokenHit for s's Key (c's TokenHit when s is another
// Cache's).
func (c *Cache) TokenAtHit(ctx context.Context, s *Slot, src TokenSource) (*Token, bool, error) {
	if s.c != c {
		return c.TokenHit(ctx, s.Key(), src)
	}
	st := s.st.Load()
	if st == nil || st.removed.Load() {
		var err error
		if st, err = c.state(s.Key()); err != nil {
			return nil, false, err
		}
		s.st.Store(st)
	}
	return c.token(ctx, st, Key{}, s.key, src)
}

// keyOf is keyed's Key when keyed is set, else key.
func keyOf(key Key, keyed Keyed) Key {
	if keyed != nil {
		return keyed.TokenKey()
	}
	return key
}

// token is TokenHit on key's state st.
// The key is key, or keyed's when keyed is set (a Slot's): then it is
// built only when needed, not on a hit.
func (c *Cache) token(ctx context.Context, st *keyState, key Key, keyed Keyed, src TokenSource) (*Token, bool, error) {
	now := c.clock()
	if e := st.entry.Load(); e != nil && now.Before(e.refreshAt) {
		c.hits.Add(1)
		if !now.Before(e.aheadAt) {
			c.refreshAhead(ctx, st, keyOf(key, keyed), src, e)
		}
		// The entry is never modified once stored, so the token in it
		// is handed out as it is, without a copy.
		return &e.token, true, nil
	}
	key = keyOf(key, keyed)
	c.misses.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("assertion: waiting for token: %w", err)
	}
	for {
		t, f, err := c.join(ctx, st, key, src)
		switch {
		case err != nil:
			return nil, false, err
		case t != nil:
			return t, false, nil
		case f == nil: // st was swept meanwhile
			if st, err = c.state(key); err != nil {
				return nil, false, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, false, fmt.Errorf("assertion: waiting for token: %w", ctx.Err())
		case <-f.done:
			if f.err != nil {
				return nil, false, f.err
			}
			t := *f.tok
			return &t, false, nil
		}
	}
}

// join decides, under st's lock, what a caller without a usable token
// gets: a token stored meanwhile, the running exchange, a new exchange,
// or an error. All three results are nil when st was swept.
func (c *Cache) join(ctx context.Context, st *keyState, key Key, src TokenSource) (*Token, *flight, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.removed.Load() {
		return nil, nil, nil
	}
	now := c.clock()
	if e := st.entry.Load(); e != nil && now.Before(e.refreshAt) {
		return &e.token, nil, nil
	}
	if st.flight != nil {
		return nil, st.flight, nil
	}
	if now.Before(st.failUntil) {
		c.held.Add(1)
		return nil, nil, st.failErr
	}
	if st.invalidated && c.minInterval > 0 {
		if next := st.lastSuccess.Add(c.minInterval); now.Before(next) {
			c.throttled.Add(1)
			return nil, nil, &ThrottledError{Key: key, RetryAt: next}
		}
	}
	return nil, c.start(ctx, st, key, src, now, false), nil
}

// refreshAhead starts a background exchange for a token in its refresh
// window, unless something forbids it.
func (c *Cache) refreshAhead(ctx context.Context, st *keyState, key Key, src TokenSource, e *cacheEntry) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := c.clock()
	if st.removed.Load() || st.flight != nil || st.entry.Load() != e || now.Before(st.failUntil) ||
		(c.minInterval > 0 && now.Before(st.lastSuccess.Add(c.minInterval))) {
		return
	}
	c.start(ctx, st, key, src, now, true)
}

// start runs an exchange for key in a new goroutine. st.mu is held.
func (c *Cache) start(ctx context.Context, st *keyState, key Key, src TokenSource, now time.Time, background bool) *flight {
	f := &flight{done: make(chan struct{})}
	st.flight = f
	st.lastStart = now
	if c.shared == nil { // with a shared tier, only exchanges that happen are counted
		c.exchanges.Add(1)
	}
	if background {
		c.background.Add(1)
	}
	// A background refresh replaces the token cached now: from the
	// shared tier it takes only another (newer) one.
	var replacing []byte
	if e := st.entry.Load(); background && e != nil {
		replacing = e.raw
	}
	go c.run(context.WithoutCancel(ctx), st, key, src, f, now, background, st.invalidated, replacing)
	return f
}

func (c *Cache) run(ctx context.Context, st *keyState, key Key, src TokenSource, f *flight, started time.Time, background, invalidated bool, replacing []byte) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	o, err := c.obtain(ctx, key, src, started, replacing, invalidated)
	t := o.tok
	if err == nil && (t == nil || t.AccessToken == "") {
		err = errors.New("assertion: token source returned no access token")
	}

	st.mu.Lock()
	now := c.clock()
	if err == nil {
		tok := *t
		// Built once here, before the token is shared: every request
		// sent with it uses these values (Token.Authorization, and
		// Token.Covers's parsed grant). The access token is the same
		// bytes as the Authorization value: a request reading both (to
		// send one, to scrub the other from answers) reads one string.
		// The values are kept in the cache entry itself (one allocation
		// less per token, one pointer less to follow per request).
		bearer := "Bearer " + tok.AccessToken
		tok.AccessToken = bearer[len("Bearer "):]
		e := c.entry(&tok, o.started, now)
		if e != nil {
			e.pre.authorization[0] = bearer
			e.token.pre = &e.pre
			tok.pre = &e.pre
			e.raw = o.raw
		} else {
			tok.prebuild()
		}
		f.tok = &tok
		st.lastSuccess = o.started
		st.invalidated = false
		st.failures, st.failUntil, st.failErr = 0, time.Time{}, nil
		st.entry.Store(e)
	} else if errors.Is(err, ErrThrottled) { // the fleet's minimum interval: not a failure
		f.err = err
	} else {
		c.failures.Add(1)
		f.err = err
		if c.hold > 0 && !errors.Is(err, ErrNoKey) {
			st.failures++
			st.failUntil = now.Add(c.holdFor(st.failures))
			st.failErr = err
		}
	}
	st.flight = nil
	st.mu.Unlock()
	close(f.done)

	if err != nil && background && c.onRefreshError != nil {
		c.onRefreshError(key, err)
	}
	c.sweep(now)
}

// holdFor is how long the n-th consecutive failure is held.
func (c *Cache) holdFor(n int) time.Duration {
	limit := c.minInterval
	if limit <= 0 {
		limit = DefaultMinInterval
	}
	d := c.hold
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, max(limit, c.hold))
}

// entry computes when t, obtained by an exchange started at started and
// stored at now, is refreshed. It returns nil for a token that is already
// due, which is handed to the callers waiting for it but not cached.
func (c *Cache) entry(t *Token, started, now time.Time) *cacheEntry {
	// Times run from the exchange, so that every replica that reads the
	// token from the shared tier computes the same expiry and refresh
	// point as the one that exchanged it.
	from := started
	if from.IsZero() {
		from = now
	}
	expiry := t.Expiry
	if expiry.IsZero() {
		expiry = from.Add(c.lifetime) // no expires_in: the assumed lifetime
	}
	lifetime := t.ExpiresIn
	if lifetime <= 0 {
		lifetime = expiry.Sub(from)
	}
	margin := c.margin
	if margin >= lifetime {
		margin = lifetime / 2
	}
	refreshAt := expiry.Add(-margin)
	if c.minInterval > 0 {
		// Not sooner than MinInterval after this exchange, but never
		// past expiry.
		if next := started.Add(c.minInterval); next.After(refreshAt) {
			refreshAt = minTime(next, expiry)
		}
	}
	if !refreshAt.After(now) {
		return nil
	}
	aheadAt := refreshAt
	if c.ahead > 0 {
		aheadAt = refreshAt.Add(-min(c.ahead, refreshAt.Sub(now)/2))
	}
	return &cacheEntry{token: *t, expiry: expiry, refreshAt: refreshAt, aheadAt: aheadAt}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sweep drops keys that hold nothing worth keeping, at most once per
// sweepEvery, so a Cache serving many B2B contexts does not grow without
// bound.
func (c *Cache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastSweep) < sweepEvery {
		return
	}
	c.lastSweep = now
	for k, st := range c.states {
		st.mu.Lock()
		if st.idle(now, c.minInterval) {
			c.remove(k, st)
		}
		st.mu.Unlock()
	}
}

// idle reports whether st can be forgotten: no exchange running, no
// usable token, no failure held and no minimum interval running since
// the last exchange, successful or not.
func (st *keyState) idle(now time.Time, minInterval time.Duration) bool {
	return st.flight == nil && !now.Before(st.idleAt(now, minInterval))
}

// idleAt is when st becomes idle if nothing else happens (a running
// exchange counts as ending MinInterval from now).
func (st *keyState) idleAt(now time.Time, minInterval time.Duration) time.Time {
	at := st.failUntil
	if e := st.entry.Load(); e != nil && e.expiry.After(at) {
		at = e.expiry
	}
	if minInterval > 0 {
		last := st.lastStart
		if st.flight != nil {
			last = now
		}
		if t := last.Add(minInterval); t.After(at) {
			at = t
		}
	}
	return at
}

// Invalidate drops the cached token for key if its AccessToken is stale,
// typically one a resource server has just rejected with 401. A cached
// token that differs from stale was already obtained to replace it and is
// kept, so a burst of 401s for one old token causes at most one exchange;
// within MinInterval of the exchange that obtained stale, none (the
// callers get a *ThrottledError).
func (c *Cache) Invalidate(key Key, stale string) {
	c.mu.RLock()
	st := c.states[key]
	c.mu.RUnlock()
	if st == nil || stale == "" {
		return
	}
	e := st.entry.Load()
	if e == nil || subtle.ConstantTimeCompare([]byte(e.token.AccessToken), []byte(stale)) != 1 {
		return
	}
	if c.shared != nil && e.raw != nil {
		// First out of the shared tier, then out of this replica: while
		// the refused token is still in the tier, an L1 miss here would
		// read it back from there (and hand it to the retry of the very
		// request it was refused for). Requests meanwhile still use it
		// and are refused once more, as they would have been anyway.
		c.invalidateShared(key, e.raw)
	}
	st.mu.Lock()
	if st.entry.CompareAndSwap(e, nil) {
		st.invalidated = true
	}
	st.mu.Unlock()
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
	return CacheStats{
		Hits:                c.hits.Load(),
		Misses:              c.misses.Load(),
		Exchanges:           c.exchanges.Load(),
		Failures:            c.failures.Load(),
		Throttled:           c.throttled.Load(),
		Held:                c.held.Load(),
		BackgroundRefreshes: c.background.Load(),
		SharedHits:          c.sharedHits.Load(),
		LocalFallbacks:      c.localFallbacks.Load(),
	}
}
