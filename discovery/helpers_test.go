package discovery

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/clocktest"
)

const basePath = "/r4/" + tenant

// Document names served by fakeFHIR.
const (
	docNameMetadata         = "metadata"
	docNameMetadataOverride = "metadata+override"
	docNameUDAP             = "udap"
	docNameSMART            = "smart"
)

// served is one canned answer.
type served struct {
	status int
	body   string
}

// fakeFHIR is a FHIR server with a metadata endpoint (answering
// differently with the Cerner override header), .well-known/udap and
// .well-known/smart-configuration under basePath. Unset documents answer
// 404. It counts requests per document and records request-shape
// problems, reported when the test ends. While a gate is set for a
// document, its requests wait for the gate to close.
type fakeFHIR struct {
	*httptest.Server
	started chan string // receives the document name of every request (buffered)

	mu       sync.Mutex
	docs     map[string]served
	gates    map[string]chan struct{}
	hits     map[string]int
	problems []string
}

func newFakeFHIR(t *testing.T) *fakeFHIR {
	t.Helper()
	f := &fakeFHIR{
		started: make(chan string, 1000),
		docs:    map[string]served{},
		gates:   map[string]chan struct{}{},
		hits:    map[string]int{},
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.mu.Lock()
		for _, g := range f.gates {
			select {
			case <-g:
			default:
				close(g)
			}
		}
		f.mu.Unlock()
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			t.Error(p)
		}
	})
	return f
}

func (f *fakeFHIR) serve(w http.ResponseWriter, r *http.Request) {
	override := r.Header.Get(HeaderCernerOverride)
	var name, wantAccept string
	switch r.URL.Path {
	case basePath + "/metadata":
		name, wantAccept = docNameMetadata, "application/fhir+json"
		if override == "on" {
			name = docNameMetadataOverride
		}
	case basePath + "/.well-known/udap":
		name, wantAccept = docNameUDAP, "application/json"
	case basePath + "/.well-known/smart-configuration":
		name, wantAccept = docNameSMART, "application/json"
	}
	f.mu.Lock()
	switch {
	case r.Method != http.MethodGet:
		f.problems = append(f.problems, fmt.Sprintf("request %s %s, want GET", r.Method, r.URL.Path))
	case name == "":
		f.problems = append(f.problems, fmt.Sprintf("request for unexpected path %s", r.URL.Path))
	case r.Header.Get("Accept") != wantAccept:
		f.problems = append(f.problems, fmt.Sprintf("%s: Accept = %q, want %q", name, r.Header.Get("Accept"), wantAccept))
	case override != "" && (override != "on" || !strings.HasPrefix(name, docNameMetadata)):
		f.problems = append(f.problems, fmt.Sprintf("%s: unexpected %s: %q", name, HeaderCernerOverride, override))
	case r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "":
		f.problems = append(f.problems, fmt.Sprintf("%s: discovery sent credentials", name))
	case r.URL.RawQuery != "":
		f.problems = append(f.problems, fmt.Sprintf("%s: unexpected query %q", name, r.URL.RawQuery))
	}
	f.hits[name]++
	doc, ok := f.docs[name]
	gate := f.gates[name]
	f.mu.Unlock()
	select {
	case f.started <- name:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == docNameMetadata || name == docNameMetadataOverride {
		w.Header().Set("Content-Type", "application/fhir+json")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	if doc.status != 0 {
		w.WriteHeader(doc.status)
	}
	fmt.Fprint(w, doc.body)
}

// set makes document name answer body with status (0: 200).
func (f *fakeFHIR) set(name string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.docs[name] = served{status, body}
}

// gate makes requests for name wait until the returned channel is
// closed.
func (f *fakeFHIR) gate(name string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := make(chan struct{})
	f.gates[name] = g
	return g
}

// count returns the number of requests for name.
func (f *fakeFHIR) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[name]
}

// counts returns the request counts of every document.
func (f *fakeFHIR) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(map[string]int, len(f.hits))
	for k, v := range f.hits {
		c[k] = v
	}
	return c
}

func (f *fakeFHIR) base() string { return f.URL + basePath }

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

// oauthURIs is a CapabilityStatement with the given oauth-uris
// sub-extensions.
func oauthURIs(subExtensions string) string {
	return `{"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": {"extension": [
		{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [` + subExtensions + `]}
	]}}]}`
}

