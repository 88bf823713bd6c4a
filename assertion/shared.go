package assertion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cqgate/cqgate/internal/cluster"
)

// DefaultLockTTL is how long a replica holds the fleet-wide lock for a
// token context before it must extend it (it does, every third of it,
// while its exchange runs). A replica that crashes mid-exchange blocks
// the others for at most this long.
const DefaultLockTTL = 10 * time.Second

// SharedTier is the token tier replicas share (L2), and their fleet-wide
// coordination; *cluster.Cluster is one. With a SharedTier, a Cache that
// has no usable token (L1 miss) reads the shared tier before exchanging,
// and exchanges under a fleet-wide lock, so that the fleet makes one
// exchange per token context. Any error of the tier means: carry on
// alone (exchange locally; the Cache's own single flight still makes it
// at most one per replica per Key).
type SharedTier interface {
	Load(ctx context.Context, key string) (value []byte, expiry time.Time, ok bool, err error)
	Store(ctx context.Context, key string, value []byte, expiry time.Time) error
	Invalidate(ctx context.Context, key string, value []byte) (removed bool, err error)
	Lock(ctx context.Context, key string, ttl time.Duration) (lease *cluster.Lease, acquired bool, err error)
	Wait(ctx context.Context, key string) error
	MinInterval(ctx context.Context, key string, d time.Duration) (cluster.Turn, error)
	OnInvalidation(fn func(cluster.Invalidation)) (stop func())
}

var _ SharedTier = (*cluster.Cluster)(nil)

// sharedToken is a token as the shared tier keeps it (sealed by the
// tier). Obtained is when the exchange that got it started, so that
// every replica computes the same refresh point and minimum interval.
type sharedToken struct {
	AccessToken string `json:"a"`
	TokenType   string `json:"t,omitempty"`
	Scope       string `json:"s,omitempty"`
	ExpiresIn   int64  `json:"i,omitempty"` // milliseconds
	Expiry      int64  `json:"x,omitempty"` // Unix milliseconds
	Obtained    int64  `json:"o"`           // Unix milliseconds
}

func encodeShared(t *Token, obtained time.Time) []byte {
	st := sharedToken{AccessToken: t.AccessToken, TokenType: t.TokenType, Scope: t.Scope,
		ExpiresIn: t.ExpiresIn.Milliseconds(), Obtained: obtained.UnixMilli()}
	if !t.Expiry.IsZero() {
		st.Expiry = t.Expiry.UnixMilli()
	}
	b, _ := json.Marshal(st) // a struct of strings and integers always encodes
	return b
}

func decodeShared(b []byte) (*Token, time.Time, error) {
	var st sharedToken
	if err := json.Unmarshal(b, &st); err != nil || st.AccessToken == "" {
		return nil, time.Time{}, errors.New("assertion: the shared tier holds a value that is not a token")
	}
	t := &Token{AccessToken: st.AccessToken, TokenType: st.TokenType, Scope: st.Scope,
		ExpiresIn: time.Duration(st.ExpiresIn) * time.Millisecond}
	if st.Expiry != 0 {
		t.Expiry = time.UnixMilli(st.Expiry)
	}
	return t, time.UnixMilli(st.Obtained), nil
}

// obtained is what an exchange, or the shared tier, gave a flight.
type obtained struct {
	tok     *Token
	raw     []byte    // the shared encoding; nil without a shared tier
	started time.Time // when the exchange that got tok started
}

// obtain gets a token for key: from src without a shared tier;
// otherwise from the shared tier (not replacing, the token a background
// refresh replaces), or by one exchange fleet-wide, or, when the tier
// fails, by a local exchange.
func (c *Cache) obtain(ctx context.Context, key Key, src TokenSource, started time.Time, replacing []byte, invalidated bool) (obtained, error) {
	if c.shared == nil {
		t, err := src.Token(ctx)
		return obtained{tok: t, started: started}, err
	}
	name := key.String()
	for {
		if o, ok, err := c.loadShared(ctx, name, replacing); err != nil {
			return c.exchangeLocally(ctx, name, src)
		} else if ok {
			return o, nil
		}
		lease, acquired, err := c.shared.Lock(ctx, name, c.lockTTL)
		if err != nil {
			return c.exchangeLocally(ctx, name, src)
		}
		if acquired {
			return c.exchangeLocked(ctx, key, name, src, lease, replacing, invalidated)
		}
		if err := c.shared.Wait(ctx, name); err != nil {
			if ctx.Err() != nil {
				return obtained{}, fmt.Errorf("assertion: waiting for another replica's token exchange: %w", ctx.Err())
			}
			return c.exchangeLocally(ctx, name, src)
		}
	}
}

