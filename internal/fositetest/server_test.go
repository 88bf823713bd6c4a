package fositetest

import (
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
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// testKey is a signing key with a self-signed certificate for x5c.
type testKey struct {
	priv crypto.Signer
	cert []byte // DER
}

func newTestKey(t *testing.T, kind string) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch kind {
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cqgate test " + kind},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, cert: der}
}

func randomJTI(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertionClaims are the claims cqgate sends.
func assertionClaims(t *testing.T, clientID, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": aud,
		"iat": now.Unix(),
		"exp": now.Add(300 * time.Second).Unix(),
		"jti": randomJTI(t),
	}
}

// sign signs claims with go-jose v4 the way cqgate does: alg, typ JWT,
// kid, x5c with the self-signed certificate.
func sign(t *testing.T, k testKey, alg, kid string, claims map[string]any) string {
	t.Helper()
	return signWith(t, k, alg, map[string]any{
		"typ": "JWT",
		"kid": kid,
		"x5c": []string{base64.StdEncoding.EncodeToString(k.cert)},
	}, claims)
}

// signWith signs claims with exactly the given extra protected headers.
func signWith(t *testing.T, k testKey, alg string, headers map[string]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for h, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(h), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type tokenResult struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenResult) str(k string) string { s, _ := r.body[k].(string); return s }

func postToken(t *testing.T, tokenURL, assertion string, extra url.Values) tokenResult {
	t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/Patient.read"},
		"client_assertion_type": {jwtBearer},
		"client_assertion":      {assertion},
	}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := http.PostForm(tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	res := tokenResult{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&res.body); err != nil {
		t.Fatalf("decode token response (status %d): %v", resp.StatusCode, err)
	}
	return res
}

type fixture struct {
	srv                          *Server
	rsa, rsa2, other, p256, p384 testKey
}

func newFixture(t *testing.T) fixture {
	f := fixture{
		rsa: newTestKey(t, "rsa"), rsa2: newTestKey(t, "rsa"), other: newTestKey(t, "rsa"),
		p256: newTestKey(t, "p256"), p384: newTestKey(t, "p384"),
	}
	scopes := []string{"system/Patient.read"}
	f.srv = New(t, Config{Clients: []Client{
		{ID: "rs384-client", PublicKey: f.rsa.priv.Public(), KeyID: "k-rs384", Scopes: scopes}, // Algorithm defaults to RS384
		{ID: "rs256-client", PublicKey: f.rsa2.priv.Public(), KeyID: "k-rs256", Algorithm: "RS256", Scopes: scopes},
		{ID: "es256-client", PublicKey: f.p256.priv.Public(), KeyID: "k-es256", Algorithm: "ES256", Scopes: scopes},
		{ID: "es384-client", PublicKey: f.p384.priv.Public(), KeyID: "k-es384", Algorithm: "ES384", Scopes: scopes},
		{ID: "wild-client", PublicKey: f.rsa.priv.Public(), KeyID: "k-rs384", Scopes: []string{"system/*.read"}},
	}})
	return f
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	tokenURL := f.srv.TokenURL
	if tokenURL != f.srv.URL+"/token" {
		t.Fatalf("TokenURL = %q", tokenURL)
	}

	type tc struct {
		name      string
		client    string
		key       testKey
		alg, kid  string
		mutate    func(map[string]any)
		form      url.Values
		wantCode  int
		wantError string // "" = success
	}
	cases := []tc{
		{name: "RS384 accepted", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200},
		{name: "RS256 accepted", client: "rs256-client", key: f.rsa2, alg: "RS256", kid: "k-rs256", wantCode: 200},
		{name: "ES256 accepted", client: "es256-client", key: f.p256, alg: "ES256", kid: "k-es256", wantCode: 200},
		{name: "ES384 accepted", client: "es384-client", key: f.p384, alg: "ES384", kid: "k-es384", wantCode: 200},
		{name: "aud as array accepted", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200,
			mutate: func(c map[string]any) { c["aud"] = []string{"https://other.example", tokenURL} }},
		{name: "no iat accepted", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200,
			mutate: func(c map[string]any) { delete(c, "iat") }},
		{name: "matching client_id form field accepted", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200,
			form: url.Values{"client_id": {"rs384-client"}}},
		{name: "wildcard registration grants SMART scope", client: "wild-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200},

		{name: "wrong aud rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { c["aud"] = f.srv.URL + "/other" },
			wantCode: 401, wantError: "invalid_client"},
		// fosite returns the plain "Token is expired" error from its claims
		// check, which it answers as an unrecognised error: HTTP 500.
		{name: "expired rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate: func(c map[string]any) {
				c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
				c["exp"] = time.Now().Add(-5 * time.Minute).Unix()
			},
			wantCode: 500, wantError: "error"},
		{name: "exp 24h ahead accepted", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384", wantCode: 200,
			mutate: func(c map[string]any) { c["exp"] = time.Now().Add(24 * time.Hour).Unix() }},
		{name: "nbf in future rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { c["nbf"] = time.Now().Add(time.Minute).Unix() },
			wantCode: 500, wantError: "error"},
		{name: "iat in future rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { c["iat"] = time.Now().Add(time.Minute).Unix() },
			wantCode: 500, wantError: "error"},
		{name: "missing exp rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { delete(c, "exp") },
			wantCode: 401, wantError: "invalid_client"},
		{name: "missing jti rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { delete(c, "jti") },
			wantCode: 401, wantError: "invalid_client"},
		{name: "sub differs from iss rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			mutate:   func(c map[string]any) { c["iss"] = "rs256-client" },
			wantCode: 401, wantError: "invalid_client"},
		{name: "signed by another key rejected", client: "rs384-client", key: f.other, alg: "RS384", kid: "k-rs384",
			wantCode: 401, wantError: "invalid_client"},
		{name: "alg other than registered rejected", client: "rs384-client", key: f.rsa, alg: "RS256", kid: "k-rs384",
			wantCode: 401, wantError: "invalid_client"},
		{name: "unknown kid rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "nope",
			wantCode: 400, wantError: "invalid_request"},
		// Signed correctly for rs256-client, but iss/sub name rs384-client.
		{name: "client_id form field differing from iss rejected", client: "rs384-client", key: f.rsa2, alg: "RS256", kid: "k-rs256",
			form:     url.Values{"client_id": {"rs256-client"}},
			wantCode: 401, wantError: "invalid_client"},
		{name: "unknown client rejected", client: "nobody", key: f.rsa, alg: "RS384", kid: "k-rs384",
			wantCode: 401, wantError: "invalid_client"},
		{name: "unregistered scope rejected", client: "rs384-client", key: f.rsa, alg: "RS384", kid: "k-rs384",
			form:     url.Values{"scope": {"system/Observation.read"}},
			wantCode: 400, wantError: "invalid_scope"},
	}
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seenIDs := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims := assertionClaims(t, c.client, tokenURL)
			if c.mutate != nil {
				c.mutate(claims)
			}
			res := postToken(t, tokenURL, sign(t, c.key, c.alg, c.kid, claims), c.form)

			id := res.header.Get("X-Request-Id")
			if !uuidRE.MatchString(id) || seenIDs[id] {
				t.Errorf("X-Request-Id = %q, want fresh UUID", id)
			}
			seenIDs[id] = true
			if res.status != c.wantCode {
				t.Fatalf("status = %d, want %d; body %v", res.status, c.wantCode, res.body)
			}
			if c.wantError != "" {
				if got := res.str("error"); got != c.wantError {
					t.Errorf("error = %q, want %q; body %v", got, c.wantError, res.body)
				}
				if res.str("error_description") == "" {
					t.Errorf("no error_description: %v", res.body)
				}
				t.Logf("%d %v", res.status, res.body)
				return
			}
			tok := res.str("access_token")
			if tt := res.str("token_type"); !strings.EqualFold(tt, "bearer") {
				t.Errorf("token_type = %q", tt)
			}
			if exp, _ := res.body["expires_in"].(float64); exp < 565 || exp > 570 {
				t.Errorf("expires_in = %v, want ≈570", res.body["expires_in"])
			}
			if sc := res.str("scope"); sc != "system/Patient.read" {
				t.Errorf("scope = %q", sc)
			}
			if err := f.srv.Validate(context.Background(), tok); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if err := f.srv.Validate(context.Background(), tok, "system/Patient.read"); err != nil {
				t.Errorf("Validate with granted scope: %v", err)
			}
			if err := f.srv.Validate(context.Background(), tok, "system/Observation.read"); err == nil {
				t.Error("Validate with ungranted scope succeeded")
			}
		})
	}

	// Header variations: fosite needs none of typ, kid, x5c; an x5c that
	// is present must parse, but is neither verified nor matched to the key.
	headerCases := []struct {
		name     string
		headers  map[string]any
		wantCode int
	}{
		{"no typ, kid or x5c accepted", map[string]any{}, 200},
		{"typ at+jwt accepted", map[string]any{"typ": "at+jwt", "kid": "k-rs384"}, 200},
		{"x5c of an unrelated certificate accepted", map[string]any{"kid": "k-rs384",
			"x5c": []string{base64.StdEncoding.EncodeToString(f.other.cert)}}, 200},
		{"unparseable x5c rejected", map[string]any{"kid": "k-rs384", "x5c": []string{"bm90IGEgY2VydA=="}}, 401},
		{"base64url x5c rejected", map[string]any{"kid": "k-rs384",
			"x5c": []string{base64.RawURLEncoding.EncodeToString(f.rsa.cert)}}, 401},
	}
	for _, c := range headerCases {
		t.Run(c.name, func(t *testing.T) {
			a := signWith(t, f.rsa, "RS384", c.headers, assertionClaims(t, "rs384-client", tokenURL))
			res := postToken(t, tokenURL, a, nil)
			if res.status != c.wantCode {
				t.Fatalf("status %d, want %d: %v", res.status, c.wantCode, res.body)
			}
		})
	}

	t.Run("replayed jti rejected", func(t *testing.T) {
		a := sign(t, f.rsa, "RS384", "k-rs384", assertionClaims(t, "rs384-client", tokenURL))
		if res := postToken(t, tokenURL, a, nil); res.status != 200 {
			t.Fatalf("first use: %d %v", res.status, res.body)
		}
		res := postToken(t, tokenURL, a, nil)
		if res.status != 400 || res.str("error") != "jti_known" {
			t.Fatalf("replay: %d %v", res.status, res.body)
		}
	})

	t.Run("counters and failures", func(t *testing.T) {
		var wantOK, wantFail int64
		for _, c := range cases {
			if c.wantError == "" {
				wantOK++
			} else {
				wantFail++
			}
		}
		for _, c := range headerCases {
			if c.wantCode == 200 {
				wantOK++
			} else {
				wantFail++
			}
		}
		wantOK++   // replay test, first use
		wantFail++ // replay test, second use
		if got := f.srv.Exchanges(); got != wantOK+wantFail {
			t.Errorf("Exchanges = %d, want %d", got, wantOK+wantFail)
		}
		if got := f.srv.Issued(); got != wantOK {
			t.Errorf("Issued = %d, want %d", got, wantOK)
		}
		fails := f.srv.Failures()
		if int64(len(fails)) != wantFail {
			t.Errorf("len(Failures) = %d, want %d", len(fails), wantFail)
		}
		for _, s := range fails {
			if !strings.Contains(s, "X-Request-Id") {
				t.Errorf("failure without request id: %s", s)
			}
		}
		for _, s := range fails {
			t.Log(s)
		}
		if last := fails[len(fails)-1]; !strings.Contains(last, "jti_known") {
			t.Errorf("last failure = %q", last)
		}
	})
}

