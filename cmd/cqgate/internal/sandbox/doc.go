// Package sandbox runs a self-contained, loopback-only imitation of the
// servers cqgate talks to, so that development mode (cqgate -dev) and tests
// exercise cqgate's whole flow with no Vault and no internet:
//
//  1. a Carequality R4 directory (Sequoia sphd shape) that knows one
//     organization, OID, whose contained Endpoints include a FHIR REST
//     endpoint pointing at the sandbox FHIR server; it answers reads and
//     searches (name, _id, active, _count, paged with next links);
//  2. a Cerner/Oracle Health style FHIR R4 tenant (TenantID) whose
//     CapabilityStatement advertises two token URLs: the SMART "token" URL
//     in oauth-uris, and the Carequality token URL with its registration
//     endpoint in Cerner's carequality-oauth-uris extension (its 2020
//     shape);
//  3. a UDAP dynamic client registration endpoint (RegisterURL) that
//     verifies the software statement (x5c, signature, iss = sub = a URI
//     SAN, aud, lifetime, jti, grant and contact claims) and hands out
//     client ids;
//  4. a token endpoint at the carequality-token URL that really verifies
//     the client-assertion JWT (x5c certificate, signature, iss/sub/aud,
//     lifetime, jti replay) and issues opaque bearer tokens;
//  5. a "token" URL that always refuses, counting the calls, because a
//     gateway that sends a Carequality assertion there has fallen into the
//     trap Cerner's documentation warns about;
//  6. read and search for a few synthetic Patients and Observations,
//     embedded from data/*.json, behind the issued bearer tokens and
//     Cerner's insistence on an explicit JSON Accept header; searches
//     page with _count (and the sandbox's own _offset), their Bundles
//     carrying absolute self, first, previous and next links on FHIRBase;
//  6. a small FHIR Bulk Data 2.0 export of those resources: GET or POST
//     (Parameters) {FHIRBase}/$export, /Patient/$export and
//     /Group/sandbox-patients/$export with Prefer: respond-async answer
//     202 and an absolute Content-Location status URL; the status URL
//     answers 202 (X-Progress, Retry-After) for Options.ExportPolls polls,
//     then the manifest (requiresAccessToken true, output URLs on
//     FHIRBase); DELETE cancels. NDJSON files are served with Range
//     support behind the bearer token, except Observation files, which
//     answer a 307 to a second loopback listener (StorageURL) that
//     serves signed URLs and refuses any request carrying Authorization
//     (counted by StorageAuthRejects), as Oracle Health's storage does.
//
// Start generates a fresh RSA key and a self-signed certificate for the
// client id (Sandbox.Material) and trusts exactly that certificate, so the
// caller signs its assertions with Material and nothing else verifies.
//
// The sandbox is never on the production path: it refuses to listen on
// anything but a loopback address. Scopes are echoed back as granted but
// not enforced, and each Sandbox keeps all its state (replay cache, issued
// tokens, counters) to itself, so tests may run many in parallel.
//
//	sb, err := sandbox.Start(ctx, sandbox.Options{Logger: log})
//	if err != nil { ... }
//	defer sb.Close()
//	// point the directory client at sb.DirectoryURL with sb.APIKey, sign
//	// with sb.Material as client sb.ClientID, then ask for sb.OID.
package sandbox
