// Package failure lets an error say what kind of failure it is, so that
// the one place where errors become answers (internal/outcome) needs to
// know no other package's error types. A domain package implements
// Classified on its error types (or declares its sentinels with New) and
// never chooses an HTTP status: only the boundary maps a Kind to a status
// and a FHIR issue type.
//
// Optional interfaces carry what some failures have beyond their kind:
// RetryAfter (when asking again makes sense), UpstreamAnswer (what a
// token endpoint said, kept for operators).
package failure
