package assertion

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/keys"
)

const testAud = "https://fhir-ehr.example.com/beta/tenant/Authorization/token"

// rawSegments decodes the header and payload of a compact JWS into maps,
// to check the wire form (x5c encoding, aud as a string).
func rawSegments(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, payload
}

// backdated is the iat (and nbf) a Signer with the default skew stamps at
// now.
func backdated(now time.Time) time.Time { return time.Unix(now.Add(-DefaultSkew).Unix(), 0) }

// verifyAssertion parses and verifies token and checks every header and
// claim the profiles require; iat is the expected iat (= nbf).
func verifyAssertion(t *testing.T, token string, m *keys.Material, wantAlg jose.SignatureAlgorithm, clientID, aud string, iat time.Time, lifetime time.Duration) jwt.Claims {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{wantAlg})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("%d headers", len(tok.Headers))
	}
	h := tok.Headers[0]
	if h.Algorithm != string(wantAlg) {
		t.Errorf("alg = %q, want %q", h.Algorithm, wantAlg)
	}
	if h.KeyID != m.KeyID {
		t.Errorf("kid = %q, want %q", h.KeyID, m.KeyID)
	}
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "JWT" {
		t.Errorf("typ = %v, want JWT", typ)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert())
	chains, err := h.Certificates(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("x5c does not verify to the test CA: %v", err)
	}
	if len(chains) != 1 || len(chains[0]) != 2 || !chains[0][0].Equal(m.Chain[0]) {
		t.Errorf("x5c chains = %v, want the leaf first", chains)
	}
	header, payload := rawSegments(t, token)
	x5c, ok := header["x5c"].([]any)
	if !ok || len(x5c) != len(m.Chain) {
		t.Fatalf("raw x5c = %#v", header["x5c"])
	}
	for i, v := range x5c {
		s, _ := v.(string)
		der, err := base64.StdEncoding.DecodeString(s) // standard, padded: RFC 7515 §4.1.6
		if err != nil || !bytes.Equal(der, m.Chain[i].Raw) {
			t.Errorf("x5c[%d] is not the standard base64 DER of chain[%d] (err %v)", i, i, err)
		}
	}
	if _, ok := header["jwk"]; ok {
		t.Error("header embeds a jwk")
	}
	if a, ok := payload["aud"].(string); !ok || a != aud {
		t.Errorf("raw aud = %#v, want the string %q", payload["aud"], aud)
	}

	var c jwt.Claims
	if err := tok.Claims(m.Chain[0].PublicKey, &c); err != nil {
		t.Fatalf("signature does not verify with the leaf key: %v", err)
	}
	if c.Issuer != clientID || c.Subject != clientID {
		t.Errorf("iss/sub = %q/%q, want %q", c.Issuer, c.Subject, clientID)
	}
	if c.IssuedAt == nil || c.Expiry == nil {
		t.Fatalf("iat/exp missing: %+v", c)
	}
	if got := c.IssuedAt.Time(); !got.Equal(iat) {
		t.Errorf("iat = %v, want %v", got, iat)
	}
	if c.NotBefore == nil || !c.NotBefore.Time().Equal(c.IssuedAt.Time()) {
		t.Errorf("nbf = %v, want iat %v", c.NotBefore, c.IssuedAt)
	}
	if d := c.Expiry.Time().Sub(c.IssuedAt.Time()); d != lifetime || d > 300*time.Second {
		t.Errorf("exp - iat = %v, want %v (≤ 300s)", d, lifetime)
	}
	if b, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(b) != 32 {
		t.Errorf("jti %q is not 32 base64url bytes (err %v)", c.ID, err)
	}
	return c
}

func TestSignAlgorithms(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     jose.SignatureAlgorithm
		wantAlg jose.SignatureAlgorithm
	}{
		{"RSA default is RS384", rsaKey(), "", jose.RS384},
		{"RSA RS256", rsaKey(), jose.RS256, jose.RS256},
		{"RSA RS384", rsaKey(), jose.RS384, jose.RS384},
		{"RSA RS512", rsaKey(), jose.RS512, jose.RS512},
		{"RSA PS256", rsaKey(), jose.PS256, jose.PS256},
		{"RSA PS384", rsaKey(), jose.PS384, jose.PS384},
		{"P-256 ES256", p256Key(), jose.ES256, jose.ES256},
		{"P-384 ES384", p384Key(), jose.ES384, jose.ES384},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMaterial(t, tc.key)
			s := &Signer{Keys: staticKeys{m}, Clock: clock.Now}
			tok, err := s.Sign(context.Background(), Claims{ClientID: "client-1", Audience: testAud, Algorithm: tc.alg})
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			verifyAssertion(t, tok, m, tc.wantAlg, "client-1", testAud, backdated(clock.Now()), 300*time.Second)
		})
	}
}

