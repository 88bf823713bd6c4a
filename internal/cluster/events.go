package cluster

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/redis/go-redis/v9"
)

// Kinds of event on the channel.
const (
	eventStored      = 's' // a value was stored for a ref
	eventReleased    = 'r' // a lock for a ref was released
	eventInvalidated = 'i' // a value for a ref was invalidated
)

// refLen is the length of a Ref: hex SHA-256.
const refLen = 2 * sha256.Size

// Invalidation says that a replica found a token no longer good (its
// partner refused it) and removed it from Redis. Every replica receives
// it, the sender included.
type Invalidation struct {
	// Ref is the Ref of the cache key.
	Ref string

	digest [sha256.Size]byte
}

// Matches reports whether the invalidation is about value for key: a
// replica drops its own copy of key only when it holds the very value
// that was refused, not a newer one.
func (inv Invalidation) Matches(key string, value []byte) bool {
	d := sha256.Sum256(value)
	return inv.Ref == Ref(key) && subtle.ConstantTimeCompare(d[:], inv.digest[:]) == 1
}

// OnInvalidation calls fn for every invalidation any replica publishes,
// until stop is called. fn runs on the goroutine that receives
// notifications and must return quickly. Invalidations published while
// this replica's subscription is down (Redis restarting) are lost; the
// token they name is then refused once more by its partner and
// invalidated again.
func (c *Cluster) OnInvalidation(fn func(Invalidation)) (stop func()) {
	p := &fn
	c.mu.Lock()
	c.handlers[p] = struct{}{}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.handlers, p)
		c.mu.Unlock()
	}
}

// event seals an event message. Messages are sealed so that nobody who
// can publish on the channel but lacks the key can make replicas drop
// tokens, and so that the digest of a refused token is not readable.
func (c *Cluster) event(kind byte, ref string, value []byte) ([]byte, error) {
	msg := make([]byte, 0, 1+refLen+sha256.Size)
	msg = append(append(msg, kind), ref...)
	if kind == eventInvalidated {
		d := sha256.Sum256(value)
		msg = append(msg, d[:]...)
	}
	return c.keys.Seal(c.channel, msg)
}

func (c *Cluster) dispatch(msgs <-chan *redis.Message) {
	defer close(c.done)
	for m := range msgs {
		msg, err := c.keys.Open(c.channel, []byte(m.Payload))
		if err == nil && len(msg) < 1+refLen {
			err = ErrNotSealed
		}
		if err != nil {
			c.obs.StoreError(OpEvent, err)
			continue
		}
		kind, ref := msg[0], string(msg[1:1+refLen])
		if _, err := hex.DecodeString(ref); err != nil {
			continue
		}
		c.wake(ref)
		if kind != eventInvalidated || len(msg) != 1+refLen+sha256.Size {
			continue
		}
		inv := Invalidation{Ref: ref}
		copy(inv.digest[:], msg[1+refLen:])
		c.mu.Lock()
		handlers := make([]func(Invalidation), 0, len(c.handlers))
		for h := range c.handlers {
			handlers = append(handlers, *h)
		}
		c.mu.Unlock()
		for _, h := range handlers {
			h(inv)
		}
	}
}

// addWaiter registers a channel that is signalled on the next event for
// ref.
func (c *Cluster) addWaiter(ref string) chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiters[ref] == nil {
		c.waiters[ref] = map[chan struct{}]struct{}{}
	}
	c.waiters[ref][ch] = struct{}{}
	return ch
}

func (c *Cluster) removeWaiter(ref string, ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.waiters[ref], ch)
	if len(c.waiters[ref]) == 0 {
		delete(c.waiters, ref)
	}
}

func (c *Cluster) wake(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.waiters[ref] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
