// Package callerauth decides who may use cqgate: inbound caller
// authentication and the per-caller authorization policy.
//
// cqgate holds a system account that can read every record of every
// organization it reaches, so every FHIR request is first authenticated
// (who is calling?) and then authorized (may this caller make this request
// to this organization?).
//
// An Authenticator turns an *http.Request into an *Identity:
//
//   - None: every request is the caller "anonymous". Only safe when
//     nothing but the local pod can reach the listener (a sidecar bound to
//     loopback); CheckListen refuses it on any other address unless forced.
//   - APIKeys: the caller sends "Authorization: Bearer <key>" or
//     "X-API-Key: <key>". Only SHA-256 hashes of the keys are configured;
//     the presented key is hashed, looked up and compared in constant time.
//     The set can be replaced atomically (Replace) or reloaded from a
//     Source such as a Vault KV secret (Refresh), keeping the old set when
//     loading fails.
//   - MTLS: the TLS server (see LoadServerTLS) requires a client
//     certificate and verifies it against the client CAs; the caller's name
//     is the verified leaf certificate's first URI SAN, first DNS SAN or
//     subject common name.
//
// Authentication failures wrap ErrUnauthenticated (no credentials) or
// ErrBadCredentials (credentials that are wrong or malformed); both are
// answered with 401 and the WWW-Authenticate value from Challenge. A
// presented key never appears in an error, log entry or String output.
//
// A Policy maps caller names to Rules: which organizations (exact OIDs,
// "*", or arc-boundary prefixes such as "2.16.840.1.113883.3.*"), which
// HTTP methods (read-only by default), which SMART scopes and which
// purposes of use the caller may use. Authorize returns nil or a
// *DeniedError naming the configuration rule that denied the request
// ("callers.billing-svc.organizations"), answered with 403. Patterns are
// compiled once by NewPolicy; Authorize does not allocate when it allows.
package callerauth
