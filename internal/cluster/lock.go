package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseLost is returned by Lease.Extend and Lease.Release when the
// lock is no longer the lease's: it expired (and perhaps another replica
// holds it now).
var ErrLeaseLost = errors.New("cluster: lock lost: it expired before it was released or extended")

// releaseScript deletes the lock only if the caller still owns it, and
// announces that it is free.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
  redis.call("PUBLISH", ARGV[2], ARGV[3])
  return 1
end
return 0
`)

// extendScript sets a new expiry only if the caller still owns the lock.
var extendScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// intervalScript sets a marker unless one is there, and otherwise says
// how long the one there has left, and whether Invalidate marked it
// refused ("r").
var intervalScript = redis.NewScript(`
if redis.call("SET", KEYS[1], "1", "NX", "PX", ARGV[1]) then
  return {0, 0}
end
local refused = 0
if redis.call("GET", KEYS[1]) == "r" then
  refused = 1
end
local left = redis.call("PTTL", KEYS[1])
if left == -1 then
  return {tonumber(ARGV[1]), refused}
end
if left < 1 then
  return {1, refused}
end
return {left, refused}
`)

// Lease is a held lock. Only its holder can release or extend it: each
// lease has its own random owner token.
type Lease struct {
	c     *Cluster
	ref   string
	name  string
	owner string
}

// Lock takes the fleet-wide lock for key for ttl (SET NX PX with a
// random owner token). acquired is false when another holder has it;
// then Wait until it is released. A holder that crashes loses the lock
// when ttl ends.
func (c *Cluster) Lock(ctx context.Context, key string, ttl time.Duration) (lease *Lease, acquired bool, err error) {
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("cluster: lock ttl %s is shorter than 1ms", ttl)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, c.fail(OpLock, err)
	}
	ref := Ref(key)
	l := &Lease{c: c, ref: ref, name: c.lockName(ref), owner: hex.EncodeToString(b[:])}
	octx, cancel := c.opContext(ctx)
	defer cancel()
	ok, err := c.rdb.SetNX(octx, l.name, l.owner, ttl).Result()
	if err != nil {
		return nil, false, c.fail(OpLock, err)
	}
	if !ok {
		return nil, false, nil
	}
	return l, true, nil
}

// Release frees the lock if it is still the lease's (compare-and-delete)
// and wakes the replicas waiting for it. It returns ErrLeaseLost when
// the lock had expired.
func (l *Lease) Release(ctx context.Context) error {
	ev, err := l.c.event(eventReleased, l.ref, nil)
	if err != nil {
		return l.c.fail(OpRelease, err)
	}
	octx, cancel := l.c.opContext(ctx)
	defer cancel()
	n, err := releaseScript.Run(octx, l.c.rdb, []string{l.name}, l.owner, l.c.channel, ev).Int()
	if err != nil {
		return l.c.fail(OpRelease, err)
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Extend sets the lock's expiry to ttl from now if it is still the
// lease's (compare-and-pexpire); ErrLeaseLost otherwise.
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("cluster: lock ttl %s is shorter than 1ms", ttl)
	}
	octx, cancel := l.c.opContext(ctx)
	defer cancel()
	n, err := extendScript.Run(octx, l.c.rdb, []string{l.name}, l.owner, ttl.Milliseconds()).Int()
	if err != nil {
		return l.c.fail(OpExtend, err)
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Wait returns when key's lock is free or something happened to key:
// a value was stored, the lock released, a value invalidated. It learns
// of that by notification, and looks at the lock every poll interval in
// case a notification was lost. It returns ctx's error when ctx ends
// first, and a *StoreError when Redis fails. After Wait, Load key: the
// holder has usually stored a value; if not, try Lock.
func (c *Cluster) Wait(ctx context.Context, key string) error {
	ref := Ref(key)
	woken := c.addWaiter(ref) // before looking, so no notification is missed
	defer c.removeWaiter(ref, woken)
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	name := c.lockName(ref)
	for {
		octx, cancel := c.opContext(ctx)
		n, err := c.rdb.Exists(octx, name).Result()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return c.fail(OpWait, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-woken:
			return nil
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Turn is MinInterval's answer.
type Turn struct {
	// Allowed: the caller's turn; the interval starts now.
	Allowed bool
	// RetryAfter is how long until the next turn, when not Allowed.
	RetryAfter time.Duration
	// Refused, when not Allowed: the token of this interval was refused
	// by its resource server (Invalidate removed it from Redis), as any
	// replica can tell, not only those that held it.
	Refused bool
}

// MinInterval takes key's turn under a fleet-wide minimum interval: the
// first caller in any interval d gets allowed (and starts the interval,
// SET NX PX); the others are told how long until the next turn, and
// whether the interval's token was refused.
func (c *Cluster) MinInterval(ctx context.Context, key string, d time.Duration) (Turn, error) {
	if d < time.Millisecond {
		return Turn{Allowed: true}, nil
	}
	octx, cancel := c.opContext(ctx)
	defer cancel()
	res, err := intervalScript.Run(octx, c.rdb, []string{c.intervalName(Ref(key))}, d.Milliseconds()).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("cluster: the interval script answered %d values", len(res))
	}
	if err != nil {
		return Turn{}, c.fail(OpMinInterval, err)
	}
	if res[0] == 0 {
		return Turn{Allowed: true}, nil
	}
	return Turn{RetryAfter: time.Duration(res[0]) * time.Millisecond, Refused: res[1] == 1}, nil
}
