// Package ratelimit keeps cqgate's own request rate to each organization
// under a configured limit, so that a tenant that throttles (and answers
// 429) is not pushed past its quota by the many services behind one
// gateway.
//
// A Limiter holds one token bucket (golang.org/x/time/rate) per
// organization with a limit. A request takes its turn: it goes at once
// while the bucket has room, waits up to the limit's MaxWait for its
// turn, and is refused with a *LimitedError (429 with Retry-After) when
// its turn is further away than that. Nothing is sent upstream for a
// refused request.
package ratelimit
