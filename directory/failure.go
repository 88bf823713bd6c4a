package directory

import "github.com/cqgate/cqgate/internal/failure"

// The kinds of directory failures (see internal/failure); the sentinels
// ErrInvalidOID, ErrInvalidQuery and ErrNotFound carry theirs.

// Kind classifies a failed directory call as the directory's failure.
func (e *Error) Kind() failure.Kind { return failure.UpstreamFailed }

// Kind classifies an API key that could not be read as an upstream
// (Vault) failure.
func (e *APIKeyError) Kind() failure.Kind { return failure.UpstreamFailed }

var (
	_ failure.Classified = (*Error)(nil)
	_ failure.Classified = (*APIKeyError)(nil)
)