func TestSignRefusesIncompatibleAlgorithm(t *testing.T) {
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     jose.SignatureAlgorithm
		keyType string // empty: algorithm unsupported whatever the key
	}{
		{"ES256 with RSA", rsaKey(), jose.ES256, "RSA-2048"},
		{"ES384 with RSA", rsaKey(), jose.ES384, "RSA-2048"},
		{"RS256 with P-256", p256Key(), jose.RS256, "ECDSA P-256"},
		{"RS384 with P-384", p384Key(), jose.RS384, "ECDSA P-384"},
		{"ES384 with P-256", p256Key(), jose.ES384, "ECDSA P-256"},
		{"ES256 with P-384", p384Key(), jose.ES256, "ECDSA P-384"},
		{"ES256 with P-521", p521Key(), jose.ES256, "ECDSA P-521"},
		{"RS256 with Ed25519", edKey(), jose.RS256, "Ed25519"},
		{"ES512 unsupported", p521Key(), jose.ES512, ""},
		{"EdDSA unsupported", edKey(), jose.EdDSA, ""},
		{"HS256 unsupported", rsaKey(), jose.HS256, ""},
		{"none unsupported", rsaKey(), "none", ""},
		{"lower-case rs256 unsupported", rsaKey(), "rs256", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Signer{Keys: staticKeys{newMaterial(t, tc.key)}}
			_, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: tc.alg})
			var ae *AlgorithmError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *AlgorithmError", err)
			}
			if ae.Algorithm != string(tc.alg) || ae.KeyType != tc.keyType {
				t.Errorf("AlgorithmError = %+v, want alg %q key %q", ae, tc.alg, tc.keyType)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "assertion: ") || !strings.Contains(msg, string(tc.alg)) || !strings.Contains(msg, tc.keyType) {
				t.Errorf("error %q should name the algorithm and key type", msg)
			}
		})
	}
}

func TestSignValidation(t *testing.T) {
	good := newMaterial(t, p256Key())
	mismatched := newMaterial(t, p256Key())
	mismatched.Signer = p384Key()
	noChain := *good
	noChain.Chain = nil
	tests := []struct {
		name    string
		keys    KeyProvider
		claims  Claims
		wantErr string
		is      error
	}{
		{"no provider", nil, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}, "no signing key", ErrNoKey},
		{"nil material", staticKeys{nil}, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}, "no signing key", ErrNoKey},
		{"nil signer", staticKeys{&keys.Material{Chain: good.Chain}}, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}, "no signing key", ErrNoKey},
		{"no chain", staticKeys{&noChain}, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}, "no certificate chain", nil},
		{"key does not match leaf", staticKeys{mismatched}, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES384}, "does not match the leaf", nil},
		{"RSA too small", staticKeys{newMaterial(t, smallRSAKey())}, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.RS256}, "too small", nil},
		{"empty client id", staticKeys{good}, Claims{Audience: testAud, Algorithm: jose.ES256}, "client id is empty", nil},
		{"empty audience", staticKeys{good}, Claims{ClientID: "c", Algorithm: jose.ES256}, "audience is empty", nil},
		{"relative audience", staticKeys{good}, Claims{ClientID: "c", Audience: "/token", Algorithm: jose.ES256}, "not an absolute", nil},
		{"ftp audience", staticKeys{good}, Claims{ClientID: "c", Audience: "ftp://example.com/token", Algorithm: jose.ES256}, "not an absolute", nil},
		{"no host", staticKeys{good}, Claims{ClientID: "c", Audience: "https:///token", Algorithm: jose.ES256}, "not an absolute", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Signer{Keys: tc.keys}
			_, err := s.Sign(context.Background(), tc.claims)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "assertion: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}

	var nilSigner *Signer
	if _, err := nilSigner.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud}); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil Signer: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Signer{Keys: staticKeys{good}}).Sign(ctx, Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
}

