package discovery

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// discoverUDAP runs Discover with only the udap source.
func discoverUDAP(t *testing.T, f *fakeFHIR, now func() time.Time, anchors *x509.CertPool) (*Result, error) {
	t.Helper()
	d := New(Config{HTTPClient: f.Client(), Clock: now, TrustAnchors: anchors})
	return d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{SourceUDAP}})
}

func TestUDAPSignedMetadataAccepted(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	tests := []struct {
		name   string
		ec     bool
		claims func(base string) map[string]any
		sans   func(base string) []string
	}{
		{name: "RS256 leaf under an intermediate"},
		{name: "ES256 leaf", ec: true},
		{
			name:   "iss with a trailing slash",
			claims: func(base string) map[string]any { return udapClaims(base+"/", now, urlUDAP) },
		},
		{
			name: "exp exactly a year after iat",
			claims: func(base string) map[string]any {
				c := udapClaims(base, now, urlUDAP)
				iat := now.Add(-time.Hour)
				c["iat"], c["exp"] = iat.Unix(), iat.AddDate(1, 0, 0).Unix()
				return c
			},
		},
		{
			name: "iat slightly in the future (clock skew)",
			claims: func(base string) map[string]any {
				c := udapClaims(base, now, urlUDAP)
				c["iat"] = now.Add(30 * time.Second).Unix()
				return c
			},
		},
		{
			name: "several URI SANs",
			sans: func(base string) []string { return []string{"https://other.example.test/fhir", base} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			sans := []string{f.base()}
			if tt.sans != nil {
				sans = tt.sans(f.base())
			}
			pki := newPKI(t, now, false, tt.ec, sans...)
			claims := udapClaims(f.base(), now, urlUDAP)
			if tt.claims != nil {
				claims = tt.claims(f.base())
			}
			f.set(docNameUDAP, 0, udapDoc(urlUDAP, pki.sign(t, claims)))
			r, err := discoverUDAP(t, f, clock.Now, pki.pool)
			if err != nil {
				t.Fatal(err)
			}
			if r.TokenURL != urlUDAP || r.Source != SourceUDAP || !r.UDAP {
				t.Errorf("got %+v", *r)
			}
			exp := time.Unix(claims["exp"].(int64), 0)
			want := now.Add(DefaultTTL)
			if exp.Before(want) {
				want = exp
			}
			if !r.Expires.Equal(want) {
				t.Errorf("Expires = %v, want the earlier of TTL and signed_metadata exp %v", r.Expires, exp)
			}
		})
	}
}

func TestUDAPSignedValuesBeatUnsigned(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	claims := udapClaims(f.base(), now, "https://udap.example.test/signed-token")
	claims["token_endpoint_auth_signing_alg_values_supported"] = []string{"ES384"}
	claims["registration_endpoint"] = "https://udap.example.test/signed-register"
	// Unsigned: token URL, registration URL and algorithms differ; auth
	// methods are only unsigned.
	f.set(docNameUDAP, 0, udapDoc("https://evil.example.test/token", pki.sign(t, claims)))
	r, err := discoverUDAP(t, f, clock.Now, pki.pool)
	if err != nil {
		t.Fatal(err)
	}
	if r.TokenURL != "https://udap.example.test/signed-token" || r.RegistrationEndpoint != "https://udap.example.test/signed-register" ||
		!slices.Equal(r.SigningAlgorithms, []string{"ES384"}) || !slices.Equal(r.AuthMethods, []string{"private_key_jwt"}) {
		t.Errorf("got token %s, registration %s, algorithms %v, methods %v; want the signed values (methods unsigned)",
			r.TokenURL, r.RegistrationEndpoint, r.SigningAlgorithms, r.AuthMethods)
	}
}

