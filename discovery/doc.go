// Package discovery finds the OAuth token URL of a FHIR server from what
// the server advertises about itself. Today that is the CapabilityStatement
// at {fhir_base}/metadata, whose rest[].security extension
// "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
// lists the token URL; when it also lists a "carequality-token" URL
// (Cerner's Carequality form), that one wins. Results are cached per FHIR
// base and concurrent lookups share one request.
package discovery
