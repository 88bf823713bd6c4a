// Package flightcache caches the answers of slow lookups, such as a
// directory request or a CapabilityStatement fetch, for a TTL, and makes
// concurrent lookups of one key share one fetch.
//
// A shared fetch runs detached from any one caller's cancellation, so a
// caller that gives up does not fail the others; each caller still stops
// waiting when its own context ends. Freshness is judged by an injectable
// clock; go-cache's own wall-clock expiry only frees memory. Failures are
// not cached.
package flightcache
