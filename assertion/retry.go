package assertion

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry defaults, used for zero RetryPolicy fields.
const (
	DefaultRetryAttempts  = 3
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
)

// RetryPolicy says how an Exchanger retries a failed token request.
//
// Only failures that another attempt may cure are retried: an HTTP 5xx
// from the token endpoint, or no response at all (connection refused or
// reset, a timeout of the HTTP client). An OAuth error the server
// reports deliberately (invalid_client, invalid_grant, invalid_scope,
// unauthorized_client, unsupported_grant_type), any other 4xx, a 3xx and
// a 2xx the client cannot use are never retried; nor is anything that
// failed before the request was sent (signing, validation). Each attempt
// signs a fresh assertion, so no jti is ever sent twice. The caller's
// context always wins: no attempt starts and no wait begins once it is
// done or its deadline would pass during the wait.
//
// The waits are capped exponential backoff (github.com/cenkalti/backoff/v4)
// with full jitter: before attempt n+1 the wait is uniform in [0,
// min(MaxBackoff, InitialBackoff·2^(n−1))).
//
// ory/fosite answers an expired assertion with HTTP 500
// {"error":"error"}; that is retried with a fresh assertion, which only
// helps if the first one was delayed, but it is bounded by Attempts.
type RetryPolicy struct {
	// Attempts is the number of tries in all, including the first. Zero
	// or negative means DefaultRetryAttempts; 1 turns retries off.
	Attempts int
	// InitialBackoff caps the first wait; zero or negative means
	// DefaultInitialBackoff.
	InitialBackoff time.Duration
	// MaxBackoff caps every wait; zero or negative means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Sleep waits for d or until ctx is done, returning ctx.Err() then.
	// nil means a timer; tests inject their own.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p RetryPolicy) attempts() int {
	if p.Attempts <= 0 {
		return DefaultRetryAttempts
	}
	return p.Attempts
}

func (p RetryPolicy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
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

// backOff returns a fresh schedule of waits.
func (p RetryPolicy) backOff() backoff.BackOff {
	initial, maxWait := p.InitialBackoff, p.MaxBackoff
	if initial <= 0 {
		initial = DefaultInitialBackoff
	}
	if maxWait <= 0 {
		maxWait = DefaultMaxBackoff
	}
	return &fullJitter{b: backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(initial, maxWait)),
		backoff.WithMaxInterval(maxWait),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0), // full jitter below instead
		backoff.WithMaxElapsedTime(0),      // Attempts and the context bound retries
	)}
}

// fullJitter draws each wait uniformly from [0, d) where d is the capped
// exponential interval ("full jitter"), so that many gateways retrying
// one failing endpoint spread out.
type fullJitter struct{ b backoff.BackOff }

func (j *fullJitter) Reset() { j.b.Reset() }

func (j *fullJitter) NextBackOff() time.Duration {
	d := j.b.NextBackOff()
	if d <= 0 || d == backoff.Stop {
		return d
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// noRetryCodes are OAuth error codes that another attempt cannot cure.
var noRetryCodes = map[string]bool{
	"invalid_client":         true,
	"invalid_grant":          true,
	"invalid_scope":          true,
	"unauthorized_client":    true,
	"unsupported_grant_type": true,
	"invalid_request":        true,
}

// retryable reports whether err, from one token request, may be cured by
// another attempt while ctx is still live.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var re *RetrieveError
	if !errors.As(err, &re) || noRetryCodes[re.ErrorCode] {
		return false
	}
	switch {
	case re.StatusCode >= 500:
		return true
	case re.StatusCode == 0:
		return re.Err != nil // no response: a transport failure
	}
	// A response whose body broke off is a transport failure too.
	return errors.Is(re.Err, errReadingBody)
}