// smartConfig is a smart-configuration document.
func smartConfig(tokenEndpoint string, algs ...string) string {
	doc := map[string]any{
		"token_endpoint":                        tokenEndpoint,
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"grant_types_supported":                 []string{"client_credentials"},
		"registration_endpoint":                 "https://auth.example.test/smart/register",
		"capabilities":                          []string{"client-confidential-asymmetric"},
	}
	if len(algs) > 0 {
		doc["token_endpoint_auth_signing_alg_values_supported"] = algs
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// testKeys are generated once per test binary: key generation is slow
// under the race detector, certificates are cheap.
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	ec := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{
		"root": ec(elliptic.P256()), "intermediate": ec(elliptic.P256()),
		"other-root": ec(elliptic.P256()), "other-intermediate": ec(elliptic.P256()),
		"leaf-rsa": rsaKey, "leaf-ec": ec(elliptic.P256()),
	}
})

// testPKI is a trust anchor, an intermediate CA and a UDAP server leaf
// certificate, valid around the fake clock's time.
type testPKI struct {
	root, intermediate, leaf *x509.Certificate
	leafKey                  crypto.Signer
	alg                      jose.SignatureAlgorithm
	pool                     *x509.CertPool // holds root only
}

// newPKI issues a chain for a leaf with the given URI SANs. other picks
// the second set of CA keys (an untrusted CA); ec an ES256 leaf.
func newPKI(t testing.TB, now time.Time, other, ec bool, sans ...string) *testPKI {
	t.Helper()
	keys := testKeys()
	rootName, interName, leafName := "root", "intermediate", "leaf-rsa"
	if other {
		rootName, interName = "other-root", "other-intermediate"
	}
	p := &testPKI{alg: jose.RS256}
	if ec {
		leafName, p.alg = "leaf-ec", jose.ES256
	}
	nb, na := now.Add(-24*time.Hour), now.AddDate(2, 0, 0)
	ca := func(cn string, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(time.Now().UnixNano()),
			Subject:               pkix.Name{CommonName: cn},
			NotBefore:             nb,
			NotAfter:              na,
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		return mustCert(t, tmpl, parent, key.Public(), parentKey)
	}
	p.root = ca("test UDAP root "+rootName, keys[rootName], nil, nil)
	p.intermediate = ca("test UDAP intermediate "+interName, keys[interName], p.root, keys[rootName])
	var uris []*url.URL
	for _, s := range sans {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, u)
	}
	p.leafKey = keys[leafName]
	p.leaf = mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test UDAP server"},
		NotBefore:    nb,
		NotAfter:     na,
		URIs:         uris,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}, p.intermediate, p.leafKey.Public(), keys[interName])
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.root)
	return p
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sign returns a signed_metadata JWT with claims, the leaf and the
// intermediate in x5c.
func (p *testPKI) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	x5c := []string{base64.StdEncoding.EncodeToString(p.leaf.Raw), base64.StdEncoding.EncodeToString(p.intermediate.Raw)}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: p.alg, Key: p.leafKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", x5c))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// udapClaims are valid signed_metadata claims for base at now.
func udapClaims(base string, now time.Time, tokenEndpoint string) map[string]any {
	return map[string]any{
		"iss":                   base,
		"sub":                   base,
		"iat":                   now.Add(-time.Hour).Unix(),
		"exp":                   now.Add(30 * 24 * time.Hour).Unix(),
		"jti":                   "signed-metadata-1",
		"token_endpoint":        tokenEndpoint,
		"registration_endpoint": "https://udap.example.test/register",
	}
}

// udapDoc is a UDAP metadata document with unsigned values and the given
// signed_metadata (omitted when empty).
func udapDoc(tokenEndpoint, signed string) string {
	doc := map[string]any{
		"udap_versions_supported":                                []string{"1"},
		"udap_profiles_supported":                                []string{"udap_dcr", "udap_authn", "udap_authz"},
		"udap_authorization_extensions_supported":                []string{"hl7-b2b"},
		"udap_authorization_extensions_required":                 []string{"hl7-b2b"},
		"udap_certifications_supported":                          []string{},
		"grant_types_supported":                                  []string{"client_credentials"},
		"scopes_supported":                                       []string{"system/*.read"},
		"token_endpoint":                                         tokenEndpoint,
		"token_endpoint_auth_methods_supported":                  []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported":       []string{"RS256", "ES384"},
		"registration_endpoint":                                  "https://udap.example.test/unsigned-register",
		"registration_endpoint_jwt_signing_alg_values_supported": []string{"RS256"},
	}
	if signed != "" {
		doc["signed_metadata"] = signed
	}
	b, _ := json.Marshal(doc)
	return string(b)
}
