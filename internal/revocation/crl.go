package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// crlList is a CRL verified against its issuer, indexed by serial, with
// the scope its Issuing Distribution Point gives it.
type crlList struct {
	list    *x509.RevocationList
	revoked map[string]x509.RevocationListEntry // by decimal serial
	scope   crlScope
}

// crlScope is what a CRL's Issuing Distribution Point (RFC 5280 §5.2.5)
// says it covers; the zero value, a CRL without one, covers every
// certificate of its issuer.
type crlScope struct {
	// onlyUser and onlyCA are onlyContainsUserCerts and
	// onlyContainsCACerts.
	onlyUser, onlyCA bool
	// points are the URIs the distributionPoint's fullName gives.
	points []string
}

// CRL extensions (RFC 5280 §5.2) and CRL entry extensions (§5.3).
var (
	oidAuthorityKeyID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber                = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidReasonCode               = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidHoldInstructionCode      = asn1.ObjectIdentifier{2, 5, 29, 23}
	oidInvalidityDate           = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertificateIssuer        = asn1.ObjectIdentifier{2, 5, 29, 29}
)

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
// issued it, that it is current and that cqgate processes every critical
// extension of it and of its entries (RFC 5280 §5.2, §5.3).
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
	if list.NextUpdate.IsZero() {
		// RFC 5280 section 5.1.2.5: issuers MUST include it. Without it
		// an old CRL, from before a revocation, would count as current
		// whenever it is replayed (CRL URLs may be plain http).
		return nil, errors.New("the CRL has no nextUpdate (RFC 5280 section 5.1.2.5 requires it), so its freshness cannot be told")
	}
	if err := c.current("the CRL", list.ThisUpdate, list.NextUpdate); err != nil {
		return nil, err
	}
	scope, err := crlExtensions(list.Extensions)
	if err != nil {
		return nil, err
	}
	l := &crlList{list: list, scope: scope, revoked: make(map[string]x509.RevocationListEntry, len(list.RevokedCertificateEntries))}
	for _, e := range list.RevokedCertificateEntries {
		if err := entryExtensions(e); err != nil {
			return nil, err
		}
		if e.SerialNumber == nil || e.ReasonCode == 8 { // removeFromCRL: delta CRLs only
			continue
		}
		l.revoked[e.SerialNumber.String()] = e
	}
	// Indexed; keep the cache small (x509 fills both fields).
	list.RevokedCertificateEntries, list.RevokedCertificates = nil, nil
	return l, nil
}

// crlExtensions reads a CRL's extensions: the authority key identifier
// and CRL number (read by x509) and the Issuing Distribution Point are
// processed; a delta CRL, whose Delta CRL Indicator says it lists only
// what changed since a base CRL, is refused whether or not the extension
// is marked critical, as is any other critical extension.
func crlExtensions(exts []pkix.Extension) (crlScope, error) {
	var scope crlScope
	seenIDP := false
	for _, ext := range exts {
		switch {
		case ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidCRLNumber):
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return crlScope{}, errors.New("the CRL is a delta CRL (Delta CRL Indicator); only complete CRLs are read")
		case ext.Id.Equal(oidIssuingDistributionPoint):
			if seenIDP {
				return crlScope{}, errors.New("the CRL has more than one Issuing Distribution Point")
			}
			seenIDP = true
			var err error
			if scope, err = parseIssuingDistributionPoint(ext.Value); err != nil {
				return crlScope{}, err
			}
		case ext.Critical:
			return crlScope{}, fmt.Errorf("the CRL has a critical extension %v that is not processed", ext.Id)
		}
	}
	return scope, nil
}

// entryExtensions checks a CRL entry's extensions: the reason code,
// invalidity date and hold instruction code say nothing about whether
// the serial is revoked and are accepted; a certificate issuer (an
// indirect CRL's entry for another CA's certificate) is refused whether
// or not it is marked critical, as is any other critical extension.
func entryExtensions(e x509.RevocationListEntry) error {
	for _, ext := range e.Extensions {
		switch {
		case ext.Id.Equal(oidReasonCode), ext.Id.Equal(oidInvalidityDate), ext.Id.Equal(oidHoldInstructionCode):
		case ext.Id.Equal(oidCertificateIssuer):
			return errors.New("a CRL entry names a certificate issuer (indirect CRL); indirect CRLs are not read")
		case ext.Critical:
			return fmt.Errorf("a CRL entry has a critical extension %v that is not processed", ext.Id)
		}
	}
	return nil
}