// The registration endpoint's algorithms
// (registration_endpoint_jwt_signing_alg_values_supported) come out of
// UDAP metadata apart from the token endpoint's, signed values first,
// and the cached result keeps them; metadata without them yields none,
// not the token endpoint's.
func TestUDAPRegistrationAlgorithms(t *testing.T) {
	const key = "registration_endpoint_jwt_signing_alg_values_supported"
	for _, tc := range []struct {
		name             string
		signed, unsigned []string // nil leaves the member out
		want             []string
	}{
		{"unsigned only", nil, []string{"RS256"}, []string{"RS256"}},
		{"signed beats unsigned", []string{"ES256", "RS256"}, []string{"RS256"}, []string{"ES256", "RS256"}},
		{"signed only", []string{"RS384"}, nil, []string{"RS384"}},
		{"absent", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			now := clock.Now()
			f := newFakeFHIR(t)
			pki := newPKI(t, now, false, false, f.base())
			claims := udapClaims(f.base(), now, urlUDAP)
			if tc.signed != nil {
				claims[key] = tc.signed
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(udapDoc(urlUDAP, pki.sign(t, claims))), &doc); err != nil {
				t.Fatal(err)
			}
			delete(doc, key)
			if tc.unsigned != nil {
				doc[key] = tc.unsigned
			}
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			f.set(docNameUDAP, 0, string(b))
			d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TrustAnchors: pki.pool})
			for _, pass := range []string{"discovered", "cached"} {
				r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{SourceUDAP}})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(r.RegistrationSigningAlgorithms, tc.want) || !slices.Equal(r.SigningAlgorithms, []string{"RS256", "ES384"}) {
					t.Errorf("%s: registration algorithms %v, token algorithms %v; want %v and the token endpoint's [RS256 ES384]",
						pass, r.RegistrationSigningAlgorithms, r.SigningAlgorithms, tc.want)
				}
			}
		})
	}
}

