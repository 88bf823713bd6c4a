package assertion

import (
	"context"
	"errors"
	"time"

	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/upstream"
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
// The waits are capped exponential backoff (internal/retry) with full
// jitter: before attempt n+1 the wait is uniform in [0,
// min(MaxBackoff, InitialBackoff·2^(n−1))], and no shorter than the
// failed answer's Retry-After; a Retry-After over MaxRetryAfter ends the
// retries (RetrieveError.RetryAfter carries it to the caller's answer).
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

// policy is p with its defaults, for the retry helper.
func (p RetryPolicy) policy() retry.Policy {
	rp := retry.Policy{Attempts: p.Attempts, Initial: p.InitialBackoff, Max: p.MaxBackoff, Jitter: retry.Full, Sleep: p.Sleep}
	if rp.Attempts <= 0 {
		rp.Attempts = DefaultRetryAttempts
	}
	if rp.Initial <= 0 {
		rp.Initial = DefaultInitialBackoff
	}
	if rp.Max <= 0 {
		rp.Max = DefaultMaxBackoff
	}
	return rp
}

// MaxRetryAfter is the longest Retry-After of a token endpoint a retry
// waits for, as the directory's and discovery's requests do
// (upstream.DefaultMaxRetryAfter): asked to wait longer, the exchange
// fails now, and the caller's answer carries the Retry-After.
const MaxRetryAfter = upstream.DefaultMaxRetryAfter

// retryAfter is the verdict on a retryable failure: another attempt no
// sooner than the token endpoint's Retry-After, or none when it asks for
// more than MaxRetryAfter.
func retryAfter(err error) retry.Verdict {
	var re *RetrieveError
	if errors.As(err, &re) && re.RetryIn > 0 {
		if re.RetryIn > MaxRetryAfter {
			return retry.Stop
		}
		return retry.Verdict{Retry: true, After: re.RetryIn}
	}
	return retry.Again
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
