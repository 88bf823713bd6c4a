package revocation

// Review rev-s8d: revocation answers that must not count.

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cqgate/cqgate/internal/pkitest"
)

// partnerLeaf issues, under the PKI's intermediate, a leaf whose CRL
// distribution point and OCSP responder are at srv (so the test chooses
// what they answer).
func partnerLeaf(t *testing.T, w *world, crlURL, ocspURL string) *x509.Certificate {
	t.Helper()
	key := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{}).Key // a fresh key
	now := w.clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5eed),
		Subject:      pkix.Name{CommonName: "fhir.partner.example"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if crlURL != "" {
		tmpl.CRLDistributionPoints = []string{crlURL}
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.pki.Intermediate.Cert, key.Public(), w.pki.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveBytes serves whatever *body holds at the time of the request.
func serveBytes(t *testing.T, body *[]byte, mu *sync.Mutex) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := *body
		mu.Unlock()
		_, _ = rw.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCRLWithUnprocessedCriticalExtensionIsNotUsed: RFC 5280 §5.2 "If a
// CRL contains a critical extension that the application cannot
// process, then the application MUST NOT use that CRL to determine the
// status of certificates." A delta CRL (critical Delta CRL Indicator,
// §5.2.4) lists only what changed since its base CRL, and a CRL whose
// critical Issuing Distribution Point says onlyContainsCACerts (§5.2.5)
// covers no end-entity certificate: neither proves a leaf good. Both are
// validly signed by the leaf's issuer and current, so whoever sits
// between cqgate and the plain-http CRL URL (or a CA publishing its
// partitions/deltas) can make a revoked leaf read "good" with them.
func TestCRLWithUnprocessedCriticalExtensionIsNotUsed(t *testing.T) {
	idpOnlyCA, _ := asn1.Marshal(struct {
		OnlyCA bool `asn1:"optional,tag:2"`
	}{true})
	deltaBase, _ := asn1.Marshal(big.NewInt(41))
	for _, tc := range []struct {
		name string
		ext  pkix.Extension
	}{
		{"delta CRL indicator", pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: deltaBase}},
		{"issuing distribution point onlyContainsCACerts", pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: idpOnlyCA}},
		{"unknown critical extension", pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Critical: true, Value: []byte{0x05, 0x00}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, Config{})
			var mu sync.Mutex
			var body []byte
			srv := serveBytes(t, &body, &mu)
			leaf := partnerLeaf(t, w, srv.URL+"/int.crl", "")
			now := w.clock.Now()
			// The leaf is revoked on the issuer's full CRL; what is
			// served is the partial CRL, which does not list it.
			der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				Number:          big.NewInt(42),
				ThisUpdate:      now,
				NextUpdate:      now.Add(time.Hour),
				ExtraExtensions: []pkix.Extension{tc.ext},
			}, w.pki.Intermediate.Cert, w.pki.Intermediate.Key)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			body = der
			mu.Unlock()
			chain := []*x509.Certificate{leaf, w.pki.Intermediate.Cert, w.pki.Root.Cert}
			st, err := w.rc.Check(context.Background(), chain, Hard)
			if len(st) > 0 && st[0].Status == Good {
				t.Fatalf("the leaf is %s according to %s, a CRL with a critical %v extension cqgate does not process (err %v)",
					st[0].Status, st[0].Source, tc.ext.Id, err)
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Check = %v, want ErrUnavailable under hard", err)
			}
		})
	}
}

// TestOCSPResponseForAnotherIssuersCertificate: RFC 6960 §3.2 item 1, the
// client must check that "the certificate identified in a received
// response corresponds to the certificate that was identified in the
// corresponding request": the CertID's issuerNameHash and issuerKeyHash
// as well as the serial. parseOCSP matches the serial only. A responder
// key certified (id-kp-OCSPSigning) by two CAs, the leaf's issuer and
// another one, answers "good" for the other CA's certificate of the same
// serial; the certs field of a BasicOCSPResponse is not signed, so the
// answer can carry the responder certificate the leaf's issuer issued.
// cqgate takes it as the leaf's status, though the leaf is revoked.
func TestOCSPResponseForAnotherIssuersCertificate(t *testing.T) {
	w := newWorld(t, Config{})
	other := w.pki.NewCA(t, w.pki.Root, "other", pkitest.CertOptions{})
	responderKey := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{}).Key
	now := w.clock.Now()
	responder := func(ca *pkitest.CA) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()),
			Subject:      pkix.Name{CommonName: "shared OCSP responder"},
			NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		}, ca.Cert, responderKey.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	forIntermediate := responder(w.pki.Intermediate)
	_ = responder(other) // the same key also answers for "other"

	var mu sync.Mutex
	var body []byte
	srv := serveBytes(t, &body, &mu)
	leaf := partnerLeaf(t, w, "", srv.URL+"/ocsp")

	// The answer about ("other", serial 0x5eed): good, signed by the
	// shared responder key; it carries the responder certificate the
	// leaf's issuer issued.
	der, err := ocsp.CreateResponse(other.Cert, forIntermediate, ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(time.Hour),
		Certificate:  forIntermediate,
	}, responderKey)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	body = der
	mu.Unlock()

	chain := []*x509.Certificate{leaf, w.pki.Intermediate.Cert, w.pki.Root.Cert}
	st, err := w.rc.Check(context.Background(), chain, Hard)
	if len(st) > 0 && st[0].Status == Good {
		t.Fatalf("the leaf is good according to %s, an OCSP answer whose CertID names another issuer (err %v)", st[0].Source, err)
	}
}

// TestOCSPWithoutNextUpdateIsNotFreshForever: an OCSP "good" from a year
// ago without nextUpdate is taken as the leaf's current status (and wins
// over the issuer's current CRL, which lists the leaf), because current()
// bounds only nextUpdate. docs/udap-trust.md cites RFC 5019, whose §4
// (freshness) says a client MUST reject a response without nextUpdate;
// at the least such an answer needs an age bound, or a responder's
// pre-revocation answer can be replayed on the plain-http OCSP URL for
// the life of the certificate.
func TestOCSPWithoutNextUpdateIsNotFreshForever(t *testing.T) {
	w := newWorld(t, Config{})
	var mu sync.Mutex
	var body []byte
	srv := serveBytes(t, &body, &mu)
	leaf := partnerLeaf(t, w, w.pki.CRLURL(w.pki.Intermediate), srv.URL+"/ocsp")
	w.clock.Advance(300 * 24 * time.Hour) // the leaf is valid for a year
	old := w.clock.Now().Add(-299 * 24 * time.Hour)
	der, err := ocsp.CreateResponse(w.pki.Intermediate.Cert, w.pki.Intermediate.Cert, ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   old, // no NextUpdate
	}, w.pki.Intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	body = der
	mu.Unlock()
	w.pki.Revoke(leaf, 1) // on the intermediate's CRL from now on

	chain := []*x509.Certificate{leaf, w.pki.Intermediate.Cert, w.pki.Root.Cert}
	st, err := w.rc.Check(context.Background(), chain, Hard)
	if len(st) > 0 && st[0].Status == Good {
		t.Fatalf("the revoked leaf is good according to %s: an OCSP answer 299 days old without nextUpdate (err %v)", st[0].Source, err)
	}
}
