// Package revocation checks whether the certificates of a verified chain
// have been revoked, as the UDAP trust model requires for the chain behind
// a server's signed_metadata and any partner certificate cqgate relies on.
//
// A Checker looks at every certificate of a chain but the trust anchor:
// first at its OCSP responders (Authority Information Access, RFC 6960),
// then at its CRL Distribution Points (RFC 5280). An OCSP answer counts
// only when it is signed by the issuer, or by a responder certificate the
// issuer issued with the OCSP-signing extended key usage, identifies the
// certificate (its serial, and its issuer's name and key hashes: RFC 6960
// §3.2), has a nextUpdate (RFC 5019 §4) and is current (thisUpdate not
// in the future, nextUpdate not passed). A CRL counts only when its
// signature verifies with the issuer's key, its issuer name is the
// certificate's issuer, it is current, it is a complete CRL (not a delta
// CRL) with no critical extension left unprocessed, nor any of its
// entries (RFC 5280 §5.2, §5.3; an indirect CRL's certificate issuer is
// refused), and its Issuing Distribution Point, if any, covers the
// certificate (user or CA certificates, the distribution point; CRLs
// only of some reasons, indirect CRLs and attribute certificate CRLs are
// refused). The first definite answer wins: "good" or "revoked". An OCSP
// "unknown", a fetch that fails or does not end before the context's
// deadline, an answer that does not count, or a certificate naming
// neither source leaves the status unknown.
//
// What unknown means is the Policy, chosen per trust community: Hard
// refuses (an *UnavailableError, which wraps ErrUnavailable), Soft lets
// the chain pass and refuses only a definite revocation (a *RevokedError,
// which wraps ErrRevoked). The zero Policy is Hard.
//
// Answers are cached until their nextUpdate (never longer than
// Config.MaxCacheAge; a CRL or OCSP answer without nextUpdate is refused),
// failures for Config.FailureTTL, so a partner's CRL server is asked
// once per CRL period, not once per request; concurrent checks of one
// certificate share one fetch, and none starts past the context's
// deadline. Verify completes a chain whose intermediates are missing
// through AIA caIssuers URLs (at most Config.MaxAIAFetches certificates
// per chain).
//
// Every fetch goes through Config.Client (cqgate passes one whose dialer
// carries the SSRF guard), with a timeout and a bounded body: CRLs,
// OCSP responses and certificates larger than their limits are refused
// without being read in full. Only http and https URLs are fetched (ldap
// distribution points are skipped).
//
// Own reports on cqgate's own signing certificate: good, revoked or
// unknown, and the days left until it expires, for a metric and the
// /readyz detail.
package revocation
