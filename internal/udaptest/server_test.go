package udaptest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const issuer = "https://client.example.org/udap"

type pki struct {
	rootKey  crypto.Signer
	root     *x509.Certificate
	leafKey  crypto.Signer
	leaf     *x509.Certificate
	otherKey crypto.Signer
}

func newPKI(t *testing.T, leafKey crypto.Signer) pki {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "udaptest root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
		URIs:     []*url.URL{must(url.Parse(issuer))},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return pki{rootKey: rootKey, root: root, leafKey: leafKey, leaf: leaf, otherKey: other}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func statementClaimsFor(aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": issuer, "sub": issuer, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti":                        base64.RawURLEncoding.EncodeToString(must(randomBytes(16))),
		"client_name":                "cqgate test",
		"contacts":                   []string{"mailto:ops@example.org"},
		"grant_types":                []string{"client_credentials"},
		"token_endpoint_auth_method": "private_key_jwt",
		"scope":                      "system/Patient.read",
	}
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

func signStatement(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, chain []*x509.Certificate, claims map[string]any) string {
	t.Helper()
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return must(jwt.Signed(signer).Claims(claims).Serialize())
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func post(t *testing.T, u, contentType string, body any) response {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(u, contentType, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&r.body)
	return r
}

func register(t *testing.T, s *Server, statement string) response {
	t.Helper()
	return post(t, s.RegistrationURL, "application/json", map[string]any{"software_statement": statement, "certifications": []string{}, "udap": "1"})
}

func TestRegistration(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p := newPKI(t, rsaKey)
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	s := New(t, Config{Roots: roots})
	chain := []*x509.Certificate{p.leaf, p.root}

	first := register(t, s, signStatement(t, p.leafKey, jose.RS256, chain, statementClaimsFor(s.RegistrationURL)))
	if first.status != http.StatusCreated {
		t.Fatalf("register: %d %v (failures %v)", first.status, first.body, s.Failures())
	}
	id, _ := first.body["client_id"].(string)
	if len(id) != 36 || first.header.Get("X-Request-Id") == "" {
		t.Errorf("client_id %q, X-Request-Id %q", id, first.header.Get("X-Request-Id"))
	}
	again := register(t, s, signStatement(t, p.leafKey, jose.RS384, chain, statementClaimsFor(s.RegistrationURL)))
	if again.status != http.StatusOK || again.body["client_id"] != id {
		t.Errorf("re-registration: %d %v, want 200 with client_id %s", again.status, again.body, id)
	}
	if cs := s.Clients(); len(cs) != 1 || cs[0].ID != id || cs[0].Algorithm != "RS384" || cs[0].Issuer != issuer {
		t.Errorf("Clients = %+v", cs)
	}

	cancel := statementClaimsFor(s.RegistrationURL)
	cancel["grant_types"] = []string{}
	res := register(t, s, signStatement(t, p.leafKey, jose.RS256, chain, cancel))
	if gt, ok := res.body["grant_types"].([]any); res.status != http.StatusOK || !ok || len(gt) != 0 || res.body["client_id"] != id {
		t.Errorf("cancel: %d %v", res.status, res.body)
	}
	if len(s.Clients()) != 0 {
		t.Error("registration not cancelled")
	}
	if n := len(s.Statements()); n != 3 {
		t.Errorf("%d statements recorded", n)
	}

	// A server whose registration endpoint advertises RS256 alone
	// refuses an RS384 statement.
	rs256 := New(t, Config{Roots: roots, Algorithms: []string{"RS256"}})
	res = register(t, rs256, signStatement(t, p.leafKey, jose.RS384, chain, statementClaimsFor(rs256.RegistrationURL)))
	if d, _ := res.body["error_description"].(string); res.status != http.StatusBadRequest || res.body["error"] != "invalid_software_statement" || !strings.Contains(d, "RS384") {
		t.Errorf("RS384 statement to an RS256-only endpoint: %d %v", res.status, res.body)
	}
	if res := register(t, rs256, signStatement(t, p.leafKey, jose.RS256, chain, statementClaimsFor(rs256.RegistrationURL))); res.status != http.StatusCreated {
		t.Errorf("RS256 statement to an RS256-only endpoint: %d %v", res.status, res.body)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := newPKI(t, p256)
	strangers := newPKI(t, p256) // same key, certificate from another root
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	s := New(t, Config{Roots: roots})
	chain := []*x509.Certificate{p.leaf}

	replayed := signStatement(t, p.leafKey, jose.ES256, chain, statementClaimsFor(s.RegistrationURL))
	if res := register(t, s, replayed); res.status != http.StatusCreated {
		t.Fatalf("first use: %d %v", res.status, res.body)
	}

	with := func(k string, v any) map[string]any {
		c := statementClaimsFor(s.RegistrationURL)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name     string
		body     any
		ctype    string
		wantCode string
		inDescr  string
	}{
		{"replayed jti", map[string]any{"software_statement": replayed, "certifications": []string{}, "udap": "1"}, "", "invalid_software_statement", "jti"},
		{"signed by another key", signStatement(t, p.otherKey, jose.ES256, chain, statementClaimsFor(s.RegistrationURL)), "", "invalid_software_statement", "signature"},
		{"untrusted chain", signStatement(t, p.leafKey, jose.ES256, []*x509.Certificate{strangers.leaf}, statementClaimsFor(s.RegistrationURL)), "", "invalid_software_statement", "chain"},
		{"iss not a SAN", signStatement(t, p.leafKey, jose.ES256, chain, func() map[string]any {
			c := with("iss", "https://other.example.org")
			c["sub"] = c["iss"]
			return c
		}()), "", "invalid_software_statement", "SAN"},
		{"sub differs", signStatement(t, p.leafKey, jose.ES256, chain, with("sub", "x")), "", "invalid_software_statement", "sub"},
		{"wrong aud", signStatement(t, p.leafKey, jose.ES256, chain, with("aud", "https://elsewhere.example/register")), "", "invalid_software_statement", "aud"},
		{"lifetime over 300s", signStatement(t, p.leafKey, jose.ES256, chain, with("exp", time.Now().Add(6*time.Minute).Unix())), "", "invalid_software_statement", "exp − iat"},
		{"expired", signStatement(t, p.leafKey, jose.ES256, chain, map[string]any{
			"iss": issuer, "sub": issuer, "aud": s.RegistrationURL, "jti": "x1", "iat": time.Now().Add(-10 * time.Minute).Unix(), "exp": time.Now().Add(-6 * time.Minute).Unix(),
		}), "", "invalid_software_statement", "expired"},
		{"no jti", signStatement(t, p.leafKey, jose.ES256, chain, with("jti", nil)), "", "invalid_software_statement", "jti"},
		{"no contacts", signStatement(t, p.leafKey, jose.ES256, chain, with("contacts", []string{"https://example.org"})), "", "invalid_client_metadata", "mailto"},
		{"auth method", signStatement(t, p.leafKey, jose.ES256, chain, with("token_endpoint_auth_method", "client_secret_basic")), "", "invalid_client_metadata", "private_key_jwt"},
		{"grant types", signStatement(t, p.leafKey, jose.ES256, chain, with("grant_types", []string{"authorization_code"})), "", "invalid_client_metadata", "client_credentials"},
		{"no scope", signStatement(t, p.leafKey, jose.ES256, chain, with("scope", nil)), "", "invalid_client_metadata", "scope"},
		{"udap as a number", map[string]any{"software_statement": "x", "certifications": []string{}, "udap": 1}, "", "invalid_client_metadata", "types"},
		{"no certifications", map[string]any{"software_statement": "x", "udap": "1"}, "", "invalid_client_metadata", "certifications"},
		{"form content type", map[string]any{}, "application/x-www-form-urlencoded", "invalid_client_metadata", "Content-Type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if st, ok := body.(string); ok {
				body = map[string]any{"software_statement": st, "certifications": []string{}, "udap": "1"}
			}
			ct := tc.ctype
			if ct == "" {
				ct = "application/json"
			}
			res := post(t, s.RegistrationURL, ct, body)
			if res.status != http.StatusBadRequest || res.body["error"] != tc.wantCode {
				t.Fatalf("%d %v, want 400 %s", res.status, res.body, tc.wantCode)
			}
			if d, _ := res.body["error_description"].(string); !strings.Contains(d, tc.inDescr) {
				t.Errorf("error_description %q does not mention %q", d, tc.inDescr)
			}
		})
	}

	s.FailNext(http.StatusServiceUnavailable, "temporarily_unavailable", "maintenance")
	if res := register(t, s, signStatement(t, p.leafKey, jose.ES256, chain, statementClaimsFor(s.RegistrationURL))); res.status != 503 || res.body["error"] != "temporarily_unavailable" {
		t.Errorf("FailNext: %d %v", res.status, res.body)
	}
	if n := len(s.Failures()); n != len(tests)+1 {
		t.Errorf("%d failures recorded, want %d", n, len(tests)+1)
	}
}
