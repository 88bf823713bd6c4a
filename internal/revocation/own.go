package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"time"
)

// OwnStatus reports on cqgate's own signing certificate, for a metric and
// the /readyz detail.
type OwnStatus struct {
	// Status is Revoked when the leaf or an intermediate is revoked,
	// Unknown when some status could not be found, Good otherwise.
	Status  Status
	Subject string
	Serial  string
	// NotAfter is the leaf's expiry, DaysToExpiry the whole days left
	// until then (negative once expired), Expiring whether that is
	// within the warning window Own was given.
	NotAfter     time.Time
	DaysToExpiry int
	Expiring     bool
	// Certificates are the per-certificate findings, leaf first.
	Certificates []CertStatus
	// Err is the *RevokedError or *UnavailableError behind the status.
	Err       error
	CheckedAt time.Time
}

// Problem describes what is wrong, for /readyz: the revocation, the
// coming expiry, or "" when nothing is (an unknown status is not a
// problem: it is in Err).
func (s OwnStatus) Problem() string {
	switch {
	case s.Status == Revoked:
		return fmt.Sprintf("the signing certificate %q is revoked: %v", s.Subject, s.Err)
	case s.DaysToExpiry < 0:
		return fmt.Sprintf("the signing certificate %q expired on %s", s.Subject, s.NotAfter.UTC().Format(time.RFC3339))
	case s.Expiring:
		return fmt.Sprintf("the signing certificate %q expires in %d days (%s)", s.Subject, s.DaysToExpiry, s.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// Own checks cqgate's own certificate chain (keys.Material.Chain: leaf
// first, the root possibly absent). Each certificate is checked against
// the next one in the chain, or its AIA caIssuers certificate when the
// chain ends before a self-signed root; a self-signed certificate is an
// anchor and is not checked. warn is the expiry warning window.
func (c *Checker) Own(ctx context.Context, chain []*x509.Certificate, warn time.Duration) OwnStatus {
	now := c.cfg.Clock()
	st := OwnStatus{Status: Unknown, CheckedAt: now}
	if len(chain) == 0 || chain[0] == nil {
		st.Err = errors.New("revocation: no signing certificate")
		return st
	}
	leaf := chain[0]
	st.Subject, st.Serial, st.NotAfter = leaf.Subject.String(), serialHex(leaf), leaf.NotAfter
	st.DaysToExpiry = int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24))
	st.Expiring = leaf.NotAfter.Sub(now) <= warn

	unknown := false
	var firstUnknown error
	limit := len(chain) + c.cfg.MaxAIAFetches
	for i := 0; i < len(chain) && i < limit; i++ {
		cert := chain[i]
		if cert == nil || selfSigned(cert) {
			break
		}
		var issuer *x509.Certificate
		if i+1 < len(chain) && chain[i+1] != nil && cert.CheckSignatureFrom(chain[i+1]) == nil {
			issuer = chain[i+1]
		} else {
			issuer = c.aiaIssuer(ctx, cert)
			if issuer == nil {
				cs := CertStatus{Subject: cert.Subject.String(), Serial: serialHex(cert), Status: Unknown,
					Err: &UnavailableError{Subject: cert.Subject.String(), Serial: serialHex(cert),
						Attempts: []Attempt{{Err: errors.New("its issuer is not in the chain and could not be fetched through AIA")}}}}
				st.Certificates = append(st.Certificates, cs)
				unknown, firstUnknown = true, cs.Err
				break
			}
			chain = append(chain[:i+1:i+1], issuer)
		}
		cs := c.status(ctx, cert, issuer)
		st.Certificates = append(st.Certificates, cs)
		switch cs.Status {
		case Revoked:
			st.Status, st.Err = Revoked, cs.Err
			return st
		case Unknown:
			if !unknown {
				unknown, firstUnknown = true, cs.Err
			}
		}
	}
	if unknown {
		st.Err = firstUnknown
		return st
	}
	st.Status = Good
	return st
}

// aiaIssuer fetches cert's issuer through AIA, or returns nil.
func (c *Checker) aiaIssuer(ctx context.Context, cert *x509.Certificate) *x509.Certificate {
	for _, u := range fetchable(cert.IssuingCertificateURL) {
		ic, err := c.issuerCert(ctx, u)
		if err == nil && cert.CheckSignatureFrom(ic) == nil {
			return ic
		}
	}
	return nil
}

// selfSigned reports whether cert is its own issuer (a trust anchor, or
// a development certificate).
func selfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) &&
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}