func TestRevokeExpireLifetimeProtect(t *testing.T) {
	k := newTestKey(t, "p256")
	srv := New(t, Config{
		Clients:       []Client{{ID: "c", PublicKey: k.priv.Public(), KeyID: "k", Algorithm: "ES256", Scopes: []string{"system/Patient.read"}}},
		TokenLifetime: time.Hour,
		TokenPath:     "/oauth2/token",
	})
	if srv.TokenURL != srv.URL+"/oauth2/token" {
		t.Fatalf("TokenURL = %q", srv.TokenURL)
	}
	get := func() string {
		t.Helper()
		res := postToken(t, srv.TokenURL, sign(t, k, "ES256", "k", assertionClaims(t, "c", srv.TokenURL)), nil)
		if res.status != 200 {
			t.Fatalf("%d %v", res.status, res.body)
		}
		return res.str("access_token")
	}
	ctx := context.Background()

	fhir := httptest.NewServer(srv.Protect(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"resourceType":"Patient"}`))
	})))
	defer fhir.Close()
	call := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, fhir.URL+"/Patient/1", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	a, b := get(), get()
	if code := call(a); code != 200 {
		t.Fatalf("FHIR with valid token: %d", code)
	}
	if code := call(""); code != 401 {
		t.Fatalf("FHIR without token: %d", code)
	}
	srv.Revoke(a)
	if err := srv.Validate(ctx, a); err == nil {
		t.Fatal("revoked token still valid")
	}
	if code := call(a); code != 401 {
		t.Fatalf("FHIR with revoked token: %d", code)
	}
	if err := srv.Validate(ctx, b); err != nil {
		t.Fatalf("other token invalidated by Revoke: %v", err)
	}
	srv.ExpireAll()
	if err := srv.Validate(ctx, b); err == nil {
		t.Fatal("token valid after ExpireAll")
	}
	c := get()
	if err := srv.Validate(ctx, c); err != nil {
		t.Fatalf("token issued after ExpireAll: %v", err)
	}

	// A lifetime of 1s: fosite's own expiry check rejects the token.
	srv.SetLifetime(time.Second)
	short := get()
	if err := srv.Validate(ctx, short); err != nil {
		t.Fatalf("fresh short token: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := srv.Validate(ctx, short); err == nil {
		t.Fatal("short-lived token valid after its lifetime")
	}
	if err := srv.Validate(ctx, "ory_at_garbage.garbage"); err == nil {
		t.Fatal("garbage token valid")
	}

	// Concurrent exchanges and SetLifetime must be race-free.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.SetLifetime(time.Duration(i+1) * time.Minute)
			if err := srv.Validate(ctx, get()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestOmitRequestID(t *testing.T) {
	srv := New(t, Config{OmitRequestID: true})
	resp, err := http.PostForm(srv.TokenURL, url.Values{"grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		t.Fatalf("X-Request-Id = %q", id)
	}
	if resp.StatusCode == 200 {
		t.Fatal("unauthenticated request succeeded")
	}
}

func TestSMARTScopeStrategy(t *testing.T) {
	cases := []struct {
		haystack []string
		needle   string
		want     bool
	}{
		{[]string{"system/Patient.read"}, "system/Patient.read", true},
		{[]string{"system/*.read"}, "system/Patient.read", true},
		{[]string{"system/*.read"}, "system/*.read", true},
		{[]string{"system/Patient.*"}, "system/Patient.read", true},
		{[]string{"system/*.*"}, "system/Observation.write", true},
		{[]string{"system/Patient.read"}, "system/Patient.write", false},
		{[]string{"system/Patient.read"}, "system/*.read", false},
		{[]string{"system/Patient.read"}, "system/Observation.read", false},
		{[]string{"system/*.read"}, "user/Patient.read", false},
		{[]string{"system/*.read"}, "system/Patient.write", false},
		{[]string{"system/Patient"}, "system/Patient.read", false},
		{[]string{"system/Patient.rs"}, "system/Patient.rs", true},
		{[]string{"system/Patient.cruds"}, "system/Patient.rs", false},
		{[]string{"launch"}, "launch", true},
		{[]string{"*"}, "system/Patient.read", false},
	}
	for _, c := range cases {
		if got := SMARTScopeStrategy(c.haystack, c.needle); got != c.want {
			t.Errorf("SMARTScopeStrategy(%q, %q) = %v, want %v", c.haystack, c.needle, got, c.want)
		}
	}
}

func TestNewRejectsBadClients(t *testing.T) {
	rsaKey := newTestKey(t, "rsa").priv.Public()
	p256 := newTestKey(t, "p256").priv.Public()
	for _, c := range []Client{
		{ID: "", PublicKey: rsaKey},
		{ID: "a", PublicKey: p256},                       // RS384 default with EC key
		{ID: "a", PublicKey: rsaKey, Algorithm: "ES256"}, // EC alg with RSA key
		{ID: "a", PublicKey: p256, Algorithm: "ES384"},   // wrong curve
		{ID: "a", PublicKey: rsaKey, Algorithm: "HS256"},
	} {
		if _, err := newClient(c); err == nil {
			t.Errorf("newClient(%+v) accepted", c)
		}
	}
}
