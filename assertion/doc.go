// Package assertion signs client-assertion JWTs (RFC 7523, as profiled by
// SMART Backend Services and UDAP B2B) with the organization's Carequality
// certificate and key, exchanges them for access tokens with the
// client_credentials grant, and caches those tokens so that one exchange
// serves every concurrent caller until shortly before the token expires.
package assertion
