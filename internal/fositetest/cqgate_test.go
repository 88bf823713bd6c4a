package fositetest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/fositetest"
	"github.com/cqgate/cqgate/keys"
)

// These tests show that fosite, an OAuth server written independently of
// cqgate, accepts the client assertions cqgate's assertion package signs
// and sends, for every algorithm cqgate negotiates.

const clientID = "gateway.example.org"

var (
	rsaKey  = sync.OnceValue(func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
	p256Key = sync.OnceValue(func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k })
	p384Key = sync.OnceValue(func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k })
)

// material is key with a self-signed leaf whose URI SAN is the client.
func material(t *testing.T, key crypto.Signer, kid string) *keys.Material {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: clientID},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		URIs:         []*url.URL{{Scheme: "https", Host: clientID}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.Material{Signer: key, Chain: []*x509.Certificate{leaf}, KeyID: kid}
}

type holder struct{ m *keys.Material }

func (h holder) Current() *keys.Material { return h.m }

func payload(t *testing.T, jws string) map[string]any {
	t.Helper()
	parts := strings.Split(jws, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFositeAcceptsCqgateAssertions(t *testing.T) {
	for _, tc := range []struct {
		alg string
		key crypto.Signer
	}{
		{"RS256", rsaKey()},
		{"RS384", rsaKey()},
		{"ES256", p256Key()},
		{"ES384", p384Key()},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			m := material(t, tc.key, "k-"+tc.alg)
			srv := fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
				ID: clientID, PublicKey: tc.key.Public(), KeyID: m.KeyID, Algorithm: tc.alg, Scopes: []string{"system/*.read"},
			}}})
			e := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder{m}}}
			for _, req := range []struct {
				how string
				r   assertion.Request
			}{
				{"configured", assertion.Request{Algorithm: jose.SignatureAlgorithm(tc.alg)}},
				{"negotiated from the advertised list", assertion.Request{Accepted: []string{"PS512", tc.alg}}},
			} {
				r := req.r
				r.TokenURL, r.ClientID, r.Scope = srv.TokenURL, clientID, "system/Patient.read"
				tok, err := e.Exchange(context.Background(), r)
				if err != nil {
					t.Fatalf("%s: %v (fosite: %v)", req.how, err, srv.Failures())
				}
				if err := srv.Validate(context.Background(), tok.AccessToken, "system/Patient.read"); err != nil {
					t.Errorf("%s: token not valid: %v", req.how, err)
				}
				if tok.Scope != "system/Patient.read" || tok.ExpiresIn < 560*time.Second {
					t.Errorf("%s: token = %v", req.how, tok)
				}
			}
			if n := srv.Exchanges(); n != 2 {
				t.Errorf("%d token requests, want 2 (no retries)", n)
			}

			// Through the cache: 20 concurrent callers, one exchange.
			c := assertion.NewCache(assertion.CacheConfig{})
			r := assertion.Request{TokenURL: srv.TokenURL, ClientID: clientID, Scope: "system/Patient.read", Algorithm: jose.SignatureAlgorithm(tc.alg)}
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					if _, err := c.Token(context.Background(), r.Key(), e.Source(r)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if n := srv.Exchanges(); n != 3 {
				t.Errorf("%d token requests after 20 cached callers, want 3", n)
			}
		})
	}
}

// sameBytes yields the same byte forever, so every jti is the same.
type sameBytes byte

func (b sameBytes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestFositeRejectsReplayedJTI(t *testing.T) {
	m := material(t, p256Key(), "k")
	srv := fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: p256Key().Public(), KeyID: "k", Algorithm: "ES256", Scopes: []string{"system/*.read"},
	}}})
	e := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder{m}, Rand: sameBytes(7)}}
	r := assertion.Request{TokenURL: srv.TokenURL, ClientID: clientID}
	if _, err := e.Exchange(context.Background(), r); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := e.Exchange(context.Background(), r)
	var re *assertion.RetrieveError
	if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "jti_known" || re.RequestID == "" {
		t.Fatalf("replay: err = %v, want 400 jti_known with a request id", err)
	}
	if n := srv.Exchanges(); n != 2 {
		t.Errorf("%d token requests, want 2: a 4xx is not retried", n)
	}
	a := srv.Assertions()
	if payload(t, a[0])["jti"] != payload(t, a[1])["jti"] {
		t.Error("the test did not replay the jti")
	}
}

