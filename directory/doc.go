// Package directory resolves Carequality organization OIDs to what the
// Carequality directory knows about them: name, active flag and the
// contained Endpoints, among which the organization's FHIR REST base URL
// (Organization.FHIREndpointFor picks one by FHIR version preference).
//
// Two directory flavours are spoken: the current R4 directory (standard
// FHIR R4 JSON, API key in an "Authorization: api-key" header or the
// _apiKey query parameter) and the legacy STU3 directory (FHIR STU3 XML,
// fetched with apikey and _format=xml because its JSON output is not
// standard FHIR JSON). Both clients read one organization by OID
// (Fetcher) and search by name, OID and active flag a page at a time
// (Searcher), with an opaque cursor for the next page that never holds
// the API key and is validated when it comes back. The key is a string
// or comes from an APIKeySource such as Vault; it never appears in
// errors. Failed requests are retried when that can help (RetryPolicy:
// never on a 403), within the caller's deadline.
//
// A Resolver puts static per-OID entries from configuration in front of
// a directory client, caches answers, makes concurrent lookups of one OID
// share one directory request, remembers "not found" for a while, and
// serves an expired answer marked Stale while the directory fails. It
// keeps each organization compactly (record.go: its strings in one
// allocation, its endpoints' codes shared across organizations); an
// Entry reads that form, and Entry.Organization builds the public one.
//
// The parsers bound a document's size and nesting and reject DOCTYPEs;
// bad input is an error, never a panic (see the fuzz targets).
package directory
