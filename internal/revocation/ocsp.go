package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
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

// parseOCSP parses a response and checks that it answers for cert (its
// serial and its issuer: RFC 6960 §3.2 item 1), is signed by issuer or by
// a responder certificate issuer delegated OCSP signing to (RFC 6960
// §4.2.2.2), and is current with a nextUpdate (RFC 5019 §4: a response
// without one is rejected).
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
	if err := checkCertIssuer(r.TBSResponseData, cert.SerialNumber, issuer); err != nil {
		return nil, err
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
	if r.NextUpdate.IsZero() {
		return nil, errors.New("the OCSP response has no nextUpdate, so its freshness cannot be told (RFC 5019 §4: rejected)")
	}
	if err := c.current("the OCSP response", r.ThisUpdate, r.NextUpdate); err != nil {
		return nil, err
	}
	return r, nil
}

// certIDHash returns the hash algorithm of an OCSP CertID's OID.
func certIDHash(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, h := range []struct {
		oid  asn1.ObjectIdentifier
		hash crypto.Hash
	}{
		{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
	} {
		if h.oid.Equal(oid) {
			return h.hash, h.hash.Available()
		}
	}
	return 0, false
}

// certID is the CertID of an OCSP single response (RFC 6960 §4.1.1).
type certID struct {
	hash              asn1.ObjectIdentifier
	nameHash, keyHash []byte
}

// checkCertIssuer checks that the single response of the ResponseData
// tbs that answers for serial (the first that names it, the one
// ocsp.ParseResponseForCert reads) identifies issuer: its issuerNameHash
// is the hash of issuer's subject and its issuerKeyHash that of issuer's
// public key. x/crypto/ocsp matches the serial only, and a responder
// answering for several CAs signs answers about their certificates of the
// same serial.
func checkCertIssuer(tbs []byte, serial *big.Int, issuer *x509.Certificate) error {
	id, err := certIDFor(tbs, serial)
	if err != nil {
		return err
	}
	h, ok := certIDHash(id.hash)
	if !ok {
		return fmt.Errorf("the OCSP response's CertID uses an unsupported hash algorithm %v", id.hash)
	}
	key, err := subjectPublicKey(issuer)
	if err != nil {
		return err
	}
	if !bytes.Equal(id.nameHash, digest(h, issuer.RawSubject)) || !bytes.Equal(id.keyHash, digest(h, key)) {
		return fmt.Errorf("the OCSP response is for a certificate of another issuer than %q (CertID issuer hashes differ)", issuer.Subject)
	}
	return nil
}

// certIDFor reads the ResponseData tbs (RFC 6960 §4.2.1) and returns the
// CertID of its first single response naming serial. It reads only what
// tbs holds and refuses what it cannot parse.
func certIDFor(tbs []byte, serial *big.Int) (certID, error) {
	malformed := errors.New("the OCSP response's data cannot be read for its CertID")
	in := cryptobyte.String(tbs)
	var rd, responses cryptobyte.String
	var responderID cryptobyte.String
	var tag casn1.Tag
	if !in.ReadASN1(&rd, casn1.SEQUENCE) || !in.Empty() ||
		!rd.SkipOptionalASN1(casn1.Tag(0).Constructed().ContextSpecific()) || // version
		!rd.ReadAnyASN1(&responderID, &tag) ||
		!rd.SkipASN1(casn1.GeneralizedTime) || // producedAt
		!rd.ReadASN1(&responses, casn1.SEQUENCE) {
		return certID{}, malformed
	}
	for !responses.Empty() {
		var single, cid, alg cryptobyte.String
		var id certID
		n := new(big.Int)
		if !responses.ReadASN1(&single, casn1.SEQUENCE) ||
			!single.ReadASN1(&cid, casn1.SEQUENCE) ||
			!cid.ReadASN1(&alg, casn1.SEQUENCE) ||
			!alg.ReadASN1ObjectIdentifier(&id.hash) ||
			!cid.ReadASN1Bytes(&id.nameHash, casn1.OCTET_STRING) ||
			!cid.ReadASN1Bytes(&id.keyHash, casn1.OCTET_STRING) ||
			!cid.ReadASN1Integer(n) {
			return certID{}, malformed
		}
		if n.Cmp(serial) == 0 {
			return id, nil
		}
	}
	return certID{}, errors.New("the OCSP response has no single response for the certificate's serial")
}

// subjectPublicKey returns the subjectPublicKey bits of cert, which an
// OCSP CertID's issuerKeyHash is the hash of.
func subjectPublicKey(cert *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, casn1.SEQUENCE) || !spki.SkipASN1(casn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("the public key of %q cannot be read", cert.Subject)
	}
	return bits.RightAlign(), nil
}

// digest is h's hash of b.
func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}