func TestFositeReceivesB2BAndUDAP(t *testing.T) {
	m := material(t, rsaKey(), "k")
	srv := fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: rsaKey().Public(), KeyID: "k", Algorithm: "RS256", Scopes: []string{"system/*.read"},
	}}})
	e := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder{m}}}
	b2b := &assertion.B2B{
		OrganizationID:   "https://fhir.example.org/Organization/42",
		OrganizationName: "Example Health",
		SubjectName:      "Dr. Jane Smith",
		PurposeOfUse:     []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"},
	}
	// fosite knows nothing of UDAP: it ignores udap=1 and the extensions
	// claim, so this shows they do not disturb a plain RFC 7523 server and
	// that both reach it.
	tok, err := e.Exchange(context.Background(), assertion.Request{
		TokenURL: srv.TokenURL, ClientID: clientID, Scope: "system/Patient.read", Accepted: []string{"RS256"}, UDAP: true, B2B: b2b,
	})
	if err != nil {
		t.Fatalf("%v (fosite: %v)", err, srv.Failures())
	}
	if err := srv.Validate(context.Background(), tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	forms := srv.Forms()
	if got := forms[len(forms)-1]["udap"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("udap = %q", got)
	}
	a := srv.Assertions()
	ext, _ := payload(t, a[len(a)-1])["extensions"].(map[string]any)
	hl7, _ := ext["hl7-b2b"].(map[string]any)
	if hl7["version"] != "1" || hl7["organization_id"] != b2b.OrganizationID || hl7["subject_name"] != b2b.SubjectName {
		t.Errorf("hl7-b2b = %v", hl7)
	}
	if pou, _ := hl7["purpose_of_use"].([]any); len(pou) != 1 || pou[0] != b2b.PurposeOfUse[0] {
		t.Errorf("purpose_of_use = %v", hl7["purpose_of_use"])
	}
}

func TestFositeClockSkew(t *testing.T) {
	m := material(t, p256Key(), "k")
	srv := fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: p256Key().Public(), KeyID: "k", Algorithm: "ES256", Scopes: []string{"system/*.read"},
	}}})
	ahead := func() time.Time { return time.Now().Add(3 * time.Second) } // our clock runs 3s fast
	r := assertion.Request{TokenURL: srv.TokenURL, ClientID: clientID}
	noSkew := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder{m}, Clock: ahead, Skew: -1}, Retry: assertion.RetryPolicy{Attempts: 1}}
	_, err := noSkew.Exchange(context.Background(), r)
	var re *assertion.RetrieveError
	if !errors.As(err, &re) || re.StatusCode != 500 {
		t.Fatalf("without skew: err = %v, want fosite's 500 for an iat in the future", err)
	}
	if f := srv.Failures(); !strings.Contains(f[len(f)-1], "used before issued") && !strings.Contains(f[len(f)-1], "not valid yet") {
		t.Errorf("fosite failure = %q", f[len(f)-1])
	}
	withSkew := &assertion.Exchanger{Signer: &assertion.Signer{Keys: holder{m}, Clock: ahead}} // DefaultSkew
	if _, err := withSkew.Exchange(context.Background(), r); err != nil {
		t.Fatalf("with the default skew: %v (fosite: %v)", err, srv.Failures())
	}
}

func TestFositeExpiredAssertionIsRetriedBounded(t *testing.T) {
	m := material(t, p256Key(), "k")
	srv := fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: p256Key().Public(), KeyID: "k", Algorithm: "ES256",
	}}})
	behind := func() time.Time { return time.Now().Add(-10 * time.Minute) }
	var waits []time.Duration
	e := &assertion.Exchanger{
		Signer: &assertion.Signer{Keys: holder{m}, Clock: behind},
		Retry: assertion.RetryPolicy{Sleep: func(_ context.Context, d time.Duration) error {
			waits = append(waits, d)
			return nil
		}},
	}
	_, err := e.Exchange(context.Background(), assertion.Request{TokenURL: srv.TokenURL, ClientID: clientID})
	var re *assertion.RetrieveError
	if !errors.As(err, &re) || re.StatusCode != 500 || re.ErrorCode != "error" {
		t.Fatalf("err = %v, want fosite's 500 error", err)
	}
	if n := int(srv.Exchanges()); n != assertion.DefaultRetryAttempts || len(waits) != n-1 {
		t.Errorf("%d attempts and %d waits, want %d attempts", n, len(waits), assertion.DefaultRetryAttempts)
	}
	seen := map[any]bool{}
	for _, a := range srv.Assertions() {
		seen[payload(t, a)["jti"]] = true
	}
	if len(seen) != assertion.DefaultRetryAttempts {
		t.Errorf("%d distinct jti, want a fresh one per attempt", len(seen))
	}
	for _, f := range srv.Failures() {
		if !strings.Contains(f, "expired") {
			t.Errorf("fosite failure %q", f)
		}
	}
	for _, a := range srv.Assertions() {
		if strings.Contains(err.Error(), a) || bytes.Contains([]byte(err.Error()), []byte(strings.Split(a, ".")[2])) {
			t.Error("error leaks an assertion")
		}
	}
}
