package ratelimit

import "github.com/cqgate/cqgate/internal/failure"

// Kind: a request over cqgate's own rate limit is throttled.
func (e *LimitedError) Kind() failure.Kind { return failure.Throttled }

var (
	_ failure.Classified = (*LimitedError)(nil)
	_ failure.RetryAfter = (*LimitedError)(nil)
)
