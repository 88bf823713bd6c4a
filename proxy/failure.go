package proxy

import "github.com/cqgate/cqgate/internal/failure"

// Kind classifies a failed call to a FHIR server as a transport failure,
// the weakest kind: a timeout, an egress refusal, a body over its limit
// or a token that could not be had, wrapped inside, decides instead.
func (e *UpstreamError) Kind() failure.Kind { return failure.Transport }

var _ failure.Classified = (*UpstreamError)(nil)