func TestSignLifetime(t *testing.T) {
	clock := newFakeClock()
	clock.Advance(700 * time.Millisecond) // iat is truncated to the second
	m := newMaterial(t, p256Key())
	tests := []struct {
		lifetime, want time.Duration
	}{
		{0, 300 * time.Second},
		{-time.Second, 300 * time.Second},
		{time.Hour, 300 * time.Second},
		{301 * time.Second, 300 * time.Second},
		{300 * time.Second, 300 * time.Second},
		{60 * time.Second, 60 * time.Second},
		{90500 * time.Millisecond, 90 * time.Second},
		{time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			s := &Signer{Keys: staticKeys{m}, Clock: clock.Now, Lifetime: tc.lifetime}
			tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			skew := min(DefaultSkew, tc.want/2) // the skew is capped at half the lifetime
			verifyAssertion(t, tok, m, jose.ES256, "c", testAud, time.Unix(clock.Now().Add(-skew).Unix(), 0), tc.want)
		})
	}
}

func TestSignJTIUnique(t *testing.T) {
	m := newMaterial(t, rsaKey())
	clock := newFakeClock()
	s := &Signer{Keys: staticKeys{m}, Clock: clock.Now}
	seen := make(map[string]bool, 1000)
	for i := range 1000 {
		tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud})
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		if i%100 == 0 {
			c = verifyAssertion(t, tok, m, jose.RS384, "c", testAud, backdated(clock.Now()), 300*time.Second)
		} else {
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS384})
			if err != nil {
				t.Fatal(err)
			}
			if err := parsed.Claims(m.Chain[0].PublicKey, &c); err != nil {
				t.Fatal(err)
			}
		}
		if len(c.ID) != 43 {
			t.Fatalf("jti %q has length %d, want 43", c.ID, len(c.ID))
		}
		if seen[c.ID] {
			t.Fatalf("jti %q reused after %d assertions", c.ID, i)
		}
		seen[c.ID] = true
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestSignRand(t *testing.T) {
	m := newMaterial(t, p256Key())
	s := &Signer{Keys: staticKeys{m}, Rand: bytes.NewReader(bytes.Repeat([]byte{0xAB}, 32))}
	tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	_, payload := rawSegments(t, tok)
	if want := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 32)); payload["jti"] != want {
		t.Errorf("jti = %v, want %v (from Rand)", payload["jti"], want)
	}
	for _, r := range []io.Reader{errReader{}, bytes.NewReader(make([]byte, 10))} {
		s.Rand = r
		if _, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256}); err == nil || !strings.Contains(err.Error(), "jti") {
			t.Errorf("Rand %T: err = %v, want a jti error", r, err)
		}
	}
}

func TestSignDerivesKeyIDWhenMissing(t *testing.T) {
	m := newMaterial(t, p256Key())
	m.KeyID = ""
	tok, err := (&Signer{Keys: staticKeys{m}}).Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: m.Signer.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	header, _ := rawSegments(t, tok)
	if want := base64.RawURLEncoding.EncodeToString(tp); header["kid"] != want {
		t.Errorf("kid = %v, want the RFC 7638 thumbprint %v", header["kid"], want)
	}
}

func TestSupportedAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    jose.SignatureAlgorithm
		wantErr bool
	}{
		{"", "", false}, // follow the key
		{"RS256", jose.RS256, false},
		{"RS384", jose.RS384, false},
		{"RS512", jose.RS512, false},
		{"PS256", jose.PS256, false},
		{"PS384", jose.PS384, false},
		{"PS512", jose.PS512, false},
		{"ES256", jose.ES256, false},
		{"ES384", jose.ES384, false},
		{"ES512", "", true},
		{"EdDSA", "", true},
		{"HS256", "", true},
		{"none", "", true},
		{"rs384", "", true},
	}
	for _, tc := range tests {
		got, err := SupportedAlgorithm(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("SupportedAlgorithm(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "assertion: ") || !strings.Contains(err.Error(), tc.in)) {
			t.Errorf("SupportedAlgorithm(%q) error %q should name the algorithm", tc.in, err)
		}
	}
}

// TestSignErrorsDoNotLeakKeys checks that no failure prints private key
// material.
func TestSignErrorsDoNotLeakKeys(t *testing.T) {
	m := newMaterial(t, rsaKey())
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey())
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{base64.StdEncoding.EncodeToString(der)[:64], base64.RawURLEncoding.EncodeToString(der)[:64]}
	s := &Signer{Keys: staticKeys{m}}
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, "bogus"} {
		_, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, Algorithm: alg})
		if err == nil {
			t.Fatal("expected an error")
		}
		assertNoSecrets(t, "error", err.Error(), secrets...)
	}
}
