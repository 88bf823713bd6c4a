package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Keys are cached: RSA generation is slow under -race.
var (
	rsaKey2048 = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(rsa.GenerateKey(rand.Reader, 2048)) })
	rsaKey1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(rsa.GenerateKey(rand.Reader, 1024)) })
	ecKeyP256  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ecKeyP256b = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ecKeyP384  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	ecKeyP521  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)) })
	edKey      = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return mustKey(k, err)
	})
)

func mustKey[K any](k K, err error) K {
	if err != nil {
		panic(err)
	}
	return k
}

// certOpts describes a test certificate.
type certOpts struct {
	cn                  string
	notBefore, notAfter time.Time
	isCA                bool
	parent              *x509.Certificate // nil: self-signed
	parentKey           crypto.Signer
}

// makeCert certifies key's public half and returns the DER-parsed
// certificate and its PEM.
func makeCert(t testing.TB, key crypto.Signer, o certOpts) (*x509.Certificate, []byte) {
	t.Helper()
	if o.cn == "" {
		o.cn = "test leaf"
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.cn, Organization: []string{"cqgate tests"}},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  o.isCA,
	}
	if o.isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	parent, signer := tmpl, key
	if o.parent != nil {
		parent, signer = o.parent, o.parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pkcs8PEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pkcs1PEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func sec1PEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// rfc7638 computes the JWK thumbprint by hand, independently of go-jose:
// SHA-256 over the required members in lexicographic order, no white space.
func rfc7638(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var doc string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		doc = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		raw, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		doc = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, k.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:]))
	default:
		t.Fatalf("rfc7638: unsupported %T", pub)
	}
	sum := sha256.Sum256([]byte(doc))
	return b64(sum[:])
}

// secretsOf returns strings that must never show up in errors or logs for
// a PEM private key: the whole PEM, every base64 line of its body, and the
// private scalar in decimal and hex.
func secretsOf(t testing.TB, keyPEM []byte) []string {
	t.Helper()
	out := []string{string(keyPEM)}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("secretsOf: not PEM")
	}
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	out = append(out, base64.StdEncoding.EncodeToString(block.Bytes)[:32], hex.EncodeToString(block.Bytes)[:32])
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err == nil {
		switch k := key.(type) {
		case *rsa.PrivateKey:
			out = append(out, k.D.String()[:24], k.D.Text(16)[:24], k.Primes[0].String()[:24])
		case *ecdsa.PrivateKey:
			d, _ := k.Bytes()
			out = append(out, new(big.Int).SetBytes(d).String()[:24], hex.EncodeToString(d)[:24])
		}
	}
	return out
}

// assertNoSecrets fails when text contains any of secrets.
func assertNoSecrets(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s leaks a secret (%.12q...): %s", what, s, text)
		}
	}
}

// testLogger sends logrus output to t.Log.
func testLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(tWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// entryText renders a log entry's message and fields for secret checks.
func entryText(e *logrus.Entry) string {
	b, _ := json.Marshal(e.Data)
	return e.Message + " " + string(b)
}
