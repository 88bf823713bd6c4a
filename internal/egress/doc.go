// Package egress decides which addresses cqgate may connect to on a
// tenant's behalf. Directory entries and discovery documents come from
// outside: an endpoint address pointing at loopback, a private network or
// a cloud metadata service (169.254.169.254) would turn cqgate, which holds
// a system account, into a way into its own network (SSRF). So FHIR bases
// and token URLs must be https and public unless the organization is
// explicitly allowed private addresses (a sandbox).
//
// The check runs twice: CheckURL on the URL as soon as it is known, for a
// clear error before any network call, and Guard at connect time, on the
// IP address DNS actually returned, so that a public-looking name resolving
// to a private address is refused as well.
package egress
