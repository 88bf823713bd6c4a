// Package cluster keeps the state cqgate replicas share in Redis (or
// Valkey), through github.com/redis/go-redis/v9: so that N replicas make
// one token exchange per partner per token lifetime, not N, and hold a
// partner to one rate budget, not N.
//
// # What is shared
//
//   - Tokens (the L2 tier behind each replica's in-process cache): Load,
//     Store, Invalidate (TokenStore). Values are opaque bytes, sealed
//     (AES-256-GCM) before they reach Redis, kept until DefaultStoreMargin
//     before the expiry they were stored with.
//   - One exchange at a time per token context, fleet-wide: Lock (SET NX
//     PX with a random owner token), Lease.Release and Lease.Extend
//     (compare-and-delete and compare-and-pexpire in Lua, so an expired
//     holder never frees or extends the next holder's lock), and Wait,
//     which returns when the holder stored a token or released the lock.
//   - tokens.min_interval: MinInterval, a marker per key (SET NX PX).
//   - A partner's 401: Invalidate deletes the token only if Redis still
//     holds that very token (compare-and-delete) and publishes an
//     Invalidation; every replica's OnInvalidation handlers drop their
//     in-process copy if it is that token (Invalidation.Matches).
//   - Rate budgets: RateLimiter, a GCRA per OID
//     (github.com/go-redis/redis_rate/v10) with internal/ratelimit's
//     Wait semantics and *ratelimit.LimitedError refusals.
//
// What each replica keeps for itself: its L1 token cache (the hot path
// never touches Redis), directory and discovery answers, keys.
//
// On an L1 miss a token cache does: Load; on a hit, use it. Otherwise
// Lock; if acquired, Load once more (a holder may just have stored),
// exchange, Store, Release. If not acquired, Wait, then start again.
// Any *StoreError on the way means: exchange locally. TestOneExchange-
// AcrossReplicas in this package runs that recipe: 300 concurrent cold
// requests on three replicas, one exchange.
//
// # Key layout
//
// Every name starts with Config.Prefix ("cqgate:"); <ref> is Ref(key),
// the hex SHA-256 of the cache key, so no client id, scope or context
// digest appears in Redis either:
//
//	cqgate:tok:<ref>     string  sealed token: version|key id|nonce|AES-GCM(expiry ms ‖ value); PX = expiry − margin
//	cqgate:lock:<ref>    string  lock owner (16 random bytes, hex); PX = lock TTL
//	cqgate:min:<ref>     string  "1"; PX = minimum interval
//	rate:cqgate:<oid>    string  GCRA state (redis_rate adds "rate:")
//	cqgate:events        channel sealed events: stored, released, invalidated (+ SHA-256 of the refused token)
//
// A sealed value's GCM associated data is its header and its Redis key
// name (or the channel name), so a value moved to another key does not
// open. Events are sealed too: only holders of the cluster key can make
// replicas drop tokens, and nobody reading Redis learns anything about a
// token. An ACL user for cqgate needs no more than (TestACLUser):
//
//	ACL SETUSER cqgate on >PASSWORD resetkeys ~cqgate:* ~rate:cqgate:* resetchannels &cqgate:events
//	    -@all +get +set +del +exists +pexpire +pttl +eval +evalsha +publish +subscribe +ping +hello +time
//
// # Keys and rotation
//
// The cluster key (cluster.encryption_key) is 32 random bytes; each
// sealed value names its key's id (given as "id:BASE64", or derived:
// KeyID). To rotate: add the new key as previous_encryption_keys on every
// replica, then make it the current key (the old one moves to previous),
// then, once the longest token lifetime has passed, remove the old one.
// A value under a key a replica does not hold is an error
// (ErrUnknownKey), never plaintext, and costs that replica a local
// exchange.
//
// # Failure model
//
// Redis is a cache and a coordinator, never the source of truth: every
// operation runs under Config.Timeout (DefaultTimeout) and fails with a
// *StoreError{Op} (counted by the Observer; nothing in it holds a token,
// a key or a key name). The caller then carries on alone: serves from
// L1, exchanges locally (at most one per replica per token context, by
// its own single flight), and limits with its local limiter (the
// RateLimiter's fallback). New never waits for Redis, so a replica
// starts while Redis is down.
//
//   - Redis down or hung: operations fail within the timeout; the
//     subscription reconnects and resubscribes by itself.
//   - Redis restarted empty or failed over: tokens are exchanged again
//     once per token context; locks and markers are gone, which costs at
//     most one extra exchange. Notifications published while a replica
//     was not subscribed are lost: a waiter notices within
//     Config.PollInterval that the lock is gone; a lost invalidation
//     costs one more 401 from the partner, which invalidates again.
//   - A holder slower than its lock TTL: another replica exchanges too
//     (one extra exchange); both tokens are valid for the same context,
//     so no replica ever gets a wrong or foreign token. Release then
//     returns ErrLeaseLost.
//   - Clocks: lock and marker TTLs are measured by Redis; a token's
//     expiry is the absolute time the storing replica computed, so
//     replicas' clocks should agree to within the store margin (NTP).
package cluster
