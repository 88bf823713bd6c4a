// Package udaptest runs a UDAP dynamic client registration endpoint (HL7
// UDAP Security IG, registration.md) inside tests, so that tests can show
// an independently written server accepts the software statements cqgate
// signs. It does not use cqgate's signing code.
//
// New starts an httptest server whose registration endpoint (default path
// /register) takes a POST with Content-Type application/json and the body
// {"software_statement": "<JWS>", "certifications": [...], "udap": "1"}
// and checks, with go-jose v4:
//
//   - the JWS alg is RS256, RS384, ES256 or ES384 (with Config.Algorithms
//     set, one of those, as a server advertising them as
//     registration_endpoint_jwt_signing_alg_values_supported would ask)
//     and the header carries x5c (standard base64 DER, leaf first); the
//     signature verifies with the leaf's public key; with Config.Roots
//     set, the chain verifies to those roots (intermediates from x5c);
//   - iss is non-empty, equals sub, and is a URI subject alternative name
//     of the leaf;
//   - aud is the registration URL exactly (string or array);
//   - exp and iat are present, exp − iat ≤ 300 s, exp is in the future
//     and iat not more than Leeway in the future;
//   - jti is non-empty and not seen before;
//   - client_name is non-empty, contacts holds a mailto: URI,
//     token_endpoint_auth_method is "private_key_jwt", scope is
//     non-empty, and grant_types is ["client_credentials"] (or empty, to
//     cancel an existing registration).
//
// A new registration is answered 201 with a fresh UUID client_id and the
// registered metadata (RFC 7591 §3.2.1); a registration with an iss that
// is already registered modifies it and is answered 200 with the same
// client_id; an empty grant_types cancels it (200, grant_types []).
// Failures are RFC 7591 §3.2.2 errors: 400 with invalid_software_statement
// or invalid_client_metadata and an error_description. Every response
// carries a fresh UUID in X-Request-Id. FailNext makes the next request
// fail as told, for client error-handling tests.
package udaptest
