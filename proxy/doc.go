// Package proxy forwards FHIR requests to an organization's FHIR server
// with a valid access token. It is an httputil.ReverseProxy (responses
// stream through) whose Transport adds "Authorization: Bearer" and, when
// the FHIR server answers 401, drops the refused token, gets a new one and
// retries once if the request body can be replayed. The caller's own
// Authorization and Cookie headers never reach the tenant.
package proxy
