// Package cache is cqgate's one caching mechanism for slow lookups — a
// directory request, a tenant's resolution — and the storage seam the
// token tier shares: values cached for a TTL, concurrent lookups of one
// key sharing one fetch, entries kept in a Store.
//
// A shared fetch runs detached from any one caller's cancellation, so a
// caller that gives up does not fail the others; each caller still stops
// waiting when its own context ends. Freshness is judged by an injectable
// clock; the Store's own expiry only frees memory. Failures are not
// cached.
//
// Where entries live is the Store's business: Memory (the default) keeps
// them in process; a store shared by replicas implements the same four
// methods (the token cache's shared tier, assertion.SharedTier on
// internal/cluster, is the shared store cqgate ships; directory and
// discovery answers stay per replica, see docs/scaling.md).
package cache
