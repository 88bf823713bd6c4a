package callerauth

import "github.com/cqgate/cqgate/internal/failure"

// Kind: a caller's policy denying a request is a Forbidden.
func (e *DeniedError) Kind() failure.Kind { return failure.Forbidden }

var _ failure.Classified = (*DeniedError)(nil)
