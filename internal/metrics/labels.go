package metrics

// ExchangeOutcome is the outcome of one client_credentials token exchange,
// the outcome label of cqgate_token_exchanges_total.
type ExchangeOutcome uint8

// Token exchange outcomes.
const (
	// ExchangeSuccess: the token endpoint issued an access token.
	ExchangeSuccess ExchangeOutcome = iota
	// ExchangeOAuthError: the token endpoint answered with an RFC 6749
	// error response (e.g. invalid_client).
	ExchangeOAuthError
	// ExchangeHTTPError: an HTTP status or body that is not a token or an
	// OAuth error.
	ExchangeHTTPError
	// ExchangeNetworkError: no answer (connection failure, timeout).
	ExchangeNetworkError
	// ExchangeThrottled: the token endpoint asked us to slow down (a 429,
	// or a 503 with Retry-After; whatever the body says), or a local
	// limit held the exchange back.
	ExchangeThrottled
	numExchangeOutcomes
)

var exchangeOutcomeNames = [numExchangeOutcomes]string{
	"success", "oauth_error", "http_error", "network_error", "throttled",
}

// String returns the label value, or "invalid" for a value outside the
// constants.
func (o ExchangeOutcome) String() string {
	if o >= numExchangeOutcomes {
		return "invalid"
	}
	return exchangeOutcomeNames[o]
}

// CacheResult is the result label of cqgate_token_cache_requests_total.
type CacheResult uint8

// Token cache results.
const (
	// CacheHit: a cached token was served at once (a refresh ahead it
	// started runs in the background).
	CacheHit CacheResult = iota
	// CacheMiss: no usable token was cached: one had to be fetched
	// (exchanged, or read from the shared tier) or waited for (another
	// request's exchange too), or the request got none (the failure the
	// cache holds, a local limit).
	CacheMiss
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"hit", "miss"}

// String returns the label value, or "invalid".
func (r CacheResult) String() string {
	if r >= numCacheResults {
		return "invalid"
	}
	return cacheResultNames[r]
}

// LookupResult is the result label of cqgate_directory_lookups_total and
// cqgate_discovery_lookups_total.
type LookupResult uint8

// Directory and discovery lookup results.
const (
	// LookupHit: answered from the cache.
	LookupHit LookupResult = iota
	// LookupMiss: not cached (or expired); fetched successfully.
	LookupMiss
	// LookupStale: the fetch failed and an expired entry was served.
	LookupStale
	// LookupNotFound: the upstream knows no such organization or token URL.
	LookupNotFound
	// LookupError: the fetch failed and nothing could be served.
	LookupError
	numLookupResults
)

var lookupResultNames = [numLookupResults]string{"hit", "miss", "stale", "not_found", "error"}

// String returns the label value, or "invalid".
func (r LookupResult) String() string {
	if r >= numLookupResults {
		return "invalid"
	}
	return lookupResultNames[r]
}

// VaultOp is the op label of cqgate_vault_errors_total: what cqgate was
// doing when Vault failed.
type VaultOp uint8

// Vault operations.
const (
	// VaultLogin: logging in (token lookup, AppRole, Kubernetes).
	VaultLogin VaultOp = iota
	// VaultRenew: renewing the Vault token.
	VaultRenew
	// VaultKVRead: reading a KV v2 secret.
	VaultKVRead
	// VaultKVMetadata: reading a KV v2 secret's metadata (version checks).
	VaultKVMetadata
	// VaultKVWrite: writing a KV v2 secret.
	VaultKVWrite
	// VaultTransitKey: reading a transit key's public part.
	VaultTransitKey
	// VaultTransitSign: signing with a transit key.
	VaultTransitSign
	numVaultOps
)

var vaultOpNames = [numVaultOps]string{
	"login", "renew", "kv_read", "kv_metadata", "kv_write", "transit_key", "transit_sign",
}

// String returns the label value, or "invalid".
func (op VaultOp) String() string {
	if op >= numVaultOps {
		return "invalid"
	}
	return vaultOpNames[op]
}

// ReloadResult is the result label of cqgate_signing_key_reloads_total.
type ReloadResult uint8

// Signing key reload results.
const (
	// ReloadSuccess: new key material was loaded and put in service.
	ReloadSuccess ReloadResult = iota
	// ReloadFailure: loading failed; the previous material stays in service.
	ReloadFailure
	numReloadResults
)

var reloadResultNames = [numReloadResults]string{"success", "failure"}

// String returns the label value, or "invalid".
func (r ReloadResult) String() string {
	if r >= numReloadResults {
		return "invalid"
	}
	return reloadResultNames[r]
}

// RejectReason is the reason label of cqgate_inflight_rejected_total:
// why a FHIR request was answered 503 at server.max_inflight.
type RejectReason uint8

// Reasons a request got no turn.
const (
	// RejectQueueFull: max_inflight requests were served and the queue
	// was full.
	RejectQueueFull RejectReason = iota
	// RejectWaitExpired: the request waited server.inflight_wait in the
	// queue without a turn.
	RejectWaitExpired
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{"queue_full", "wait_expired"}

// String returns the label value, or "invalid".
func (r RejectReason) String() string {
	if r >= numRejectReasons {
		return "invalid"
	}
	return rejectReasonNames[r]
}

// HTTP methods with their own method label value; any other method is
// counted as "other".
var methodNames = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}

const numMethods = len(methodNames)

// methodIndex maps an HTTP method onto methodNames without allocating.
func methodIndex(method string) int {
	switch method {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	}
	return numMethods - 1
}

// Status classes; a status outside 100..599 is counted as "other".
var codeClassNames = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

const numCodeClasses = len(codeClassNames)

// codeClassIndex maps an HTTP status onto codeClassNames.
func codeClassIndex(code int) int {
	if code < 100 || code > 599 {
		return numCodeClasses - 1
	}
	return code/100 - 1
}

// Org label values that are not OIDs.
const (
	// OrgUnknown is the org label of requests whose OID did not resolve
	// (or was not a valid OID).
	OrgUnknown = "unknown"
	// OrgOther is the org label of resolved OIDs seen after MaxOrgs
	// distinct ones.
	OrgOther = "other"
)

// maxOIDLen matches the directory package's bound on a bare OID.
const maxOIDLen = 128

// validOID reports whether s is a bare OID as the directory package
// canonicalizes it: at least two arcs of decimal digits without leading
// zeros, the first 0, 1 or 2, at most maxOIDLen characters. It is only a
// syntax check that keeps arbitrary strings out of the org label; the
// caller decides that the OID resolved.
func validOID(s string) bool {
	if len(s) < 3 || len(s) > maxOIDLen {
		return false
	}
	if s[0] < '0' || s[0] > '2' || s[1] != '.' {
		return false
	}
	arcStart := 2
	for i := 2; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
			continue
		}
		n := i - arcStart
		if n == 0 || (n > 1 && s[arcStart] == '0') {
			return false
		}
		arcStart = i + 1
	}
	return true
}

// connStateNames are the state label values of
// cqgate_connections_closed_for_room_total, indexed by whether the
// connection was idle.
var connStateNames = [2]string{"no_request", "idle"}
