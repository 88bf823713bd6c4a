package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/keys"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// Keys are generated once per test binary: RSA generation is slow.
var (
	rsaKey  = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	p256Key = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	p384Key = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	p521Key = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)) })
	edKey   = sync.OnceValue(func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	smallRSAKey = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 1024)) })
	caKey       = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	caCert      = sync.OnceValue(func() *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "Test Carequality CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey().Public(), caKey()))
		return must(x509.ParseCertificate(der))
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newMaterial builds signing material with a two-certificate chain
// (leaf issued by the test CA, then the CA).
func newMaterial(t testing.TB, signer crypto.Signer) *keys.Material {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "client.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		URIs:         []*url.URL{{Scheme: "https", Host: "client.example.org"}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert(), signer.Public(), caKey())
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return &keys.Material{
		Signer:   signer,
		Chain:    []*x509.Certificate{leaf, caCert()},
		KeyID:    "test-kid",
		Version:  "test",
		LoadedAt: time.Now(),
	}
}

// staticKeys is a KeyProvider that always returns the same material.
type staticKeys struct{ m *keys.Material }

func (s staticKeys) Current() *keys.Material { return s.m }

// assertNoSecrets fails if s contains any of the secrets.
func assertNoSecrets(t testing.TB, what, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%s leaks a secret: %q", what, s)
		}
	}
}

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
}
