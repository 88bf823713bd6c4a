package revocation

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/pkitest"
)

// signedMetadata signs a UDAP signed_metadata-like JWT with leaf, its x5c
// holding the given certificates.
func signedMetadata(t *testing.T, leaf *pkitest.Leaf, x5c ...*x509.Certificate) string {
	t.Helper()
	enc := make([]string, len(x5c))
	for i, c := range x5c {
		enc[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: leaf.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", enc))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: "https://fhir.example.org/r4", Subject: "https://fhir.example.org/r4"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSignedMetadataFlow is the flow discovery wires in: read x5c, verify
// to the community's anchors (fetching a missing intermediate), check
// revocation under the community's policy, then check the signature with
// the verified leaf.
func TestSignedMetadataFlow(t *testing.T) {
	verify := func(w *world, tok string, p Policy) error {
		certs, err := X5C(tok)
		if err != nil {
			return err
		}
		chain, _, err := w.rc.VerifyAndCheck(context.Background(), certs,
			x509.VerifyOptions{Roots: w.pki.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, p)
		if err != nil {
			return err
		}
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			return err
		}
		var c jwt.Claims
		return parsed.Claims(chain[0].PublicKey, &c)
	}

	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{URIs: []string{"https://fhir.example.org/r4"}})
	if err := verify(w, signedMetadata(t, leaf, leaf.Cert, w.pki.Intermediate.Cert), Hard); err != nil {
		t.Fatalf("full x5c: %v", err)
	}
	if err := verify(w, signedMetadata(t, leaf, leaf.Cert), Hard); err != nil {
		t.Fatalf("x5c without the intermediate: %v", err)
	}
	w.pki.Revoke(w.pki.Intermediate.Cert, 2)
	w.clock.Advance(2 * time.Hour) // past every cached answer
	err := verify(w, signedMetadata(t, leaf, leaf.Cert), Soft)
	var re *RevokedError
	if !errors.As(err, &re) || re.Subject != w.pki.Intermediate.Cert.Subject.String() {
		t.Fatalf("revoked intermediate: %v", err)
	}

	other := pkitest.New(t, pkitest.Options{Clock: w.clock.Now})
	stranger := other.Issue(t, other.Intermediate, pkitest.CertOptions{})
	var ua x509.UnknownAuthorityError
	if err := verify(w, signedMetadata(t, stranger, stranger.Cert, other.Intermediate.Cert), Soft); !errors.As(err, &ua) {
		t.Fatalf("another community's certificate: %v", err)
	}
}

func TestX5C(t *testing.T) {
	w := newWorld(t, Config{})
	leaf := w.pki.Issue(t, w.pki.Intermediate, pkitest.CertOptions{})
	certs, err := X5C(signedMetadata(t, leaf, leaf.Cert, w.pki.Intermediate.Cert))
	if err != nil || len(certs) != 2 || !certs[0].Equal(leaf.Cert) || !certs[1].Equal(w.pki.Intermediate.Cert) {
		t.Fatalf("X5C = %d certificates, %v", len(certs), err)
	}
	eleven := make([]*x509.Certificate, 11)
	for i := range eleven {
		eleven[i] = leaf.Cert
	}
	hdr := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) + ".e30.sig" }
	for _, tc := range []struct{ name, tok, has string }{
		{"no dot", "abc", "not a compact JWS"},
		{"bad base64", "!!!.e30.x", "not base64url"},
		{"not JSON", hdr("[1]"), "not a JSON object"},
		{"no x5c", hdr(`{"alg":"ES256"}`), "has no x5c"},
		{"bad cert base64", hdr(`{"x5c":["***"]}`), "certificate 0 is not standard base64"},
		{"bad cert", hdr(`{"x5c":["AAAA"]}`), "certificate 0"},
		{"too many", signedMetadata(t, leaf, eleven...), "11 certificates, at most 10"},
	} {
		if _, err := X5C(tc.tok); err == nil || !strings.Contains(err.Error(), tc.has) || !strings.HasPrefix(err.Error(), "revocation: x5c: ") {
			t.Errorf("%s: X5C = %v, want %q", tc.name, err, tc.has)
		}
	}
}
