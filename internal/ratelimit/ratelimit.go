package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token-bucket limit on requests to one organization.
type Limit struct {
	// RequestsPerSecond is the sustained rate; zero or less means no
	// limit.
	RequestsPerSecond float64
	// Burst is how many requests may go at once; at least 1.
	Burst int
	// MaxWait is how long a request may wait for its turn.
	MaxWait time.Duration
}

// On reports whether l limits anything.
func (l Limit) On() bool { return l.RequestsPerSecond > 0 }

// Limits is a default limit and the organizations that have their own.
type Limits struct {
	Default Limit
	Per     map[string]Limit
}

// For is the limit that applies to oid.
func (ls Limits) For(oid string) Limit {
	if lim, ok := ls.Per[oid]; ok {
		return lim
	}
	return ls.Default
}

// Any reports whether any organization is limited.
func (ls Limits) Any() bool {
	if ls.Default.On() {
		return true
	}
	for _, lim := range ls.Per {
		if lim.On() {
			return true
		}
	}
	return false
}

// LimitedError says a request was refused because the organization's
// limit was reached.
type LimitedError struct {
	OID   string
	Limit Limit
	// Wait is how long until the request could have gone.
	Wait time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("ratelimit: cqgate's limit of %g requests/s (burst %d) to %s is reached; try again in %s",
		e.Limit.RequestsPerSecond, e.Limit.Burst, e.OID, e.Wait.Round(time.Millisecond))
}

// RetryAfter is how long the caller should wait before trying again.
func (e *LimitedError) RetryAfter() time.Duration { return e.Wait }

// Limiter limits requests per organization.
type Limiter struct {
	limits Limits
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error

	buckets sync.Map // OID -> *rate.Limiter
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock sets the clock; time.Now by default. Tests that use it also
// set WithSleep.
func WithClock(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithSleep sets how a request waits for its turn; by default a timer
// that ends early when ctx does.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(l *Limiter) { l.sleep = sleep }
}

// New returns a Limiter applying def to every organization not in per.
func New(def Limit, per map[string]Limit, opts ...Option) *Limiter {
	l := &Limiter{limits: Limits{Default: def, Per: per}, now: time.Now, sleep: sleep}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Enabled reports whether any organization is limited.
func (l *Limiter) Enabled() bool {
	if l == nil {
		return false
	}
	return l.limits.Any()
}

// LimitFor is the limit that applies to oid.
func (l *Limiter) LimitFor(oid string) Limit {
	return l.limits.For(oid)
}

// Wait takes oid's next turn: it returns nil at once or after waiting at
// most the limit's MaxWait, a *LimitedError when the turn is further
// away, or ctx's error when ctx ends while waiting (the turn is given
// back). A nil Limiter limits nothing.
func (l *Limiter) Wait(ctx context.Context, oid string) error {
	if l == nil {
		return nil
	}
	lim := l.LimitFor(oid)
	if !lim.On() {
		return nil
	}
	b := l.bucket(oid, lim)
	now := l.now()
	r := b.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if !r.OK() || delay > lim.MaxWait {
		r.CancelAt(now)
		if !r.OK() || delay == rate.InfDuration {
			delay = time.Duration(math.Ceil(float64(time.Second) / lim.RequestsPerSecond))
		}
		return &LimitedError{OID: oid, Limit: lim, Wait: delay}
	}
	if delay <= 0 {
		return nil
	}
	if err := l.sleep(ctx, delay); err != nil {
		r.CancelAt(l.now())
		return err
	}
	return nil
}

func (l *Limiter) bucket(oid string, lim Limit) *rate.Limiter {
	if b, ok := l.buckets.Load(oid); ok {
		return b.(*rate.Limiter)
	}
	burst := max(lim.Burst, 1)
	b, _ := l.buckets.LoadOrStore(oid, rate.NewLimiter(rate.Limit(lim.RequestsPerSecond), burst))
	return b.(*rate.Limiter)
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
