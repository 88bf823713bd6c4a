package cluster

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// TokenStore is the shared token tier (L2) as a token cache uses it.
// Values are opaque bytes: the cache decides their encoding. *Cluster is
// one.
type TokenStore interface {
	// Load returns key's value and the expiry it was stored with; ok is
	// false when Redis has none.
	Load(ctx context.Context, key string) (value []byte, expiry time.Time, ok bool, err error)
	// Store keeps value for key until shortly before expiry and wakes
	// the replicas waiting for it.
	Store(ctx context.Context, key string, value []byte, expiry time.Time) error
	// Invalidate removes key's value if it is still value, and tells
	// every replica that value is no longer good.
	Invalidate(ctx context.Context, key string, value []byte) (removed bool, err error)
}

var _ TokenStore = (*Cluster)(nil)

// storeScript sets a sealed value with its expiry and announces it.
var storeScript = redis.NewScript(`
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
redis.call("PUBLISH", ARGV[3], ARGV[4])
return 1
`)

// invalidateScript deletes a value only if it is still the given one
// (compare-and-delete) and then marks the running minimum interval
// refused (KEYS[2], keeping its expiry), then announces the invalidation
// either way.
var invalidateScript = redis.NewScript(`
local removed = 0
if ARGV[1] ~= "" and redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
  redis.call("SET", KEYS[2], "r", "XX", "KEEPTTL")
  removed = 1
end
redis.call("PUBLISH", ARGV[2], ARGV[3])
return removed
`)

// Load returns key's value from Redis. A value that does not open (a key
// rotated out, tampering) is an error (*StoreError wrapping
// ErrUnknownKey, ErrTampered or ErrNotSealed), never returned.
func (c *Cluster) Load(ctx context.Context, key string) ([]byte, time.Time, bool, error) {
	name := c.tokenName(Ref(key))
	octx, cancel := c.opContext(ctx)
	defer cancel()
	sealed, err := c.rdb.Get(octx, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, c.fail(OpLoad, err)
	}
	value, expiry, err := c.openToken(name, sealed)
	if err != nil {
		return nil, time.Time{}, false, c.fail(OpLoad, err)
	}
	return value, expiry, true, nil
}

// Store keeps value for key in Redis, sealed, until the store margin
// before expiry; a value with less time left than that is not stored.
// Replicas waiting for key (Wait) are woken.
func (c *Cluster) Store(ctx context.Context, key string, value []byte, expiry time.Time) error {
	ttl := expiry.Sub(c.now()) - c.margin
	if ttl < time.Millisecond {
		return nil
	}
	ref := Ref(key)
	name := c.tokenName(ref)
	plain := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(plain, uint64(expiry.UnixMilli()))
	sealed, err := c.keys.Seal(name, append(plain, value...))
	if err != nil {
		return c.fail(OpStore, err)
	}
	ev, err := c.event(eventStored, ref, nil)
	if err != nil {
		return c.fail(OpStore, err)
	}
	octx, cancel := c.opContext(ctx)
	defer cancel()
	if err := storeScript.Run(octx, c.rdb, []string{name}, sealed, ttl.Milliseconds(), c.channel, ev).Err(); err != nil {
		return c.fail(OpStore, err)
	}
	return nil
}

// Invalidate removes key's value from Redis if it is still value
// (compare-and-delete: a newer token another replica stored stays),
// marking the running minimum interval refused (MinInterval's
// Turn.Refused), and publishes an Invalidation for value either way, so
// every replica drops its own copy of it.
func (c *Cluster) Invalidate(ctx context.Context, key string, value []byte) (bool, error) {
	ref := Ref(key)
	name := c.tokenName(ref)
	octx, cancel := c.opContext(ctx)
	defer cancel()
	sealed, err := c.rdb.Get(octx, name).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, c.fail(OpInvalidate, err)
	}
	var same []byte
	if err == nil {
		if got, _, err := c.openToken(name, sealed); err == nil && subtle.ConstantTimeCompare(got, value) == 1 {
			same = sealed
		}
	}
	ev, err := c.event(eventInvalidated, ref, value)
	if err != nil {
		return false, c.fail(OpInvalidate, err)
	}
	n, err := invalidateScript.Run(octx, c.rdb, []string{name, c.intervalName(ref)}, same, c.channel, ev).Int()
	if err != nil {
		return false, c.fail(OpInvalidate, err)
	}
	return n == 1, nil
}

func (c *Cluster) openToken(name string, sealed []byte) ([]byte, time.Time, error) {
	plain, err := c.keys.Open(name, sealed)
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(plain) < 8 {
		return nil, time.Time{}, ErrNotSealed
	}
	expiry := time.UnixMilli(int64(binary.BigEndian.Uint64(plain)))
	return plain[8:], expiry, nil
}