// loadShared reads name's token from the shared tier. ok is false when
// there is none worth taking: one already due for refresh, or the very
// token a background refresh is replacing (replacing, its shared
// encoding), which every replica would otherwise take back.
func (c *Cache) loadShared(ctx context.Context, name string, replacing []byte) (obtained, bool, error) {
	raw, _, ok, err := c.shared.Load(ctx, name)
	if err != nil || !ok {
		return obtained{}, false, err
	}
	t, started, err := decodeShared(raw)
	if err != nil {
		return obtained{}, false, nil
	}
	if replacing != nil && bytes.Equal(raw, replacing) {
		return obtained{}, false, nil
	}
	if c.entry(t, started, c.clock()) == nil {
		return obtained{}, false, nil
	}
	c.sharedHits.Add(1)
	return obtained{tok: t, raw: raw, started: started}, true, nil
}

// exchangeLocked runs the fleet's one exchange for name while holding
// lease, and stores its token in the shared tier.
func (c *Cache) exchangeLocked(ctx context.Context, key Key, name string, src TokenSource, lease *cluster.Lease, replacing []byte, invalidated bool) (obtained, error) {
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }() // ErrLeaseLost: another replica took over; nothing to undo
	// A holder may have stored between our Load and Lock.
	if o, ok, err := c.loadShared(ctx, name, replacing); err == nil && ok {
		return o, nil
	}
	if c.minInterval > 0 {
		// The fleet's minimum interval: a token refused by its resource
		// server is replaced only MinInterval after any replica's last
		// exchange for it, whichever replica asks (the refusal marks the
		// fleet's interval: turn.Refused, also on a replica that never
		// held the token). The marker is set by every exchange.
		turn, err := c.shared.MinInterval(ctx, name, c.minInterval)
		if err == nil && !turn.Allowed && (invalidated || turn.Refused) {
			c.throttled.Add(1)
			return obtained{}, &ThrottledError{Key: key, RetryAt: c.clock().Add(turn.RetryAfter)}
		}
	}
	stop := c.keepLock(ctx, lease)
	o, err := c.exchange(ctx, src)
	stop()
	if err == nil {
		_ = c.shared.Store(ctx, name, o.raw, o.tok.expiryOr(o.started.Add(c.lifetime)))
	}
	return o, err
}

// exchangeLocally exchanges without the fleet (the shared tier failed),
// and offers the token to the tier for when it is back.
func (c *Cache) exchangeLocally(ctx context.Context, name string, src TokenSource) (obtained, error) {
	c.localFallbacks.Add(1)
	o, err := c.exchange(ctx, src)
	if err == nil {
		_ = c.shared.Store(ctx, name, o.raw, o.tok.expiryOr(o.started.Add(c.lifetime)))
	}
	return o, err
}

func (c *Cache) exchange(ctx context.Context, src TokenSource) (obtained, error) {
	c.exchanges.Add(1)
	started := c.clock()
	t, err := src.Token(ctx)
	if err != nil || t == nil || t.AccessToken == "" {
		return obtained{tok: t}, err
	}
	return obtained{tok: t, raw: encodeShared(t, started), started: started}, nil
}

// keepLock extends lease every third of the lock TTL until stop is
// called, so a slow exchange keeps its lock; a lost lease is not
// extended (another replica may exchange too: one extra exchange).
func (c *Cache) keepLock(ctx context.Context, lease *cluster.Lease) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(c.lockTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := lease.Extend(ctx, c.lockTTL); errors.Is(err, cluster.ErrLeaseLost) {
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// expiryOr is t's expiry, or def when the server gave none.
func (t *Token) expiryOr(def time.Time) time.Time {
	if t.Expiry.IsZero() {
		return def
	}
	return t.Expiry
}

// onInvalidation drops this replica's copy of a token another replica
// (or this one) found refused, if it is that very token.
func (c *Cache) onInvalidation(inv cluster.Invalidation) {
	type hit struct {
		key Key
		st  *keyState
	}
	var hits []hit
	c.mu.RLock()
	for k, st := range c.states {
		if st.ref == inv.Ref {
			hits = append(hits, hit{k, st})
		}
	}
	c.mu.RUnlock()
	for _, h := range hits {
		h.st.mu.Lock()
		if e := h.st.entry.Load(); e != nil && e.raw != nil && inv.Matches(h.key.String(), e.raw) {
			h.st.entry.Store(nil)
			h.st.invalidated = true
		}
		h.st.mu.Unlock()
	}
}

// invalidateShared removes raw, refused by its resource server, from the
// shared tier and tells every replica to drop it. It runs under the
// tier's operation timeout; a failure (counted by the tier) costs at
// most one more refusal on a replica that still holds the token.
func (c *Cache) invalidateShared(key Key, raw []byte) {
	_, _ = c.shared.Invalidate(context.Background(), key.String(), raw)
}

// Close stops listening for the shared tier's invalidations. A Cache
// without a shared tier needs no Close.
func (c *Cache) Close() {
	if c.stopShared != nil {
		c.stopShared()
	}
}
