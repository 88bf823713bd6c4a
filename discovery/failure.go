package discovery

import "github.com/cqgate/cqgate/internal/failure"

// Kind classifies a failed discovery document as the partner's failure.
func (e *Error) Kind() failure.Kind { return failure.UpstreamFailed }

// Kind classifies a partner that advertises no token URL as its failure.
func (e *NoTokenURLError) Kind() failure.Kind { return failure.UpstreamFailed }

var (
	_ failure.Classified = (*Error)(nil)
	_ failure.Classified = (*NoTokenURLError)(nil)
)
