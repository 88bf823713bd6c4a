package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// crlList is a CRL verified against its issuer, indexed by serial.
type crlList struct {
	list    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry // by decimal serial
}

// crl returns the CRL at u, verified against issuer, from the cache or
// fetched.
func (c *Checker) crl(ctx context.Context, u string, issuer *x509.Certificate) (*crlList, error) {
	v, err := c.cached(ctx, "crl\x00"+u+"\x00"+fingerprint(issuer), func(ctx context.Context) (any, time.Time, error) {
		body, err := c.fetch(ctx, "GET", u, nil, "", c.cfg.MaxCRLBytes)
		if err != nil {
			return nil, time.Time{}, err
		}
		l, err := c.parseCRL(body, issuer)
		if err != nil {
			return nil, time.Time{}, err
		}
		return l, c.until(c.cfg.Clock(), l.list.NextUpdate), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*crlList), nil
}

// parseCRL parses a DER (or PEM "X509 CRL") CRL and checks that issuer
// issued it and that it is current.
func (c *Checker) parseCRL(body []byte, issuer *x509.Certificate) (*crlList, error) {
	if b, _ := pem.Decode(body); b != nil && b.Type == "X509 CRL" {
		body = b.Bytes
	}
	list, err := x509.ParseRevocationList(body)
	if err != nil {
		return nil, fmt.Errorf("not a CRL: %w", err)
	}
	if !bytes.Equal(list.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("the CRL's issuer %q is not the certificate's issuer %q", list.Issuer, issuer.Subject)
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("the CRL's signature does not verify with the issuer's key: %w", err)
	}
	if list.ThisUpdate.IsZero() {
		return nil, errors.New("the CRL has no thisUpdate")
	}
	if err := c.current("the CRL", list.ThisUpdate, list.NextUpdate); err != nil {
		return nil, err
	}
	l := &crlList{list: list, revoked: make(map[string]x509.RevocationListEntry, len(list.RevokedCertificateEntries))}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber == nil || e.ReasonCode == 8 { // removeFromCRL: delta CRLs only
			continue
		}
		l.revoked[e.SerialNumber.String()] = e
	}
	list.RevokedCertificateEntries = nil // indexed; keep the cache small
	return l, nil
}
