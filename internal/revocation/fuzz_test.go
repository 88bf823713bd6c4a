package revocation

import (
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/pkitest"
)

// fuzzChecker is a Checker and a CA to parse untrusted answers against.
func fuzzChecker(f *testing.F) (*Checker, *pkitest.PKI, *pkitest.Leaf) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := pkitest.New(f, pkitest.Options{Clock: func() time.Time { return now }})
	rc, err := New(Config{Client: &http.Client{}, Clock: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	return rc, p, p.Issue(f, p.Intermediate, pkitest.CertOptions{})
}

// FuzzParseCRL: any body from a CRL server is refused or accepted without
// panicking, and an accepted one verified against the issuer.
func FuzzParseCRL(f *testing.F) {
	rc, p, _ := fuzzChecker(f)
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := rc.parseCRL(body, p.Intermediate.Cert)
		if err == nil && l.list.CheckSignatureFrom(p.Intermediate.Cert) != nil {
			t.Fatal("accepted a CRL the issuer did not sign")
		}
	})
}

// FuzzParseOCSP: any body from an OCSP responder is refused or accepted
// without panicking.
func FuzzParseOCSP(f *testing.F) {
	rc, p, leaf := fuzzChecker(f)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01}) // malformedRequest
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := rc.parseOCSP(body, leaf.Cert, p.Intermediate.Cert); err == nil && r.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
			t.Fatal("accepted an answer for another serial")
		}
	})
}

// FuzzCertIDFor: any ResponseData is read or refused without panicking.
func FuzzCertIDFor(f *testing.F) {
	f.Add([]byte{}, int64(1))
	f.Add([]byte{0x30, 0x0b, 0xa1, 0x00, 0x18, 0x00, 0x30, 0x05, 0x30, 0x03, 0x30, 0x01, 0x06}, int64(1))
	f.Fuzz(func(t *testing.T, tbs []byte, serial int64) {
		_, _ = certIDFor(tbs, big.NewInt(serial))
	})
}

// FuzzIssuingDistributionPoint: any extension value is read or refused
// without panicking, never as a scope claiming both kinds of
// certificates.
func FuzzIssuingDistributionPoint(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x82, 0x01, 0xff})
	f.Add([]byte{0x30, 0x0a, 0xa0, 0x08, 0xa0, 0x06, 0x86, 0x04, 'h', 't', 't', 'p'})
	f.Fuzz(func(t *testing.T, der []byte) {
		if s, err := parseIssuingDistributionPoint(der); err == nil && s.onlyUser && s.onlyCA {
			t.Fatal("a scope of only user and only CA certificates")
		}
	})
}

// FuzzX5C: any JWS header is read or refused without panicking, never
// with more than MaxX5C certificates.
func FuzzX5C(f *testing.F) {
	f.Add("eyJ4NWMiOlsiQUFBQSJdfQ.e30.sig")
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		if certs, err := X5C(tok); err == nil && (len(certs) == 0 || len(certs) > MaxX5C) {
			t.Fatalf("%d certificates", len(certs))
		}
	})
}
