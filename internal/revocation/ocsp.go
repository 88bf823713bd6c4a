package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocsp asks the responder at u for cert's status, from the cache or over
// HTTP POST (RFC 6960 appendix A.1).
func (c *Checker) ocsp(ctx context.Context, u string, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	key := "ocsp\x00" + u + "\x00" + fingerprint(issuer) + "\x00" + cert.SerialNumber.String()
	v, err := c.cached(ctx, key, func(ctx context.Context) (any, time.Time, error) {
		req, err := ocsp.CreateRequest(cert, issuer, nil)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("building the OCSP request: %w", err)
		}
		body, err := c.fetch(ctx, "POST", u, req, "application/ocsp-request", c.cfg.MaxOCSPBytes)
		if err != nil {
			return nil, time.Time{}, err
		}
		r, err := c.parseOCSP(body, cert, issuer)
		if err != nil {
			return nil, time.Time{}, err
		}
		return r, c.until(c.cfg.Clock(), r.NextUpdate), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*ocsp.Response), nil
}

// parseOCSP parses a response and checks that it answers for cert, is
// signed by issuer or by a responder certificate issuer delegated OCSP
// signing to (RFC 6960 §4.2.2.2), and is current.
func (c *Checker) parseOCSP(body []byte, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(body, cert, nil) // signatures checked below
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("the responder answered %q", re.Status.String())
		}
		return nil, fmt.Errorf("not an OCSP response for the certificate: %w", err)
	}
	if r.SerialNumber == nil || r.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		return nil, errors.New("the OCSP response is for another certificate")
	}
	switch rc := r.Certificate; {
	case rc == nil || bytes.Equal(rc.Raw, issuer.Raw):
		if err := r.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("the OCSP response's signature does not verify with the issuer's key: %w", err)
		}
	default:
		if err := rc.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("the OCSP responder certificate %q was not issued by the certificate's issuer: %w", rc.Subject, err)
		}
		if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, fmt.Errorf("the OCSP responder certificate %q lacks the OCSP-signing extended key usage", rc.Subject)
		}
		now := c.cfg.Clock()
		if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
			return nil, fmt.Errorf("the OCSP responder certificate %q is outside its validity period", rc.Subject)
		}
		// ParseResponseForCert checked the response's signature by rc.
	}
	if err := c.current("the OCSP response", r.ThisUpdate, r.NextUpdate); err != nil {
		return nil, err
	}
	return r, nil
}
