package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cqgate/cqgate/internal/retry"
)

// Defaults of a Retry policy's zero fields.
const (
	DefaultAttempts      = 3
	DefaultInitial       = 200 * time.Millisecond
	DefaultMax           = 2 * time.Second
	DefaultMaxRetryAfter = 5 * time.Second
)

// Retry is a retry policy for idempotent GETs: a failed attempt is
// retried after a capped exponential backoff with full jitter (a random
// wait between zero and min(Max, Initial·2ⁿ)).
//
// Retried are transport failures (connection refused or reset, a timeout
// of the http.Client, a body cut short) and the statuses 500, 502, 503
// and 504. A 503 or 429 carrying a Retry-After of at most MaxRetryAfter
// is retried no sooner than it asks; one asking for longer is not
// retried at all, nor is a 429 without Retry-After. Never retried: any
// other status (403 in particular: a key that is not allowed stays not
// allowed), TLS certificate failures, malformed requests, and anything
// once ctx is done. A wait that would end after ctx's deadline is not
// begun: the deadline always wins.
//
// The zero value is a usable policy with the defaults. A Retry is safe for
// concurrent use.
type Retry struct {
	// Attempts is the total number of tries, the first included: 0 means
	// DefaultAttempts; 1 or a negative number means no retries.
	Attempts int
	// Initial is the backoff before the first retry's jitter; 0 means
	// DefaultInitial.
	Initial time.Duration
	// Max caps the backoff before jitter; 0 means DefaultMax.
	Max time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; 0 means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx is done, returning ctx.Err() then; nil
	// means a timer. Tests pass a function that does not really sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for Retry-After dates; nil means time.Now.
	Now func() time.Time
}

// Get is the package's Get with retries: it returns the last attempt's
// result, with the same meaning as Get's (a nil response when no answer
// arrived, with net/http's error unchanged so that its type and timeouts
// stay detectable). When ctx ends during a wait, the last attempt's result
// is returned too.
func (p Retry) Get(ctx context.Context, hc *http.Client, u string, header http.Header, maxBody int64) (*Response, error) {
	p = p.withDefaults()
	var (
		resp *Response
		err  error
	)
	_ = p.policy().Do(ctx, func(ctx context.Context) retry.Verdict {
		resp, err = Get(ctx, hc, u, header, maxBody)
		return p.retryable(ctx, resp, err)
	})
	return resp, err
}

// policy is the schedule of p's waits.
func (p Retry) policy() retry.Policy {
	return retry.Policy{Attempts: p.Attempts, Initial: p.Initial, Max: p.Max, Jitter: retry.Full, Sleep: p.Sleep}
}

func (p Retry) withDefaults() Retry {
	if p.Attempts == 0 {
		p.Attempts = DefaultAttempts
	}
	if p.Initial <= 0 {
		p.Initial = DefaultInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	p.Max = max(p.Max, p.Initial)
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.Sleep == nil {
		p.Sleep = retry.Sleep
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

// retryable decides whether an attempt's result is worth another try,
// and the least wait the upstream asked for.
func (p Retry) retryable(ctx context.Context, resp *Response, err error) retry.Verdict {
	if ctx.Err() != nil {
		return retry.Stop // the caller gave up or ran out of time
	}
	if resp == nil {
		return retry.Verdict{Retry: retryableTransportError(err)}
	}
	if err != nil {
		return retry.Again // the body was cut short
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return retry.Again
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		after, ok := p.retryAfter(resp.Header.Get("Retry-After"))
		switch {
		case !ok:
			// No (usable) Retry-After: a 503 is retried with the
			// backoff, a 429 is not.
			return retry.Verdict{Retry: resp.StatusCode == http.StatusServiceUnavailable}
		case after > p.MaxRetryAfter:
			return retry.Stop // asked to stay away longer than we wait
		default:
			return retry.Verdict{Retry: true, After: after}
		}
	}
	return retry.Stop
}

// retryAfter parses a Retry-After value (delay-seconds or an HTTP date).
func (p Retry) retryAfter(v string) (time.Duration, bool) {
	return ParseRetryAfter(v, p.Now())
}

// ParseRetryAfter parses a Retry-After value (RFC 9110 section 10.2.3:
// delay-seconds or an HTTP date, the wait then counted from now). ok is
// false when v is empty or neither.
func ParseRetryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// retryableTransportError reports whether a failure to get any answer
// may be transient. Malformed requests and certificate failures are not.
func retryableTransportError(err error) bool {
	var (
		ue       *url.Error
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case err == nil, !errors.As(err, &ue), ue.Op == "parse":
		return false // not from net/http's client, or a malformed URL
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	return true
}
