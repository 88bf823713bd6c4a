package assertion

import (
	"time"

	"github.com/cqgate/cqgate/internal/failure"
)

// The kinds of assertion failures (see internal/failure); ErrNoKey
// carries its own (NotReady).

// Kind classifies a request the granted scope does not cover as
// forbidden: the partner did not grant it.
func (e *ScopeError) Kind() failure.Kind { return failure.Forbidden }

// Kind classifies a failed token exchange as the token endpoint's failure.
func (e *RetrieveError) Kind() failure.Kind { return failure.UpstreamFailed }

// UpstreamAnswer is what the token endpoint answered, for operators.
func (e *RetrieveError) UpstreamAnswer() failure.Answer {
	return failure.Answer{URL: e.TokenURL, StatusCode: e.StatusCode, RequestID: e.RequestID,
		OAuthError: e.ErrorCode, OAuthDescription: e.ErrorDescription, OAuthURI: e.ErrorURI}
}

// Kind classifies a failed UDAP registration as the partner's failure.
func (e *RegistrationError) Kind() failure.Kind { return failure.UpstreamFailed }

// Kind classifies an algorithm that cannot work as cqgate's own
// misconfiguration.
func (e *AlgorithmError) Kind() failure.Kind { return failure.Misconfigured }

// Kind: a partner refusing fresh tokens within the minimum interval
// makes cqgate unavailable for it until RetryAt.
func (e *ThrottledError) Kind() failure.Kind { return failure.Unavailable }

// RetryAfter is how long until an exchange may be made again.
func (e *ThrottledError) RetryAfter() time.Duration { return time.Until(e.RetryAt) }

// Kind: a caller asking for more token contexts than the cap is
// throttled.
func (e *ContextLimitError) Kind() failure.Kind { return failure.Throttled }

var (
	_ failure.Classified     = (*RetrieveError)(nil)
	_ failure.UpstreamAnswer = (*RetrieveError)(nil)
	_ failure.Classified     = (*RegistrationError)(nil)
	_ failure.Classified     = (*AlgorithmError)(nil)
	_ failure.Classified     = (*ThrottledError)(nil)
	_ failure.RetryAfter     = (*ThrottledError)(nil)
	_ failure.Classified     = (*ContextLimitError)(nil)
	_ failure.RetryAfter     = (*ContextLimitError)(nil)
)
