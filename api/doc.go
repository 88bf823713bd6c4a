// Package api is cqgate's HTTP surface, a gin router:
//
//	ANY /fhir/{oid}/{fhir-path}          forwarded to the organization's FHIR server
//	GET /directory/Organization/{oid}    what the directory and discovery know about an OID
//	GET /healthz                         the process is alive
//	GET /readyz                          the gateway can serve (signing key loaded)
//
// Every error is a FHIR OperationOutcome with the status the failure
// deserves (see package outcome); nothing answers with a Go error string
// or a panic.
package api
