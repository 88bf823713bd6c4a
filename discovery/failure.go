package discovery

import "github.com/cqgate/cqgate/internal/failure"

// Kind classifies a failed discovery document as the partner's failure.
func (e *Error) Kind() failure.Kind { return failure.UpstreamFailed }

// Kind classifies a partner that advertises no token URL as its failure.
func (e *NoTokenURLError) Kind() failure.Kind { return failure.UpstreamFailed }

// Kind classifies metadata a trust community refuses as untrusted: the
// transport failures of its revocation sources behind it do not decide
// (TrustError does not unwrap to them).
func (e *TrustError) Kind() failure.Kind { return failure.UpstreamUntrusted }

var (
	_ failure.Classified = (*Error)(nil)
	_ failure.Classified = (*NoTokenURLError)(nil)
	_ failure.Classified = (*TrustError)(nil)
)
