package sandbox

import (
	"crypto/x509"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client assertion rules (SMART Backend Services, UDAP B2B).
const (
	// maxAssertionLifetime bounds exp - iat.
	maxAssertionLifetime = 300 * time.Second
	// clockSkew is how far in the future iat and nbf may be.
	clockSkew = 5 * time.Second
	// minJTILength is the shortest jti accepted: 16 characters leave
	// room for 96 bits of randomness in base64.
	minJTILength = 16
)

// assertionAlgorithms are the JWS algorithms accepted: UDAP's RS256
// (SHALL) and ES256, SMART's RS384 and ES384.
func assertionAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384}
}

// verifiedAssertion is what a valid client assertion established.
type verifiedAssertion struct {
	subject string
	jti     string
}

// verifyAssertion checks a client-assertion JWT the way a Carequality
// token endpoint would: the x5c leaf must be the trusted certificate and
// must verify the signature, iss and sub must be the client id, aud the
// TokenURL, exp in the future at most 300 s after iat, and the jti
// unused. A jti is remembered only once every other check has passed, so
// a rejected assertion can be fixed and resent.
func (s *Sandbox) verifyAssertion(raw string, now time.Time) (verifiedAssertion, *oauthError) {
	tok, err := jwt.ParseSigned(raw, assertionAlgorithms())
	if err != nil {
		return verifiedAssertion{}, invalidClient("assertion-malformed",
			"client_assertion is not a compact JWS signed with RS256, RS384, ES256 or ES384: %v", err)
	}
	if len(tok.Headers) != 1 {
		return verifiedAssertion{}, invalidClient("assertion-malformed", "client_assertion must carry exactly one signature")
	}
	h := tok.Headers[0]

	chains, err := h.Certificates(x509.VerifyOptions{
		Roots:       s.trustPool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	switch {
	case errors.Is(err, jose.ErrMissingX5cHeader):
		return verifiedAssertion{}, invalidClient("x5c-missing",
			"the JWT header has no x5c: it must carry the client's certificate (base64 DER, leaf first)")
	case err != nil:
		return verifiedAssertion{}, invalidClient("x5c-untrusted",
			"the x5c leaf certificate is not the certificate registered for client %q: %v", s.ClientID, err)
	case len(chains) == 0 || !chains[0][0].Equal(s.trusted):
		return verifiedAssertion{}, invalidClient("x5c-untrusted",
			"the x5c leaf certificate is not the certificate registered for client %q", s.ClientID)
	}
	if h.KeyID == "" {
		return verifiedAssertion{}, invalidClient("kid-missing", "the JWT header has no kid")
	}
	if err := tok.Claims(s.trusted.PublicKey); err != nil {
		return verifiedAssertion{}, invalidClient("signature-invalid",
			"the %s signature does not verify with the public key of the x5c certificate", h.Algorithm)
	}

	// The signature is verified: the payload may be decoded.
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return verifiedAssertion{}, invalidClient("claims-malformed", "the JWT claims are malformed: %v", err)
	}
	if oerr := s.checkClaims(c, now); oerr != nil {
		return verifiedAssertion{}, oerr
	}
	if !s.state.useJTI(c.ID, c.Expiry.Time(), now) {
		return verifiedAssertion{}, invalidClient("jti-replayed",
			"jti %q was already used; every client assertion needs a fresh jti", c.ID)
	}
	return verifiedAssertion{subject: c.Subject, jti: c.ID}, nil
}

// checkClaims checks every registered claim except jti reuse.
func (s *Sandbox) checkClaims(c jwt.Claims, now time.Time) *oauthError {
	switch {
	case c.Issuer != s.ClientID:
		return invalidClient("iss-mismatch", "iss is %q, want the client id %q", c.Issuer, s.ClientID)
	case c.Subject != s.ClientID:
		return invalidClient("sub-mismatch", "sub is %q, want the client id %q", c.Subject, s.ClientID)
	case len(c.Audience) != 1 || c.Audience[0] != s.TokenURL:
		return invalidClient("aud-mismatch", "aud is %q, want exactly the token URL %q", []string(c.Audience), s.TokenURL)
	case c.Expiry == nil:
		return invalidClient("exp-missing", "exp is required")
	}
	exp := c.Expiry.Time()
	if !now.Before(exp) {
		return invalidClient("assertion-expired", "the assertion expired at %s (now %s)",
			exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if c.IssuedAt != nil {
		iat := c.IssuedAt.Time()
		if iat.After(now.Add(clockSkew)) {
			return invalidClient("iat-in-future", "iat %s is in the future (now %s)",
				iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if lifetime := exp.Sub(iat); lifetime > maxAssertionLifetime {
			return invalidClient("lifetime-too-long", "exp - iat is %s, at most %s is allowed",
				lifetime, maxAssertionLifetime)
		}
	} else if exp.After(now.Add(maxAssertionLifetime + clockSkew)) {
		// Without iat (Cerner's 2019 sample script sent none) exp may
		// be at most 300 s ahead, as SMART Backend Services puts it.
		return invalidClient("lifetime-too-long", "exp %s is more than %s in the future (now %s, no iat)",
			exp.UTC().Format(time.RFC3339), maxAssertionLifetime, now.UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(clockSkew)) {
		return invalidClient("nbf-in-future", "the assertion is not valid before %s",
			c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	switch {
	case c.ID == "":
		return invalidClient("jti-missing", "jti is required")
	case len(c.ID) < minJTILength:
		return invalidClient("jti-too-short", "jti has %d characters, at least %d are required", len(c.ID), minJTILength)
	}
	return nil
}

// trustPool holds the one certificate the token endpoint trusts.
func (s *Sandbox) trustPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.trusted)
	return pool
}
