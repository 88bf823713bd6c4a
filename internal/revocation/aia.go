package revocation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Verify verifies leaf as leaf.Verify(opts) does, but when no chain to
// opts.Roots can be built because an intermediate is missing, fetches it
// from the Authority Information Access caIssuers URL of the certificate
// the chain stopped at, and tries again: at most Config.MaxAIAFetches
// certificates, each at most Config.MaxCertBytes (DER or PEM; PKCS #7
// bundles are not read). A fetched certificate only ever joins the
// intermediates, never the roots. The error is x509's, with what the AIA
// fetches found appended.
func (c *Checker) Verify(ctx context.Context, leaf *x509.Certificate, opts x509.VerifyOptions) ([][]*x509.Certificate, error) {
	if leaf == nil {
		return nil, errors.New("revocation: no certificate to verify")
	}
	if opts.Intermediates == nil {
		opts.Intermediates = x509.NewCertPool()
	} else {
		opts.Intermediates = opts.Intermediates.Clone()
	}
	if opts.CurrentTime.IsZero() {
		opts.CurrentTime = c.cfg.Clock()
	}
	tried := map[string]bool{}
	var notes []string
	for fetched := 0; ; {
		chains, err := leaf.Verify(opts)
		if err == nil {
			return chains, nil
		}
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) || fetched >= c.cfg.MaxAIAFetches {
			return nil, withNotes(err, notes, fetched >= c.cfg.MaxAIAFetches)
		}
		stuck := ua.Cert
		if stuck == nil {
			stuck = leaf
		}
		progress := false
		for _, u := range fetchable(stuck.IssuingCertificateURL) {
			if tried[u] || fetched >= c.cfg.MaxAIAFetches {
				continue
			}
			tried[u] = true
			fetched++
			ic, ferr := c.issuerCert(ctx, u)
			if ferr != nil {
				notes = append(notes, fmt.Sprintf("AIA %s: %v", u, ferr))
				continue
			}
			if !ic.IsCA {
				notes = append(notes, fmt.Sprintf("AIA %s: not a CA certificate", u))
				continue
			}
			opts.Intermediates.AddCert(ic)
			progress = true
			break
		}
		if !progress {
			if len(notes) == 0 {
				notes = append(notes, fmt.Sprintf("certificate %q names no AIA caIssuers URL to fetch its issuer from", stuck.Subject))
			}
			return nil, withNotes(err, notes, false)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("revocation: %w", err)
		}
	}
}

func withNotes(err error, notes []string, limit bool) error {
	if limit {
		notes = append(notes, "AIA fetch limit reached")
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, joinNotes(notes))
}

func joinNotes(notes []string) string {
	s := ""
	for i, n := range notes {
		if i > 0 {
			s += "; "
		}
		s += n
	}
	return s
}

// issuerCert fetches one certificate from an AIA caIssuers URL, cached
// until it expires (at most MaxCacheAge).
func (c *Checker) issuerCert(ctx context.Context, u string) (*x509.Certificate, error) {
	v, err := c.cached(ctx, "aia\x00"+u, func(ctx context.Context) (any, time.Time, error) {
		body, err := c.fetch(ctx, "GET", u, nil, "", c.cfg.MaxCertBytes)
		if err != nil {
			return nil, time.Time{}, err
		}
		if b, _ := pem.Decode(body); b != nil && b.Type == "CERTIFICATE" {
			body = b.Bytes
		}
		cert, err := x509.ParseCertificate(body)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("not a DER or PEM certificate: %w", err)
		}
		return cert, c.until(c.cfg.Clock(), cert.NotAfter), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*x509.Certificate), nil
}
