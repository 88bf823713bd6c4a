// Package upstream makes the bounded GET requests cqgate sends to the
// services it depends on (the Carequality directory, FHIR servers'
// metadata), retries them when a retry can help (Retry: capped
// exponential backoff with full jitter, never on a 403 or another 4xx),
// and describes an unexpected answer without quoting more of it than an
// operator needs or any secret it echoes back.
package upstream