// parseIssuingDistributionPoint reads the Issuing Distribution Point
// extension's value (RFC 5280 §5.2.5):
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	     distributionPoint          [0] DistributionPointName OPTIONAL,
//	     onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
//	     onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
//	     onlySomeReasons            [3] ReasonFlags OPTIONAL,
//	     indirectCRL                [4] BOOLEAN DEFAULT FALSE,
//	     onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
//
// A CRL partitioned by reason (onlySomeReasons), an indirect CRL and a
// CRL of attribute certificates are refused: cqgate does not process
// them.
func parseIssuingDistributionPoint(der []byte) (crlScope, error) {
	malformed := errors.New("the CRL's Issuing Distribution Point is malformed")
	in := cryptobyte.String(der)
	var idp cryptobyte.String
	if !in.ReadASN1(&idp, casn1.SEQUENCE) || !in.Empty() {
		return crlScope{}, malformed
	}
	var scope crlScope
	var dp cryptobyte.String
	var hasDP bool
	if !idp.ReadOptionalASN1(&dp, &hasDP, casn1.Tag(0).Constructed().ContextSpecific()) {
		return crlScope{}, malformed
	}
	if hasDP {
		var ok bool
		if scope.points, ok = distributionPointURIs(dp); !ok {
			return crlScope{}, malformed
		}
	}
	var reasons, indirect, attrs, ok bool
	if scope.onlyUser, ok = readFlag(&idp, 1); !ok {
		return crlScope{}, malformed
	}
	if scope.onlyCA, ok = readFlag(&idp, 2); !ok {
		return crlScope{}, malformed
	}
	// onlySomeReasons is a BIT STRING: its presence is what counts.
	var reasonFlags cryptobyte.String
	if !idp.ReadOptionalASN1(&reasonFlags, &reasons, casn1.Tag(3).ContextSpecific()) {
		return crlScope{}, malformed
	}
	if indirect, ok = readFlag(&idp, 4); !ok {
		return crlScope{}, malformed
	}
	if attrs, ok = readFlag(&idp, 5); !ok {
		return crlScope{}, malformed
	}
	switch {
	case !idp.Empty():
		return crlScope{}, malformed
	case reasons:
		return crlScope{}, errors.New("the CRL covers only some revocation reasons (onlySomeReasons); such CRLs are not read")
	case indirect:
		return crlScope{}, errors.New("the CRL is an indirect CRL (indirectCRL); indirect CRLs are not read")
	case attrs:
		return crlScope{}, errors.New("the CRL covers only attribute certificates (onlyContainsAttributeCerts)")
	case scope.onlyUser && scope.onlyCA:
		return crlScope{}, errors.New("the CRL's Issuing Distribution Point says both onlyContainsUserCerts and onlyContainsCACerts")
	}
	return scope, nil
}

// readFlag reads an optional BOOLEAN with the implicit context-specific
// tag n (DEFAULT FALSE): any non-zero octet is true.
func readFlag(s *cryptobyte.String, n uint8) (v, ok bool) {
	var b cryptobyte.String
	var present bool
	if !s.ReadOptionalASN1(&b, &present, casn1.Tag(n).ContextSpecific()) {
		return false, false
	}
	if !present {
		return false, true
	}
	if len(b) != 1 {
		return false, false
	}
	return b[0] != 0, true
}

// distributionPointURIs reads a DistributionPointName, the contents of
// the [0] that holds it, and returns the URIs of its fullName (none for
// a nameRelativeToCRLIssuer or names of other forms).
func distributionPointURIs(dp cryptobyte.String) ([]string, bool) {
	var name cryptobyte.String
	var tag casn1.Tag
	if !dp.ReadAnyASN1(&name, &tag) || !dp.Empty() {
		return nil, false
	}
	if tag != casn1.Tag(0).Constructed().ContextSpecific() { // nameRelativeToCRLIssuer
		return nil, tag == casn1.Tag(1).Constructed().ContextSpecific()
	}
	var uris []string
	for !name.Empty() {
		var gn cryptobyte.String
		var gtag casn1.Tag
		if !name.ReadAnyASN1(&gn, &gtag) {
			return nil, false
		}
		if gtag == casn1.Tag(6).ContextSpecific() { // uniformResourceIdentifier
			uris = append(uris, string(gn))
		}
	}
	return uris, true
}

// covers says why a CRL of this scope cannot tell cert's status, nil
// when it can: a CRL of end-entity certificates does not cover a CA
// certificate and the reverse, and a CRL whose distribution point names
// URIs covers only certificates naming one of them as their CRL
// distribution point (RFC 5280 §6.3.3 b.2).
func (s crlScope) covers(cert *x509.Certificate) error {
	ca := cert.BasicConstraintsValid && cert.IsCA
	switch {
	case s.onlyUser && ca:
		return errors.New("the CRL covers only end-entity certificates (onlyContainsUserCerts), and this is a CA certificate")
	case s.onlyCA && !ca:
		return errors.New("the CRL covers only CA certificates (onlyContainsCACerts), and this is an end-entity certificate")
	case len(s.points) > 0 && !slices.ContainsFunc(s.points, func(p string) bool { return slices.Contains(cert.CRLDistributionPoints, p) }):
		return fmt.Errorf("the CRL's Issuing Distribution Point %q is none of the certificate's CRL distribution points", s.points)
	}
	return nil
}
