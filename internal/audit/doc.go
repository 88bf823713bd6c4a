// Package audit writes cqgate's audit trail: one JSON object per line
// for every FHIR request, saying who (caller and how it authenticated)
// asked what (organization, method, resource type and id, purpose of
// use) and what came of it (status, upstream request id, duration, the
// OperationOutcome code of a failure).
//
// The trail is separate from the application log and goes to stdout,
// stderr or an append-only file (Open). It never holds tokens, client
// assertions, API keys, query strings or bodies: a Record has no field
// for them, and TargetFromPath drops the query of a FHIR path. Lines are
// encoded without reflection into a pooled buffer and written with one
// Write call each, so concurrent requests never interleave.
//
// For log rotation, call Reopen (e.g. on SIGHUP) after the file was
// moved away. A failed write is returned to the caller, who should log
// it, and counted (Errors), so that a lost audit line can be alerted on.
package audit
