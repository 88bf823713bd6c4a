// Package retry is cqgate's one retry helper, on
// github.com/cenkalti/backoff/v4: a Policy is a small value (attempts,
// first and largest wait, growth, jitter, an injectable sleep) that each
// caller fills with its own defaults and passes in. Do runs an operation
// again while the caller's verdict says another attempt may help, the
// attempts last and the context allows; BackOff gives the bare schedule to
// loops that retry without end (key loading, Vault login, discovery
// refresh).
//
// What is worth retrying stays with the caller, which knows its protocol:
// the directory and discovery GETs (internal/upstream), the token endpoint
// (assertion), Vault (internal/vault).
package retry
