// Package e2e holds cqgate's end-to-end tests: the gateway exactly as
// cmd/cqgate assembles it, in front of a real, independently written OAuth
// server (ory/fosite, verifying private_key_jwt client assertions), R4 JSON
// and STU3 XML directory servers, a Vault that answers as Vault's KV v2 API
// does, and a FHIR server that accepts only tokens fosite issued.
package e2e
