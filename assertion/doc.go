// Package assertion is cqgate's token engine. It signs client-assertion
// JWTs (RFC 7523, as profiled by SMART Backend Services and UDAP B2B) with
// the organization's Carequality certificate and key, exchanges them for
// access tokens with the client_credentials grant, caches those tokens,
// and registers cqgate with UDAP dynamic client registration.
//
// # Signing
//
// A Signer signs with the current keys.Material through its
// JOSESigner, so an in-memory key and a remote signer (Vault transit)
// are used alike. Every JWT carries alg, typ "JWT", kid and x5c (the
// chain, leaf first). The algorithm follows the key unless configured
// (RSA: RS384, else RS256; P-256: ES256; P-384: ES384) and is negotiated
// with what the token endpoint advertises: see Negotiate. iat and nbf
// are backdated by Signer.Skew and exp − iat never exceeds MaxLifetime
// (300 s). Claims.B2B adds the UDAP hl7-b2b extension object (B2B).
//
// # Exchanging
//
// An Exchanger POSTs grant_type=client_credentials with a fresh assertion
// (and udap=1 for UDAP), follows no redirects, and keeps the RFC 6749
// error fields and X-Request-Id of failures in a *RetrieveError. It
// retries 5xx answers and transport failures with capped, fully jittered
// exponential backoff, signing a new assertion for each attempt, and
// never retries an OAuth error such as invalid_client (see RetryPolicy).
// Exchanger.Claims are the claims it signs (jku included), for a preview
// of what is sent; they refuse an hl7-b2b context that cannot be sent
// (B2B.Validate, or ValidateTEFCA with the certificate's exchange
// purpose when Request.TEFCA) with a *B2BError, cqgate's
// misconfiguration.
//
// # Caching
//
// A Cache keeps tokens per Key (token URL, client id, scope, identity
// and the digest of the B2B context) and decides when a new one may be
// obtained: one exchange is shared by concurrent callers, busy tokens are
// refreshed in the background before anyone waits, exchanges for a Key
// are at least MinInterval apart (a 401 storm gets ErrThrottled, not a
// stream of exchanges), and a failing token endpoint is not hammered
// (failures are held, doubling). The rules are spelled out on Cache.
//
// # Registering
//
// A Registrar signs a UDAP software statement and registers it at a
// registration endpoint, returning the client_id to use there.
//
// # Secrets
//
// Access tokens, client assertions and software statements never appear
// in an error, a String or GoString result, or a log value of this
// package: Token formats itself without the token, and server text kept
// in errors is redacted of the assertion and the access token.
package assertion
