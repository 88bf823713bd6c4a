// Package proxy forwards FHIR requests to an organization's FHIR server
// with a valid access token. Its forwarder is its own, on http.Transport
// (forward.go, serve): one outbound request built per call (the caller's
// headers but hop-by-hop and caller-only ones, cqgate's
// "Authorization: Bearer"), sent through authTransport (transport.go),
// which, when the FHIR server answers 401, drops the refused token, gets a
// new one and retries once if the request body can be replayed; then the
// answer modified (modifyResponse), its header written, its body streamed
// through pooled buffers (flushed after every write when of unknown
// length or an event stream) and its trailers passed on (tenant-only ones
// dropped, token echoes redacted). Interim (1xx) answers are not passed
// on; a body that breaks off after the header went out aborts the
// response (http.ErrAbortHandler); the caller going away cancels the
// outbound request. The caller's own Authorization and Cookie headers
// never reach the tenant. A failure answered here (errorHandler) is an
// OperationOutcome through outcome.WriteErrorFor, its issue type on the
// request's span and in its audit record, as the router's; the
// partner's latency until its response header goes to
// Config.Observer.
//
// Every URL cqgate hands back leads back to cqgate (public.go, bulk.go):
// the answer's JSON and XML bodies and its Location, Content-Location
// and Link headers pass through a fhirurl.Rewriter from the tenant's FHIR base to
// {public}/fhir/{oid}, the public base coming from PublicBase
// (server.public_url, X-Forwarded-* from trusted proxies, or the
// request's own validated Host); one Rewriter per (FHIR base, public
// base) is kept. cqgate asks the tenant for gzip so it can always
// rewrite, and answers in identity coding.
//
// Bulk Data: a completion manifest's file URLs on other origins become
// sealed links, {public}/fhir/{oid}/$cqgate-download/{sealed} (Links:
// AES-GCM, the OID as associated data), so a caller can only make cqgate
// fetch URLs cqgate handed out. Such a file gets the token only when the
// manifest said requiresAccessToken and its URL is the same party as the
// FHIR base (tenant.SameParty). A GET redirected to another origin (a
// storage bucket) is followed here, up to three hops, without the token
// or the caller's headers; callers never see storage URLs. Every fetch is
// under the egress guard. Kick-off, completion and each download are
// added to the request's audit record (audit.FromContext).
//
// A 202's status URL (Content-Location, or Location; a kick-off, any
// Prefer: respond-async request, a poll) that the rewriter did not map,
// being outside the FHIR base, becomes a sealed status link of the same
// form (bulkstatus.go; Link.Status, sealed, so that neither kind of link
// serves as the other). It takes GET and DELETE, and is forwarded as a
// FHIR request to the exact status URL (the caller's headers but
// caller-only ones), with the token when that URL is the same party as
// the FHIR base; its answer is a FHIR answer, a manifest sealed and
// audited as a poll under the base is. A status URL cqgate cannot fetch
// is removed from the 202, which still goes on, and logged by its origin.
// A manifest's own links (link[].url, the next page of a manifest the
// server splits) outside the base become status links the same way.
package proxy
