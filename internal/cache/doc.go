// Package cache is cqgate's one caching mechanism for slow lookups —
// directory answers, discovery results and documents, resolved tenants:
// values cached for a TTL, concurrent lookups of one key sharing one
// fetch, entries kept in a Store.
//
// Get (and GetMaxAge, for a caller that wants a value younger than the
// TTL) serves a fresh value or fetches, caches and returns it. Callers
// with a policy of their own build it from the same parts: Do runs one
// shared fetch whose closure decides what is kept (Put, Set, Delete);
// Refresh starts such a fetch in the background (refresh-ahead); Peek
// returns an item past its TTL for Config.Keep more (stale-if-error); a
// second Cache with its own TTL holds negative answers. The directory
// resolver (stale-if-error, "not found" for its own TTL) and the
// discoverer (per-result expiry, refresh-ahead, failure backoff, stale
// serving, downgrade refusal) are such policies.
//
// A shared fetch runs detached from any one caller's cancellation, so a
// caller that gives up does not fail the others; each caller still stops
// waiting when its own context ends. Freshness is judged by an injectable
// clock; the Store's own expiry only frees memory. Failures are not
// cached.
//
// Where entries live is the Store's business: Memory (the default) keeps
// them in process; a store shared by replicas implements the same four
// methods. Directory and discovery answers stay per replica (see
// docs/scaling.md). The token cache (assertion.Cache) keeps its own
// flights by design — minimum interval, failure hold, a cap per token
// context, and its Redis tier (assertion.SharedTier on internal/cluster),
// which seals tokens and locks exchanges fleet-wide, more than a Store
// does.
package cache