func TestUDAPSignedMetadataRejected(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	type setup struct {
		base string
		pki  *testPKI // trusted, SAN = base
	}
	tests := []struct {
		name    string
		doc     func(t *testing.T, s setup) string
		anchors func(s setup) *x509.CertPool
		wantIn  string
	}{
		{
			name: "bad chain: leaf from an untrusted CA",
			doc: func(t *testing.T, s setup) string {
				untrusted := newPKI(t, now, true, false, s.base)
				return udapDoc(urlUDAP, untrusted.sign(t, udapClaims(s.base, now, urlUDAP)))
			},
			wantIn: "signed_metadata: bad chain: the x5c certificates do not chain to a configured trust anchor",
		},
		{
			name: "bad chain: no x5c header",
			doc: func(t *testing.T, s setup) string {
				signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.pki.leafKey}, nil)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := jwt.Signed(signer).Claims(udapClaims(s.base, now, urlUDAP)).Serialize()
				if err != nil {
					t.Fatal(err)
				}
				return udapDoc(urlUDAP, tok)
			},
			wantIn: "signed_metadata: bad chain: the JWT header has no x5c certificates",
		},
		{
			name: "wrong iss",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["iss"], c["sub"] = "https://other.example.test/fhir", "https://other.example.test/fhir"
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: `signed_metadata: wrong iss: "https://other.example.test/fhir" is not the FHIR base`,
		},
		{
			name: "iss at the host root instead of the FHIR base",
			doc: func(t *testing.T, s setup) string {
				root := strings.TrimSuffix(s.base, basePath)
				return udapDoc(urlUDAP, s.pki.sign(t, udapClaims(root, now, urlUDAP)))
			},
			wantIn: "signed_metadata: wrong iss",
		},
		{
			name: "sub differs from iss",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["sub"] = "someone-else"
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: `signed_metadata: wrong sub: "someone-else" differs from iss`,
		},
		{
			name: "iss not a URI SAN of the certificate",
			doc: func(t *testing.T, s setup) string {
				other := newPKI(t, now, false, false, "https://other.example.test/fhir")
				return udapDoc(urlUDAP, other.sign(t, udapClaims(s.base, now, urlUDAP)))
			},
			wantIn: "is not a URI subject alternative name of the signing certificate",
		},
		{
			name: "expired",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["iat"], c["exp"] = now.Add(-48*time.Hour).Unix(), now.Add(-time.Hour).Unix()
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "signed_metadata: expired at 2025-01-02T02:04:05Z",
		},
		{
			name: "issued in the future",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["iat"] = now.Add(time.Hour).Unix()
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "signed_metadata: issued in the future",
		},
		{
			name: "valid for more than a year",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["exp"] = now.AddDate(1, 1, 0).Unix()
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "is more than a year after iat",
		},
		{
			name: "no exp",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				delete(c, "exp")
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "signed_metadata: no exp claim",
		},
		{
			name: "tampered signature",
			doc: func(t *testing.T, s setup) string {
				tok := s.pki.sign(t, udapClaims(s.base, now, urlUDAP))
				parts := strings.Split(tok, ".")
				payload, err := base64.RawURLEncoding.DecodeString(parts[1])
				if err != nil {
					t.Fatal(err)
				}
				payload = []byte(strings.Replace(string(payload), "udap.example.test", "evil0.example.tst", 1))
				parts[1] = base64.RawURLEncoding.EncodeToString(payload)
				return udapDoc(urlUDAP, strings.Join(parts, "."))
			},
			wantIn: "signed_metadata: bad signature: not signed by the x5c leaf certificate",
		},
		{
			name: "HS256",
			doc: func(t *testing.T, s setup) string {
				signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := jwt.Signed(signer).Claims(udapClaims(s.base, now, urlUDAP)).Serialize()
				if err != nil {
					t.Fatal(err)
				}
				return udapDoc(urlUDAP, tok)
			},
			wantIn: "signed_metadata is not a compact JWS signed with RS256, RS384, ES256, ES384",
		},
		{
			name:   "missing signed_metadata",
			doc:    func(t *testing.T, s setup) string { return udapDoc(urlUDAP, "") },
			wantIn: "signed_metadata is missing (unsigned UDAP metadata is not trusted)",
		},
		{
			name:   "signed_metadata not a JWT",
			doc:    func(t *testing.T, s setup) string { return udapDoc(urlUDAP, "not.a.jwt") },
			wantIn: "signed_metadata is not a compact JWS",
		},
		{
			name: "token_endpoint only unsigned",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				delete(c, "token_endpoint")
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "token_endpoint is not among the signed_metadata claims",
		},
		{
			name: "signed token_endpoint relative",
			doc: func(t *testing.T, s setup) string {
				return udapDoc(urlUDAP, s.pki.sign(t, udapClaims(s.base, now, "/token")))
			},
			wantIn: `signed token_endpoint "/token" is not an absolute http(s) URL`,
		},
		{
			name: "signed token_endpoint of the wrong type",
			doc: func(t *testing.T, s setup) string {
				c := udapClaims(s.base, now, urlUDAP)
				c["token_endpoint"] = 42
				return udapDoc(urlUDAP, s.pki.sign(t, c))
			},
			wantIn: "signed_metadata: claim token_endpoint is a JSON number, want a string",
		},
		{
			name: "no trust anchors configured",
			doc: func(t *testing.T, s setup) string {
				return udapDoc(urlUDAP, s.pki.sign(t, udapClaims(s.base, now, urlUDAP)))
			},
			anchors: func(setup) *x509.CertPool { return nil },
			wantIn:  "failed: no UDAP trust anchors configured",
		},
		{
			name: "trust anchor is the intermediate's sibling, not its root",
			doc: func(t *testing.T, s setup) string {
				return udapDoc(urlUDAP, s.pki.sign(t, udapClaims(s.base, now, urlUDAP)))
			},
			anchors: func(setup) *x509.CertPool { return newPKI(t, now, true, false).pool },
			wantIn:  "signed_metadata: bad chain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			s := setup{base: f.base(), pki: newPKI(t, now, false, false, f.base())}
			f.set(docNameUDAP, 0, tt.doc(t, s))
			anchors := s.pki.pool
			if tt.anchors != nil {
				anchors = tt.anchors(s)
			}
			r, err := discoverUDAP(t, f, clock.Now, anchors)
			var nt *NoTokenURLError
			if !errors.As(err, &nt) || len(nt.Attempts) != 1 {
				t.Fatalf("Discover = %+v, %v; want a *NoTokenURLError", r, err)
			}
			a := nt.Attempts[0]
			if !strings.HasPrefix(a.Outcome, "failed: ") || !strings.Contains(a.Outcome, tt.wantIn) || !strings.Contains(err.Error(), tt.wantIn) || a.Err == nil {
				t.Errorf("attempt outcome %q, want it to contain %q", a.Outcome, tt.wantIn)
			}
			if strings.Contains(a.Outcome, "eyJ") {
				t.Errorf("outcome %q quotes the JWT", a.Outcome)
			}
		})
	}
}

