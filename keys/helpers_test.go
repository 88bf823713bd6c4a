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
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
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

// vaultClient returns a vault.Client for srv that authenticates with token,
// without retries so that fault tests answer at once.
func vaultClient(t testing.TB, srv *vaulttest.Server, token string) *vault.Client {
	t.Helper()
	c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: token}}, vault.WithMaxRetries(0))
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	return c
}

// clearVaultEnv unsets the VAULT_* variables api.DefaultConfig and
// api.NewClient read, for the duration of the test.
func clearVaultEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		api.EnvVaultAddress, api.EnvVaultAgentAddr, api.EnvVaultToken, api.EnvVaultNamespace,
		api.EnvVaultCACert, api.EnvVaultCACertBytes, api.EnvVaultCAPath, api.EnvVaultClientCert,
		api.EnvVaultClientKey, api.EnvVaultClientTimeout, api.EnvVaultSkipVerify, api.EnvVaultTLSServerName,
		api.EnvVaultMaxRetries, api.EnvVaultHeaders, api.EnvVaultProxyAddr,
	} {
		t.Setenv(k, "")
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound; for background work (Watch), never for timing assertions.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testCA issues certificates for public keys whose private half the test
// does not have (Vault transit keys).
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var caKey = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	cert, certPEM := makeCert(t, caKey(), certOpts{cn: "cqgate test CA", isCA: true, notAfter: time.Now().Add(48 * time.Hour)})
	return &testCA{cert: cert, key: caKey(), pem: certPEM}
}

// certify returns the PEM chain (leaf, then the CA) of a certificate for
// pub, valid from an hour ago for a day.
func (ca *testCA) certify(t testing.TB, pub crypto.PublicKey, cn string) []byte {
	t.Helper()
	return ca.certifyValid(t, pub, cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

func (ca *testCA) certifyValid(t testing.TB, pub crypto.PublicKey, cn string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"cqgate tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatalf("certifying %T: %v", pub, err)
	}
	return concat(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem)
}

// signAndVerifyJWT signs a JWT with m's JOSE signer and alg, as the
// assertion package does, and verifies it with pub using go-jose.
func signAndVerifyJWT(m *keys.Material, alg jose.SignatureAlgorithm, pub crypto.PublicKey) error {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: m.JOSESigner()},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", m.KeyID))
	if err != nil {
		return fmt.Errorf("NewSigner: %w", err)
	}
	payload := fmt.Appendf(nil, `{"iss":"gateway.example.org","sub":"gateway.example.org","aud":"https://token.example.org/token","jti":"%d","exp":%d}`,
		time.Now().UnixNano(), time.Now().Add(5*time.Minute).Unix())
	obj, err := signer.Sign(payload)
	if err != nil {
		return fmt.Errorf("Sign: %w", err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		return err
	}
	parsed, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return fmt.Errorf("ParseSigned: %w", err)
	}
	if h := parsed.Signatures[0].Header; h.Algorithm != string(alg) || h.KeyID != m.KeyID {
		return fmt.Errorf("header alg %q kid %q, want %q %q", h.Algorithm, h.KeyID, alg, m.KeyID)
	}
	out, err := parsed.Verify(pub)
	if err != nil {
		return fmt.Errorf("Verify: %w", err)
	}
	if string(out) != string(payload) {
		return errors.New("verified payload differs")
	}
	return nil
}

func mustInt(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a json.Number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func parsePublicPEM(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}
