// Package pkitest builds a certificate hierarchy inside tests (a root, an
// intermediate and leaves, with crypto/x509) and serves its revocation
// information on loopback: CRLs (x509.CreateRevocationList), an OCSP
// responder (golang.org/x/crypto/ocsp.CreateResponse) and the CA
// certificates for AIA caIssuers fetches. Certificates issued by a PKI
// point their CRL Distribution Points, OCSP server and issuing-certificate
// URLs at that server, so revocation checkers can be tested end to end:
// Revoke marks a certificate revoked, SetCRL and SetOCSP make an endpoint
// fail in a chosen way (down, garbage, huge, slow), and Hits counts the
// requests each endpoint served, for cache tests.
//
// Times in CRLs and OCSP responses come from the PKI's clock, so tests can
// move through nextUpdate with internal/clocktest. Nothing here is for
// production use.
package pkitest
