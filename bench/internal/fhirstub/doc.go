// Package fhirstub is the benchmark's stand-in for everything cqgate talks
// to: a Carequality-style R4 directory, and, per organization, a FHIR
// server's CapabilityStatement, its token endpoint and a fast Patient read.
// It counts what it is asked, so that a benchmark can check that a burst of
// first requests cost exactly one directory lookup, one metadata fetch and
// one token exchange, and it serves those counts as JSON at /_stats.
//
// Routes, for any OID under Config.OIDPrefix:
//
//	GET  /directory/Organization/{oid}   R4 Organization; FHIR REST endpoint http://{host}/o/{oid}/fhir
//	GET  /o/{oid}/fhir/metadata          CapabilityStatement; oauth-uris token and carequality-token
//	POST /o/{oid}/token                  client_credentials with a client assertion → random access token
//	GET  /o/{oid}/fhir/Patient/{id}      ~2 KB Patient JSON; needs "Authorization: Bearer <token of oid>"
//	GET  /_stats                         the counters as JSON
//
// The token endpoint checks the request's shape (grant type, assertion
// type, a three-part JWT whose aud is this endpoint) but not the
// assertion's signature: it measures cost, not security. Its tokens live
// Config.TokenLifetime (an hour by default); a Patient read with an
// expired token is refused and counted.
//
// For the soak, Config.Faults injects failures into Patient reads (a 503,
// a connection reset, a 401 for a valid token), marks the injected
// answers with X-Fhirstub-Injected, and records, per X-Request-Id, every
// attempt of the requests that had a failed one (Server.Records), so that
// a client's answers can be matched exactly with what was injected.
// Without faults nothing is recorded and the hot path takes no lock.
package fhirstub
