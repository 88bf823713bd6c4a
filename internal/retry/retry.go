package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Jitter says how a wait is drawn from the capped exponential interval d.
type Jitter int

const (
	// Full draws each wait uniformly from [0, d] ("full jitter"), so that
	// many gateways retrying one failing endpoint spread out.
	Full Jitter = iota
	// Spread draws each wait from d ± 50%, backoff's own randomization.
	Spread
)

// Policy is a capped exponential backoff. The zero value makes one
// attempt; every caller passes its own defaults.
type Policy struct {
	// Attempts is the number of tries in all, the first included, for Do;
	// less than 1 means 1. BackOff ignores it.
	Attempts int
	// Initial is the first interval; it is clipped to Max.
	Initial time.Duration
	// Max caps every interval; zero means no cap beyond backoff's own.
	Max time.Duration
	// Multiplier grows the interval after each wait; zero means 2.
	Multiplier float64
	// Jitter draws the wait from the interval; the zero value is Full.
	Jitter Jitter
	// Sleep waits d or until ctx is done, returning ctx.Err() then; nil
	// means a timer. Tests pass one that does not really sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// BackOff returns a fresh, endless schedule of waits.
func (p Policy) BackOff() backoff.BackOff {
	initial, maxWait := p.Initial, p.Max
	if maxWait <= 0 {
		maxWait = backoff.DefaultMaxInterval
	}
	if initial <= 0 {
		initial = backoff.DefaultInitialInterval
	}
	mult := p.Multiplier
	if mult <= 0 {
		mult = 2
	}
	opts := []backoff.ExponentialBackOffOpts{
		backoff.WithInitialInterval(min(initial, maxWait)),
		backoff.WithMaxInterval(maxWait),
		backoff.WithMultiplier(mult),
		backoff.WithMaxElapsedTime(0), // attempts and the context bound retries
	}
	if p.Jitter == Spread {
		return backoff.NewExponentialBackOff(opts...)
	}
	opts = append(opts, backoff.WithRandomizationFactor(0)) // full jitter below instead
	return &fullJitter{b: backoff.NewExponentialBackOff(opts...)}
}

// fullJitter draws each wait uniformly from [0, d].
type fullJitter struct{ b backoff.BackOff }

func (j *fullJitter) Reset() { j.b.Reset() }

func (j *fullJitter) NextBackOff() time.Duration {
	d := j.b.NextBackOff()
	if d <= 0 || d == backoff.Stop {
		return d
	}
	return rand.N(d + 1)
}

// Verdict is a caller's judgement of one failed attempt.
type Verdict struct {
	// Retry says another attempt may help.
	Retry bool
	// After is the least wait before it (e.g. a Retry-After), added to
	// the schedule as a floor.
	After time.Duration
}

// Stop is the verdict that ends Do: the attempt succeeded or another
// cannot help.
var Stop = Verdict{}

// Again is the verdict that asks for another attempt after the backoff.
var Again = Verdict{Retry: true}

// StoppedError says Do gave up retrying because of the context: a wait
// would have ended after its deadline, or ended early because ctx ended.
// It wraps context.DeadlineExceeded or ctx's error.
type StoppedError struct {
	Err error
	// Early is true when the wait was not begun, because ctx's deadline
	// would have passed during it.
	Early bool
}

func (e *StoppedError) Error() string {
	if e.Early {
		return fmt.Sprintf("%v before the next attempt", e.Err)
	}
	return e.Err.Error()
}

func (e *StoppedError) Unwrap() error { return e.Err }

// Do calls attempt until it returns a verdict without Retry, the policy's
// attempts are used up, or ctx ends. It returns nil when the verdict or
// the attempts ended it (the caller keeps the last attempt's result
// itself), or a *StoppedError when the context did: no attempt starts
// once ctx is done, and no wait begins that would end after its
// deadline.
func (p Policy) Do(ctx context.Context, attempt func(ctx context.Context) Verdict) error {
	attempts := max(p.Attempts, 1)
	var b backoff.BackOff
	for n := 1; ; n++ {
		v := attempt(ctx)
		if !v.Retry || n >= attempts || ctx.Err() != nil {
			return nil
		}
		if b == nil {
			b = p.BackOff()
		}
		wait := max(b.NextBackOff(), v.After)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return &StoppedError{Err: context.DeadlineExceeded, Early: true}
		}
		if err := p.sleep(ctx, wait); err != nil {
			return &StoppedError{Err: err}
		}
	}
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

// Sleep waits d or until ctx is done, returning ctx.Err() then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
