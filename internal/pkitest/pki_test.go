package pkitest

import (
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cqgate/cqgate/internal/clocktest"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return b
}

func TestHierarchyVerifiesAndPublishes(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p := New(t, Options{Clock: clock.Now})
	leaf := p.Issue(t, p.Intermediate, CertOptions{URIs: []string{"https://fhir.example.org/r4"}})

	inter := x509.NewCertPool()
	inter.AddCert(p.Intermediate.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: p.Roots(), Intermediates: inter, CurrentTime: clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if got := leaf.Cert.CRLDistributionPoints; len(got) != 1 || got[0] != p.CRLURL(p.Intermediate) {
		t.Errorf("CRL DP = %v", got)
	}
	if got := leaf.Cert.URIs; len(got) != 1 || got[0].String() != "https://fhir.example.org/r4" {
		t.Errorf("URIs = %v", got)
	}

	p.Revoke(leaf.Cert, 1)
	crl, err := x509.ParseRevocationList(get(t, p.CRLURL(p.Intermediate)))
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(p.Intermediate.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("CRL entries = %+v", crl.RevokedCertificateEntries)
	}
	if !crl.NextUpdate.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("nextUpdate = %v", crl.NextUpdate)
	}

	req, err := ocsp.CreateRequest(leaf.Cert, p.Intermediate.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.OCSPURL(p.Intermediate), "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	or, err := ocsp.ParseResponseForCert(body, leaf.Cert, p.Intermediate.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if or.Status != ocsp.Revoked || or.RevocationReason != 1 {
		t.Errorf("OCSP status %d reason %d, want revoked/1", or.Status, or.RevocationReason)
	}

	p.SetCRL(p.Intermediate, WrongSigner)
	crl, err = x509.ParseRevocationList(get(t, p.CRLURL(p.Intermediate)))
	if err != nil {
		t.Fatal(err)
	}
	if crl.CheckSignatureFrom(p.Intermediate.Cert) == nil {
		t.Error("WrongSigner CRL verifies against the issuer")
	}
	if n := p.Hits("crl", p.Intermediate); n != 2 {
		t.Errorf("crl hits = %d, want 2", n)
	}
	if c, err := x509.ParseCertificate(get(t, p.CertURL(p.Intermediate))); err != nil || !c.Equal(p.Intermediate.Cert) {
		t.Errorf("AIA certificate: %v", err)
	}
}
