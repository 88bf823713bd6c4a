// Package directory resolves Carequality organization OIDs to what the
// Carequality directory knows about them: name, active flag and the
// contained Endpoints, among which the organization's FHIR REST base URL.
//
// Two directory flavours are spoken: the current R4 directory (standard
// FHIR R4 JSON, API key in an "Authorization: api-key" header or the
// _apiKey query parameter) and the legacy STU3 directory (FHIR STU3 XML,
// fetched with apikey and _format=xml because its JSON output is not
// standard FHIR JSON). A Resolver puts static per-OID entries from
// configuration in front of a directory client, caches answers and makes
// concurrent lookups of one OID share one directory request.
package directory
