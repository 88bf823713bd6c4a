// Package outcome renders every error cqgate answers with as a FHIR
// OperationOutcome (application/fhir+json) and decides the HTTP status an
// error deserves: 400 for input the caller got wrong, 404 for an
// organization nobody knows, 502 when the directory, discovery, Vault or a
// token endpoint failed, 504 when an upstream timed out. Upstream OAuth
// error fields (error, error_description, error_uri, X-Request-Id) are
// kept in the outcome so an operator can trace them.
package outcome
