// Package fositetest runs a real OAuth 2.0 authorization server, built from
// github.com/ory/fosite v0.49.0, inside tests, so that integration tests can
// show an independently written server accepts the private_key_jwt client
// assertions (RFC 7523) that cqgate signs.
//
// New starts an httptest server whose token endpoint is a fosite
// OAuth2Provider with the client_credentials grant and token introspection
// (fosite's HMAC access token strategy, fosite's in-memory storage). Each
// Client is a *fosite.DefaultOpenIDConnectClient with
// token_endpoint_auth_method "private_key_jwt", one
// token_endpoint_auth_signing_alg, a JWKS holding its public key (kid =
// KeyID, use "sig"), grant type client_credentials and its scopes. Every
// check of the assertion is fosite's own
// (Fosite.DefaultClientAuthenticationStrategy, client_authentication.go);
// this package only grants the scopes fosite allowed, counts requests and
// records failures. Errors are written by fosite (JSON "error",
// "error_description"; debug text is not sent). Every response carries a
// fresh UUID in X-Request-Id, like Cerner, unless Config.OmitRequestID.
//
// # What fosite v0.49.0 requires of the token request
//
// Form (application/x-www-form-urlencoded POST, non-empty):
//   - grant_type=client_credentials.
//   - client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
//     and client_assertion=<JWS compact serialization>.
//   - client_id is optional. Without it the client is looked up by the
//     assertion's sub; with it, by client_id, and iss and sub must equal it.
//     An Authorization header is ignored for assertion authentication.
//   - scope (space separated) is optional; each scope must be allowed by the
//     client's registered scopes under the scope strategy (default
//     SMARTScopeStrategy), else 400 invalid_scope. Allowed scopes are granted
//     and returned in "scope".
//
// JOSE header:
//   - alg must equal the client's registered algorithm exactly, else 401
//     invalid_client. RS256/384/512, PS256/384/512 and ES256/384/512 are
//     supported; HS* and none are refused.
//   - kid is optional. If present it must name a key in the client's JWKS,
//     else 400 invalid_request ("signing key with kid ... could not be
//     found"); if absent, any registered key of the right type with use
//     "sig" is tried.
//   - typ is not checked (absent, "JWT" or anything else is fine).
//   - x5c is harmless but, if present, must be standard (not URL-safe)
//     base64 DER certificates that parse, else 401 invalid_client
//     ("Unable to verify the integrity"): go-jose v3 parses it while reading
//     the header. It is neither chain-verified nor compared with the JWKS key.
//
// Claims:
//   - iss and sub must both equal the client_id (401 invalid_client).
//   - aud must contain the token endpoint URL exactly (Server.TokenURL,
//     including scheme, host, port and path); a string or an array
//     containing it both work (401 invalid_client).
//   - exp is required (a missing exp gives 401 invalid_client). There is no
//     maximum lifetime and no clock-skew leeway: it must be >= now.
//   - jti is required and non-empty (401 invalid_client). It is remembered
//     until exp; reuse gives 400 "jti_known". It is stored before the aud
//     check, so an assertion rejected for its aud has still used its jti.
//   - iat and nbf are optional, but if present must be <= now, with no
//     leeway (a signer whose clock runs ahead is rejected).
//   - Quirk: an expired exp, or an iat/nbf in the future, makes fosite
//     return a plain error that it answers as HTTP 500
//     {"error":"error","error_description":"The error is unrecognizable"},
//     not invalid_client. Failures() shows the cause ("Token is expired",
//     "Token used before issued", "Token is not valid yet").
//   - Order of checks: client lookup (unknown client: 401 invalid_client),
//     auth method, alg, key (kid), signature (401 invalid_client), exp/iat/nbf,
//     iss, sub, jti, aud.
//
// The successful response is {"access_token", "token_type":"bearer",
// "expires_in" (seconds, TokenLifetime rounded down, so 569 or 570 for the
// 570s default), "scope"}.
//
// # What fosite ignores
//
// fosite knows nothing of UDAP: it ignores the udap=1 form parameter and
// the assertion's "extensions" claim (hl7-b2b), so it accepts UDAP B2B
// token requests as plain RFC 7523 ones. Assertions and Forms record what
// arrived, so tests can check the B2B context and udap=1 reached the
// server. cqgate_test.go shows fosite accepting the assertions cqgate's
// assertion package signs with RS256, RS384, ES256 and ES384 (configured
// or negotiated), rejecting a replayed jti, and answering an expired one
// with the 500 described above, which cqgate retries with fresh
// assertions a bounded number of times.
//
// # Access tokens
//
// Validate and ValidateRequest introspect with fosite (valid, unexpired,
// not revoked, optionally granted given scopes); Protect wraps a fake
// resource server so it answers 401 without a valid bearer token. Revoke and
// ExpireAll invalidate tokens (so a test can make its fake FHIR server
// answer 401); SetLifetime changes the lifetime of tokens issued later.
package fositetest
