// Package jwks publishes the public keys cqgate signs with as a JSON Web
// Key Set (RFC 7517), for partners that fetch a client's keys by URL: the
// SMART Backend Services "jku" header, Epic's JWK Set URL for backend
// apps, and the UDAP IG's experimental jku alternative to x5c.
//
// A Set asks each identity's KeyProvider (a *keys.Holder) for its current
// material whenever the set is built and lists one key per identity: kty
// and the public parameters, kid (the material's KeyID, the RFC 7638
// thumbprint the signer puts in its kid header), alg, use "sig", x5c (the
// certificate chain, leaf first) and x5t#S256. Identities that share one
// key share its entry, which then carries alg only if they all sign with
// the same one, and x5c and x5t#S256 only if they hold the same
// certificate for it (a retired key's entry too, while it stays listed). A key that stops being
// current (a rotation) stays listed for Options.Overlap after the Set
// first saw it retired, so that a partner holding an assertion signed just
// before the rotation, or a cached copy of the set, can still verify it.
// Only public keys are ever listed: the set is built from public halves,
// and a key that would marshal private parameters is refused.
//
// A Set is an http.Handler for GET and HEAD: application/json,
// Cache-Control "public, max-age=N" (Options.MaxAge), a strong ETag and
// 304 for a matching If-None-Match. Before any identity has a key it
// answers 503 with an OperationOutcome and Cache-Control no-store, so no
// partner caches an empty set. Retired keys are remembered in memory
// only: after a restart, the previous key is no longer listed.
package jwks
