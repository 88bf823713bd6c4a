package cluster

import (
	"context"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/cqgate/cqgate/internal/ratelimit"
)

// Waiter takes an organization's next turn; *ratelimit.Limiter and
// *RateLimiter are Waiters.
type Waiter interface {
	Wait(ctx context.Context, oid string) error
}

var _ Waiter = (*RateLimiter)(nil)

// RateLimiter is internal/ratelimit's per-organization limit as one
// budget for the whole fleet: a GCRA in Redis
// (github.com/go-redis/redis_rate), keyed by OID. Its refusals are
// *ratelimit.LimitedError, as the local limiter's.
//
// A request goes at once while the budget has room; otherwise it sleeps
// for the Retry-After Redis named and asks again, as long as the limit's
// MaxWait allows, and is refused with the wait it would need when its
// turn is further away. Waiting takes nothing from the budget, so a
// caller that gives up gives nothing back. Waiters are not queued: under
// contention one that waited may be overtaken and refused.
//
// When Redis fails, the request is counted (OpRateLimit) and decided by
// the fallback limiter (typically the local *ratelimit.Limiter, so each
// replica still holds the configured rate by itself); without a
// fallback it goes.
type RateLimiter struct {
	c        *Cluster
	gcra     *redis_rate.Limiter
	limits   ratelimit.Limits
	fallback Waiter
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time
}

// RateLimiter returns a fleet-wide limiter applying def to every
// organization not in per; fallback (may be nil) decides while Redis
// fails.
func (c *Cluster) RateLimiter(def ratelimit.Limit, per map[string]ratelimit.Limit, fallback Waiter) *RateLimiter {
	return &RateLimiter{c: c, gcra: redis_rate.NewLimiter(c.rdb), limits: ratelimit.Limits{Default: def, Per: per}, fallback: fallback, sleep: sleep, now: time.Now}
}

// Enabled reports whether any organization is limited.
func (l *RateLimiter) Enabled() bool {
	if l == nil {
		return false
	}
	return l.limits.Any()
}

// LimitFor is the limit that applies to oid.
func (l *RateLimiter) LimitFor(oid string) ratelimit.Limit {
	return l.limits.For(oid)
}

// Wait takes oid's next turn in the fleet-wide budget: nil at once or
// after waiting at most the limit's MaxWait, a *ratelimit.LimitedError
// when the turn is further away, ctx's error when ctx ends while
// waiting. A nil RateLimiter limits nothing.
func (l *RateLimiter) Wait(ctx context.Context, oid string) error {
	if l == nil {
		return nil
	}
	lim := l.LimitFor(oid)
	if !lim.On() {
		return nil
	}
	gl := gcraLimit(lim)
	deadline := l.now().Add(lim.MaxWait)
	for {
		res, err := l.allow(ctx, oid, gl)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if l.fallback != nil {
				return l.fallback.Wait(ctx, oid)
			}
			return nil
		}
		if res.Allowed > 0 {
			return nil
		}
		wait := max(res.RetryAfter, time.Millisecond)
		if l.now().Add(wait).After(deadline) {
			return &ratelimit.LimitedError{OID: oid, Limit: lim, Wait: wait}
		}
		if err := l.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (l *RateLimiter) allow(ctx context.Context, oid string, gl redis_rate.Limit) (*redis_rate.Result, error) {
	octx, cancel := l.c.opContext(ctx)
	defer cancel()
	res, err := l.gcra.Allow(octx, l.c.rateName(oid), gl)
	if err != nil {
		return nil, l.c.fail(OpRateLimit, err)
	}
	return res, nil
}

// gcraLimit expresses lim in redis_rate's terms: one request per emission
// interval, so fractional rates (0.5/s) work.
func gcraLimit(lim ratelimit.Limit) redis_rate.Limit {
	period := time.Duration(math.Round(float64(time.Second) / lim.RequestsPerSecond))
	return redis_rate.Limit{Rate: 1, Period: max(period, time.Microsecond), Burst: max(lim.Burst, 1)}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
