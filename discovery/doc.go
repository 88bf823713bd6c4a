// Package discovery finds the OAuth token URL of a FHIR server from what
// the server advertises about itself.
//
//	d := discovery.New(discovery.Config{HTTPClient: hc, TrustAnchors: pool})
//	res, err := d.Discover(ctx, discovery.Request{FHIRBase: base})
//	// res.TokenURL, res.Source, res.Attempts, res.SigningAlgorithms,
//	// res.RegistrationEndpoint, res.RegistrationSigningAlgorithms, ...
//
// # Sources
//
// A server can state its token URL in several places. Each is a named
// Source, a claim read from one document below the FHIR base (never the
// host root):
//
//   - carequality-token: GET {base}/metadata, the CapabilityStatement.
//     The "carequality-token" sub-extension of rest[].security's
//     http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris
//     extension, or the "token" (and "register") of Cerner's separate
//     https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris
//     extension. With Request.CernerOverride the request carries
//     "Cerner-Override-OAuth-URIs: on", Cerner then lists its Carequality
//     URLs as the plain oauth-uris "token" and "register", and that plain
//     token counts as this source.
//   - udap: GET {base}/.well-known/udap (UDAP Security IG 2.0). A 404
//     (also 403, 405, 410, 501, and 204) means the server does not speak
//     UDAP: an answer, not a failure. The document's signed_metadata JWT
//     must verify: its x5c chain leads to one of Config.TrustAnchors (the
//     intermediates come from x5c), the leaf signed it (RS256, RS384,
//     ES256 or ES384), iss is the FHIR base (trailing slash aside) and a
//     URI SAN of the leaf, sub equals iss, exp is in the future and at
//     most a year after iat, iat is not in the future (a minute of skew is
//     allowed either way, by Config.Clock). Signed values take precedence
//     over the unsigned ones, and the token URL and the registration
//     endpoint must be among the signed ones (an unsigned
//     registration_endpoint is ignored: no registration). The token endpoint's algorithms
//     (token_endpoint_auth_signing_alg_values_supported) become
//     Result.SigningAlgorithms, the registration endpoint's
//     (registration_endpoint_jwt_signing_alg_values_supported, for
//     software statements) Result.RegistrationSigningAlgorithms: two
//     lists, which need not agree. Unsigned UDAP metadata is never
//     trusted: without signed_metadata, or without trust anchors
//     (ErrNoTrustAnchors), this source fails. The anchors are those of
//     the request's trust community (Request.Community,
//     Config.Communities; Config.TrustAnchors is the community
//     DefaultCommunity), whose URI is sent as ?community= (UDAP IG
//     section 2.2). With Config.Revocation the chain is completed
//     through AIA and checked with OCSP and CRLs under the community's
//     hard or soft policy. A revoked certificate, an unknown status under
//     hard, or metadata signed under another community is a *TrustError:
//     discovery stops there, tries no other source and drops the cached
//     result.
//   - smart-configuration: GET {base}/.well-known/smart-configuration
//     (SMART App Launch 2): token_endpoint, with
//     token_endpoint_auth_methods_supported,
//     token_endpoint_auth_signing_alg_values_supported,
//     grant_types_supported and registration_endpoint.
//   - token: the generic oauth-uris "token" from the same /metadata
//     document as carequality-token (one discovery reads it once).
//
// # Precedence
//
// Sources are tried in the request's Order, and the first one that
// yields an absolute http(s) token URL wins. A source that fails (network
// error, 5xx, a document that is not what it should be, a token URL that
// is relative or not http(s), signed_metadata that does not verify) is
// recorded in Result.Attempts and the next one is tried. When none yields,
// Discover returns a *NoTokenURLError that lists every source tried and
// why, for operators.
//
// DefaultOrder is carequality-token, udap, smart-configuration, token:
// most specific first.
//
//  1. carequality-token: on a Cerner site the Carequality token URL is the
//     only right answer ("you must utilize the carequality-token URL");
//     its generic token URL belongs to a different authorization server
//     that does not accept Carequality client assertions.
//  2. udap: the only signed claim. A server that publishes verified UDAP
//     metadata says precisely where UDAP B2B token requests go, and
//     Result.UDAP tells the caller to send them the UDAP way.
//  3. smart-configuration: a small generic document whose token_endpoint
//     serves SMART Backend Services; it also advertises the signing
//     algorithms the server accepts.
//  4. token: the generic oauth-uris token of the CapabilityStatement, the
//     oldest and least specific claim, last.
//
// Config.Order changes the default for a Discoverer (and TokenEndpoint);
// Request.Order for one request.
//
// # Caching
//
// Results are cached per (FHIR base, order, override) for Config.TTL, on
// internal/cache (results.go is the policy on top of it).
// A lookup within Config.RefreshAhead of expiry starts one background
// refresh while callers keep getting the cached result; concurrent
// lookups share one fetch. When a refresh fails, the old result is served
// (marked Stale once expired) until Config.MaxStale past its expiry, and
// refreshing is retried with capped exponential backoff rather than on
// every lookup; a token URL taken from UDAP signed_metadata is not served
// past its expiry at all (no later than the metadata's exp: trusted only
// as checked). A refresh that would fall back to a less preferred source
// only because the preferred one failed counts as failed, until MaxStale
// past the old result's expiry (a UDAP one's too): a passing outage of
// /metadata must not move a Cerner server off its Carequality URL.
//
// A token URL, from any source, must be an absolute http(s) URL without
// user information or a fragment (RFC 6749 section 3.2). A document whose
// token URL is refused lends the result nothing else: not Result.UDAP
// (a verified UDAP document with a refused token URL does not make the
// server's token requests UDAP ones), nor its algorithms, scopes or
// registration endpoint.
//
// Documents are cached too, for the TTL: a server without UDAP answers
// its 404 once per TTL, however many results or failed lookups need it.
// Failed fetches and documents holding something unusable are not cached.
// Every request is bounded by the HTTP client's timeout, one whole
// discovery by three of them and a second, plus four of the revocation
// checker's fetch timeouts when it tells them (a revocation check still
// running then leaves the statuses it has not found unknown), and every
// body by Config.MaxBodyBytes; documents are parsed with encoding/json into typed
// structs that ignore unknown fields, and bad input yields an error naming
// the URL and the problem, never a panic.
package discovery
