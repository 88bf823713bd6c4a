// Package metrics exposes cqgate's Prometheus metrics. A Metrics value owns
// its own prometheus.Registry (with the Go runtime and process collectors);
// nothing is registered globally, so any number of gateways, for example in
// tests, can live in one process.
//
//	m := metrics.New()
//	router.GET("/metrics", gin.WrapH(m.Handler()))
//	...
//	m.InflightInc()
//	defer m.InflightDec()
//	m.ObserveRequest(oid, r.Method, status) // oid "" when it did not resolve
//
// # Metrics
//
// Every metric is prefixed cqgate_:
//
//	requests_total{org, method, code_class}    FHIR requests answered
//	upstream_duration_seconds{org}              FHIR server latency (histogram, 5ms..30s)
//	inflight_requests                           FHIR requests being served
//	token_exchanges_total{outcome}              success, oauth_error, http_error, network_error, throttled
//	token_cache_requests_total{result}          hit, miss
//	directory_lookups_total{result}             hit, miss, stale, not_found, error
//	discovery_lookups_total{result}             hit, miss, stale, not_found, error
//	vault_errors_total{op}                      failed Vault operations: login, renew, kv_read, kv_metadata, kv_write, transit_key, transit_sign
//	signing_certificate_not_after_seconds       the signing certificate's NotAfter, unix seconds
//	signing_key_reloads_total{result}           new key material in service (success), failed reload (failure)
//	audit_write_errors_total                    audit lines that could not be written
//
// # Label values
//
// Label values come only from fixed sets (typed constants such as
// ExchangeSuccess, or HTTP methods and status classes mapped onto a fixed
// set) or, for org, from syntactically valid bare OIDs. The caller passes
// an OID only once it has resolved to a tenant; anything else (an empty
// string, a malformed OID) is counted as org="unknown", and once MaxOrgs
// distinct OIDs have been seen, further ones are counted as org="other".
// No request data other than these can become a label, so secrets (tokens,
// API keys, query values) never reach the metrics output.
//
// # Hot path
//
// The recording methods do not allocate once a series exists: the
// per-organization series are created on first use and cached in a
// sync.Map, the fixed-set series are created up front. All recording
// methods are safe for concurrent use and do nothing on a nil *Metrics,
// so a component can hold a nil *Metrics when metrics are disabled.
//
// # Values owned elsewhere
//
// Values another package already keeps (cache sizes, a holder's status)
// are best read when Prometheus scrapes: RegisterGaugeFunc and
// RegisterCounterFunc add such metrics, prefixed cqgate_ like the rest.
package metrics
