package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/keys"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	rsaKeys = sync.OnceValue(func() []crypto.Signer {
		out := make([]crypto.Signer, 2)
		for i := range out {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			out[i] = k
		}
		return out
	})
)

// material certifies key under a test PKI and returns it as a Holder
// would hold it: the private key as Signer, the chain leaf first.
func material(t *testing.T, key crypto.Signer) *keys.Material {
	t.Helper()
	p := pkitest.New(t, pkitest.Options{Clock: func() time.Time { return start }})
	leaf := p.Issue(t, p.Intermediate, pkitest.CertOptions{Key: key, URIs: []string{"https://cqgate.example.org"}, NoCRL: true, NoOCSP: true})
	kid, err := keys.KeyIDFor(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &keys.Material{Signer: key, Chain: []*x509.Certificate{leaf.Cert, p.Intermediate.Cert}, KeyID: kid, Version: "test"}
}

// provider is a KeyProvider whose material the test swaps.
type provider struct{ m atomic.Pointer[keys.Material] }

func (p *provider) Current() *keys.Material { return p.m.Load() }

func newProvider(m *keys.Material) *provider {
	p := &provider{}
	p.m.Store(m)
	return p
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.Signer {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publicFields are the only members a published key may have.
var publicFields = map[string]bool{
	"kty": true, "kid": true, "alg": true, "use": true,
	"n": true, "e": true, "crv": true, "x": true, "y": true,
	"x5c": true, "x5t": true, "x5t#S256": true,
}

func TestNoPrivateMaterial(t *testing.T) {
	ids := []Identity{
		{Name: "rsa", Keys: newProvider(material(t, rsaKeys()[0]))},
		{Name: "p256", Keys: newProvider(material(t, ecKey(t, elliptic.P256())))},
		{Name: "p384", Keys: newProvider(material(t, ecKey(t, elliptic.P384())))},
	}
	s, err := New(Options{}, ids...)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if len(doc.Keys) != 3 {
		t.Fatalf("%d keys, want 3", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for field := range k {
			if !publicFields[field] {
				t.Errorf("key %v has member %q", k["kid"], field)
			}
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v lists private parameter %q", k["kid"], private)
			}
		}
	}
}

func TestKeyMembers(t *testing.T) {
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     jose.SignatureAlgorithm
		wantAlg string
		wantKty string
	}{
		{"RSA default", rsaKeys()[0], "", "RS384", "RSA"},
		{"RSA configured", rsaKeys()[0], jose.RS256, "RS256", "RSA"},
		{"P-256", ecKey(t, elliptic.P256()), "", "ES256", "EC"},
		{"P-384", ecKey(t, elliptic.P384()), "", "ES384", "EC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := material(t, tc.key)
			s, err := New(Options{}, Identity{Name: "a", Keys: newProvider(m), Algorithm: tc.alg})
			if err != nil {
				t.Fatal(err)
			}
			set, err := s.Keys()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(set)
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			_ = json.Unmarshal(b, &doc)
			k := doc.Keys[0]
			x5c, _ := k["x5c"].([]any)
			sum := sha256.Sum256(m.Chain[0].Raw)
			switch {
			case k["kid"] != m.KeyID, k["alg"] != tc.wantAlg, k["use"] != "sig", k["kty"] != tc.wantKty:
				t.Errorf("key = %v", k)
			case len(x5c) != 2 || x5c[0] != base64.StdEncoding.EncodeToString(m.Chain[0].Raw) ||
				x5c[1] != base64.StdEncoding.EncodeToString(m.Chain[1].Raw):
				t.Errorf("x5c = %v, want the chain, leaf first", x5c)
			case k["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]):
				t.Errorf("x5t#S256 = %v", k["x5t#S256"])
			}
		})
	}
}

func TestRotationOverlap(t *testing.T) {
	clock := clocktest.New(start)
	a, b := material(t, rsaKeys()[0]), material(t, rsaKeys()[1])
	p := newProvider(a)
	s, err := New(Options{Clock: clock.Now, Overlap: time.Hour}, Identity{Name: "cq", Keys: p})
	if err != nil {
		t.Fatal(err)
	}
	kids := func() []string {
		set, err := s.Keys()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	want := func(step string, w ...string) {
		t.Helper()
		if got := kids(); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Fatalf("%s: kids %v, want %v", step, got, w)
		}
	}
	want("before rotation", a.KeyID)
	clock.Advance(10 * time.Minute)
	p.m.Store(b)
	want("right after rotation: current first", b.KeyID, a.KeyID)
	clock.Advance(time.Hour - time.Second)
	want("within the overlap", b.KeyID, a.KeyID)
	clock.Advance(time.Second)
	want("after the overlap", b.KeyID)

	// Rotating back to a key lists it once, as current.
	p.m.Store(a)
	want("rotated back", a.KeyID, b.KeyID)
	p.m.Store(b)
	want("and forth", b.KeyID, a.KeyID)
}

func TestNegativeOverlapListsOnlyCurrent(t *testing.T) {
	a, b := material(t, rsaKeys()[0]), material(t, rsaKeys()[1])
	p := newProvider(a)
	s, _ := New(Options{Overlap: -1}, Identity{Name: "cq", Keys: p})
	_, _ = s.Keys()
	p.m.Store(b)
	set, err := s.Keys()
	if err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != b.KeyID {
		t.Fatalf("set = %+v, %v", set, err)
	}
}

func TestIdentities(t *testing.T) {
	shared := material(t, ecKey(t, elliptic.P256()))
	other := material(t, ecKey(t, elliptic.P256()))
	s, err := New(Options{},
		Identity{Name: "b", Keys: newProvider(other)},
		Identity{Name: "a", Keys: newProvider(shared)},
		Identity{Name: "a-tefca", Keys: newProvider(shared)},
		Identity{Name: "not-loaded", Keys: &provider{}},
	)
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.Keys()
	if err != nil || len(set.Keys) != 2 {
		t.Fatalf("set of %d keys (%v), want 2: a shared key is listed once, an unloaded identity not at all", len(set.Keys), err)
	}
	for _, tc := range []struct {
		name string
		ids  []Identity
		has  string
	}{
		{"nil provider", []Identity{{Name: "x"}}, `jwks: identity 0 ("x") has no key provider`},
		{"duplicate", []Identity{{Name: "x", Keys: &provider{}}, {Name: "x", Keys: &provider{}}}, `jwks: identity "x" listed twice`},
	} {
		if _, err := New(Options{}, tc.ids...); err == nil || err.Error() != tc.has {
			t.Errorf("%s: New = %v, want %q", tc.name, err, tc.has)
		}
	}
}

func TestHTTP(t *testing.T) {
	p := &provider{}
	s, _ := New(Options{MaxAge: 10 * time.Minute}, Identity{Name: "cq", Keys: p})
	srv := httptest.NewServer(s)
	defer srv.Close()
	do := func(method string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/.well-known/jwks.json", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := do(http.MethodGet)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(body, `"resourceType":"OperationOutcome"`) {
		t.Fatalf("before a key loads: %d %q %s", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}

	p.m.Store(material(t, ecKey(t, elliptic.P256())))
	resp, body = do(http.MethodGet)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "public, max-age=600" || !strings.HasPrefix(etag, `"`) ||
		!strings.HasPrefix(body, `{"keys":[{`) {
		t.Fatalf("GET: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := do(http.MethodGet, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != etag {
		t.Errorf("If-None-Match with the current ETag: %d", resp.StatusCode)
	}
	if resp, _ := do(http.MethodGet, "If-None-Match", `"stale"`); resp.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: %d", resp.StatusCode)
	}
	if resp, body := do(http.MethodHead); resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(http.MethodPost); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" ||
		!strings.Contains(body, "OperationOutcome") {
		t.Errorf("POST: %d %v", resp.StatusCode, resp.Header)
	}

	p.m.Store(material(t, ecKey(t, elliptic.P256())))
	if resp, _ := do(http.MethodGet, "If-None-Match", etag); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Errorf("after a rotation the old ETag still matches: %d", resp.StatusCode)
	}
}

// verifyWithJKU is a partner's verifier written without cqgate code: it
// reads the jku and kid headers, requires jku to be the JWK Set URL
// registered for the client, fetches the set with fosite's JWKS fetcher
// (go-jose v3), picks the key by kid and checks the signature with the
// algorithm the key names.
func verifyWithJKU(token, registered string) error {
	jws, err := josev3.ParseSigned(token)
	if err != nil {
		return err
	}
	h := jws.Signatures[0].Protected
	jku, _ := h.ExtraHeaders["jku"].(string)
	if jku != registered {
		return &verifyError{"jku " + jku + " is not the registered JWK Set URL"}
	}
	set, err := fosite.NewDefaultJWKSFetcherStrategy().Resolve(context.Background(), jku, true)
	if err != nil {
		return err
	}
	found := set.Key(h.KeyID)
	if len(found) != 1 {
		return &verifyError{"no key with kid " + h.KeyID}
	}
	k := found[0]
	if k.Algorithm != h.Algorithm || k.Use != "sig" || !k.IsPublic() {
		return &verifyError{"key " + k.KeyID + " is for " + k.Algorithm + "/" + k.Use}
	}
	_, err = jws.Verify(k.Key)
	return err
}

type verifyError struct{ s string }

func (e *verifyError) Error() string { return e.s }

func TestIndependentVerifierFetchesTheSet(t *testing.T) {
	clock := clocktest.New(start)
	a, b := material(t, rsaKeys()[0]), material(t, rsaKeys()[1])
	p := newProvider(a)
	set, err := New(Options{Clock: clock.Now, Overlap: time.Hour}, Identity{Name: "cq", Keys: p})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/jwks.json", set)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jku := srv.URL + "/.well-known/jwks.json"

	signer := &assertion.Signer{Keys: p, Clock: clock.Now}
	sign := func() string {
		t.Helper()
		tok, err := signer.Sign(context.Background(), assertion.Claims{ClientID: "cqgate", Audience: "https://ehr.example.org/token", JKU: jku})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := sign()
	if err := verifyWithJKU(first, jku); err != nil {
		t.Fatalf("verifier refused cqgate's assertion: %v", err)
	}
	if err := verifyWithJKU(first, "https://elsewhere.example/jwks.json"); err == nil {
		t.Fatal("verifier accepted an unregistered jku; the check proves nothing")
	}

	p.m.Store(b)
	second := sign()
	for name, tok := range map[string]string{"new key": second, "previous key, within the overlap": first} {
		if err := verifyWithJKU(tok, jku); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	clock.Advance(time.Hour)
	if err := verifyWithJKU(first, jku); err == nil {
		t.Fatal("the previous key still verifies after the overlap")
	}
	if err := verifyWithJKU(second, jku); err != nil {
		t.Fatalf("current key after the overlap: %v", err)
	}
}

// Identities sharing one key are listed once, and the entry says only
// what holds for all of them: their alg when they agree, none when they
// do not; their certificate when it is one, none when each has its own.
func TestSharedKeySaysWhatHoldsForEvery(t *testing.T) {
	key := rsaKeys()[0]
	a, b := material(t, key), material(t, key) // one key, two certificates
	for _, tc := range []struct {
		name          string
		algA, algB    jose.SignatureAlgorithm
		mA, mB        *keys.Material
		wantAlg       string
		wantCertified bool
	}{
		{"one certificate, one alg", jose.RS384, jose.RS384, a, a, "RS384", true},
		{"one certificate, two algs", jose.RS384, jose.RS256, a, a, "", true},
		{"two certificates, one alg", jose.RS384, jose.RS384, a, b, "RS384", false},
		{"two certificates, two algs", jose.RS256, jose.RS384, a, b, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{},
				Identity{Name: "a", Keys: newProvider(tc.mA), Algorithm: tc.algA},
				Identity{Name: "b", Keys: newProvider(tc.mB), Algorithm: tc.algB})
			if err != nil {
				t.Fatal(err)
			}
			set, err := s.Keys()
			if err != nil || len(set.Keys) != 1 {
				t.Fatalf("set of %d keys (%v), want the shared key once", len(set.Keys), err)
			}
			k := set.Keys[0]
			if k.Algorithm != tc.wantAlg {
				t.Errorf("alg %q, want %q", k.Algorithm, tc.wantAlg)
			}
			if certified := len(k.Certificates) > 0 || len(k.CertificateThumbprintSHA256) > 0; certified != tc.wantCertified {
				t.Errorf("x5c/x5t#S256 present = %v, want %v", certified, tc.wantCertified)
			}
			if tc.wantCertified && !k.Certificates[0].Equal(tc.mA.Chain[0]) {
				t.Errorf("x5c is not the identities' certificate")
			}
		})
	}
}

// A key two identities shared stays listed through its overlap as it
// was: with alg only if they all signed with the same one, whether one
// identity still holds it or both rotated.
func TestRetiredSharedKeySaysWhatHoldsForEvery(t *testing.T) {
	clock := clocktest.New(start)
	shared, next := material(t, rsaKeys()[0]), material(t, rsaKeys()[1])
	pb := newProvider(shared)
	for _, tc := range []struct {
		name   string
		rotate func(pa *provider)
	}{
		{"a still holds it", func(*provider) {}},
		{"both rotated", func(pa *provider) { pa.m.Store(next) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pa := newProvider(shared)
			pb.m.Store(shared)
			s, err := New(Options{Clock: clock.Now, Overlap: time.Hour},
				Identity{Name: "a", Keys: pa, Algorithm: jose.RS256},
				Identity{Name: "b", Keys: pb, Algorithm: jose.RS384})
			if err != nil {
				t.Fatal(err)
			}
			if set, err := s.Keys(); err != nil || len(set.Keys) != 1 || set.Keys[0].Algorithm != "" {
				t.Fatalf("before rotation: %+v, %v; want the shared key once, without alg", set.Keys, err)
			}
			clock.Advance(time.Minute)
			pb.m.Store(next)
			tc.rotate(pa)
			set, err := s.Keys()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range set.Keys {
				if k.KeyID == shared.KeyID && k.Algorithm != "" {
					t.Errorf("the old shared key is listed with alg %q during the overlap; b's RS384 assertions under it are still in flight", k.Algorithm)
				}
			}
		})
	}
}
