// Package tenant turns an organization OID into everything cqgate needs to
// reach that organization's FHIR server: the FHIR base from the directory
// (or a static entry), the token URL from discovery (or configuration), and
// the client identity, scope and signing algorithm to use (and, for UDAP
// registration, the algorithms the registration endpoint accepts:
// Tenant.RegistrationAlgorithms). It is the one place where directory,
// discovery and per-organization configuration meet.
package tenant
