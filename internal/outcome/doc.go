// Package outcome is the error boundary: it renders every error cqgate
// answers with as a FHIR OperationOutcome (application/fhir+json).
// Errors classify themselves (internal/failure); Classify finds the kind
// that decides in an error's chain (and gives the standard library's
// errors theirs: a body over its limit, a deadline, a cancellation, a
// network error), and answers maps each kind to an HTTP status and FHIR
// issue type: 400 for input the caller got wrong, 404 for an
// organization nobody knows, 502 when the directory, discovery, Vault or
// a token endpoint failed, 504 when an upstream timed out. Upstream OAuth
// error fields (error, error_description, error_uri, X-Request-Id) are
// kept in the outcome so an operator can trace them. WriteErrorFor, which
// the router and the proxy answer failures with, also puts the issue type
// on the request's span and in its audit record.
package outcome
