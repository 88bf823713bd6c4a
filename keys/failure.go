package keys

import "github.com/cqgate/cqgate/internal/failure"

// Kind classifies a failed transit signature as an upstream (Vault)
// failure.
func (e *SignError) Kind() failure.Kind { return failure.UpstreamFailed }

var _ failure.Classified = (*SignError)(nil)