func TestUDAPNotSupported(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusGone, http.StatusNoContent} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFakeFHIR(t)
			f.set(docNameUDAP, status, "")
			f.set(docNameMetadata, 0, oauthURIs(`{"url": "token", "valueUri": "`+urlToken+`"}`))
			d := New(Config{HTTPClient: f.Client(), TrustAnchors: x509.NewCertPool()})
			r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{SourceUDAP, SourceToken}})
			if err != nil {
				t.Fatal(err)
			}
			if r.Source != SourceToken || r.UDAP || r.Attempts[0].Outcome != "not supported ("+strconv.Itoa(status)+")" || r.Attempts[0].Err != nil {
				t.Errorf("got %+v", *r)
			}
		})
	}
	t.Run("500 is a failure", func(t *testing.T) {
		f := newFakeFHIR(t)
		f.set(docNameUDAP, http.StatusInternalServerError, "")
		_, err := discoverUDAP(t, f, time.Now, x509.NewCertPool())
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != http.StatusInternalServerError {
			t.Errorf("error %v, want an *Error with status 500", err)
		}
	})
}

func TestParseTrustAnchors(t *testing.T) {
	pki := newPKI(t, newFakeClock().Now(), false, false, "https://fhir.example.test/r4")
	other := newPKI(t, newFakeClock().Now(), true, false)
	certPEM := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-key-material")}))

	pool, err := ParseTrustAnchors([]byte("\n" + certPEM(pki.root) + certPEM(other.root) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*testPKI{pki, other} {
		if _, err := p.intermediate.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: newFakeClock().Now()}); err != nil {
			t.Errorf("intermediate does not chain to the parsed anchors: %v", err)
		}
	}

	tests := []struct{ name, data, wantIn string }{
		{"empty", "", "no PEM CERTIFICATE blocks"},
		{"not PEM", "hello", "data outside PEM CERTIFICATE blocks"},
		{"a private key", certPEM(pki.root) + keyPEM, `PEM block 2 is "PRIVATE KEY", want CERTIFICATE`},
		{"garbage certificate", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})), "certificate 1: x509: "},
	}
	for _, tt := range tests {
		_, err := ParseTrustAnchors([]byte(tt.data))
		if err == nil || !strings.HasPrefix(err.Error(), "discovery: trust anchors: ") || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantIn)
		}
		if err != nil && (strings.Contains(err.Error(), "secret-key-material") || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("secret-key-material")))) {
			t.Errorf("%s: error %q quotes the key", tt.name, err)
		}
	}
}

func TestUDAPResultExpiresWithSignedMetadata(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	claims := udapClaims(f.base(), now, urlUDAP)
	claims["exp"] = now.Add(10 * time.Minute).Unix()
	f.set(docNameUDAP, 0, udapDoc(urlUDAP, pki.sign(t, claims)))
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TrustAnchors: pki.pool, TTL: time.Hour, RefreshAhead: -1, MaxStale: -1})
	req := Request{FHIRBase: f.base(), Order: []Source{SourceUDAP}}
	if r := mustDiscover(t, d, req); !r.Expires.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("Expires = %v, want signed_metadata's exp", r.Expires)
	}
	// Past exp, the result is discovered again; the cached document's
	// signed_metadata no longer verifies, so it is fetched again too.
	clock.Advance(12 * time.Minute)
	_, err := d.Discover(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "signed_metadata: expired at") {
		t.Fatalf("after exp: %v, want expired signed_metadata", err)
	}
	if n := f.count(docNameUDAP); n != 1 {
		t.Errorf("%d UDAP requests, want 1 (the cached document re-verified)", n)
	}
	claims["iat"], claims["exp"] = clock.Now().Unix(), clock.Now().Add(time.Hour).Unix()
	f.set(docNameUDAP, 0, udapDoc(urlUDAP, pki.sign(t, claims)))
	if r := mustDiscover(t, d, req); r.TokenURL != urlUDAP || f.count(docNameUDAP) != 2 {
		t.Errorf("after the server re-signed: %+v, %d requests", *r, f.count(docNameUDAP))
	}
}
