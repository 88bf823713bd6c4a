package sandbox_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
)

func TestTokenExchangeSuccess(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	form := tokenForm(validAssertion(sb).sign(t))
	r := postForm(t, sb.TokenURL, form)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var tr tokenResponse
	r.decode(t, &tr)
	if raw, err := base64.RawURLEncoding.DecodeString(tr.AccessToken); err != nil || len(raw) != 32 {
		t.Errorf("access_token %q is not 32 bytes base64url (%v)", tr.AccessToken, err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 570 || tr.Scope != form.Get("scope") {
		t.Errorf("token response = %+v, want Bearer, 570 s, scope %q", tr, form.Get("scope"))
	}
	if got := sb.Exchanges(); got != 1 {
		t.Errorf("Exchanges() = %d, want 1", got)
	}
	if got := sb.PlainTokenCalls(); got != 0 {
		t.Errorf("PlainTokenCalls() = %d, want 0", got)
	}

	// The same assertion again: its jti is spent.
	r = postForm(t, sb.TokenURL, form)
	checkOAuthError(t, r, http.StatusUnauthorized, "invalid_client", "already used")
	if got := sb.Exchanges(); got != 2 {
		t.Errorf("Exchanges() = %d, want 2", got)
	}
}

func TestTokenExchangeTokenLifetime(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{TokenLifetime: 42 * time.Second})
	r := postForm(t, sb.TokenURL, tokenForm(validAssertion(sb).sign(t)))
	var tr tokenResponse
	r.decode(t, &tr)
	if tr.ExpiresIn != 42 {
		t.Errorf("expires_in = %d, want 42", tr.ExpiresIn)
	}
}

func TestTokenExchangeAssertions(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	stranger := otherMaterial(t, sb.ClientID)
	now := time.Now()

	tests := []struct {
		name   string
		modify func(a *assertionSpec)
		raw    string // sent instead of the signed assertion if set
		status int
		errMsg string // substring of error_description; "" on success
	}{
		{name: "RS384 as SMART v2 wants", modify: func(*assertionSpec) {}, status: http.StatusOK},
		{name: "RS256 as Cerner's 2019 script", modify: func(a *assertionSpec) { a.alg = jose.RS256 }, status: http.StatusOK},
		{name: "aud as a one-element array", modify: func(a *assertionSpec) { a.claims["aud"] = []string{sb.TokenURL} }, status: http.StatusOK},
		{name: "no iat, exp within 300 s", modify: func(a *assertionSpec) { delete(a.claims, "iat") }, status: http.StatusOK},
		{name: "iat slightly ahead of our clock", modify: func(a *assertionSpec) {
			a.claims["iat"] = now.Add(3 * time.Second).Unix()
			a.claims["exp"] = now.Add(303 * time.Second).Unix()
		}, status: http.StatusOK},

		{name: "wrong aud", modify: func(a *assertionSpec) { a.claims["aud"] = sb.PlainTokenURL },
			status: http.StatusUnauthorized, errMsg: "aud is"},
		{name: "two audiences", modify: func(a *assertionSpec) { a.claims["aud"] = []string{sb.TokenURL, sb.PlainTokenURL} },
			status: http.StatusUnauthorized, errMsg: "aud is"},
		{name: "wrong iss", modify: func(a *assertionSpec) { a.claims["iss"] = "someone.else.example" },
			status: http.StatusUnauthorized, errMsg: "iss is"},
		{name: "wrong sub", modify: func(a *assertionSpec) { a.claims["sub"] = "fhir-ehr.stagingcerner.com" },
			status: http.StatusUnauthorized, errMsg: "sub is"},
		{name: "expired", modify: func(a *assertionSpec) {
			a.claims["iat"] = now.Add(-400 * time.Second).Unix()
			a.claims["exp"] = now.Add(-100 * time.Second).Unix()
		}, status: http.StatusUnauthorized, errMsg: "expired"},
		{name: "no exp", modify: func(a *assertionSpec) { delete(a.claims, "exp") },
			status: http.StatusUnauthorized, errMsg: "exp is required"},
		{name: "lifetime over 300 s", modify: func(a *assertionSpec) {
			// iat fixed too: under load a subtest may sign well after now.
			a.claims["iat"] = now.Unix()
			a.claims["exp"] = now.Add(310 * time.Second).Unix()
		},
			status: http.StatusUnauthorized, errMsg: "exp - iat"},
		{name: "no iat, exp too far ahead", modify: func(a *assertionSpec) {
			delete(a.claims, "iat")
			a.claims["exp"] = now.Add(time.Hour).Unix()
		}, status: http.StatusUnauthorized, errMsg: "in the future"},
		{name: "iat in the future", modify: func(a *assertionSpec) {
			a.claims["iat"] = now.Add(time.Minute).Unix()
			a.claims["exp"] = now.Add(2 * time.Minute).Unix()
		}, status: http.StatusUnauthorized, errMsg: "iat"},
		{name: "nbf in the future", modify: func(a *assertionSpec) { a.claims["nbf"] = now.Add(time.Minute).Unix() },
			status: http.StatusUnauthorized, errMsg: "not valid before"},
		{name: "no jti", modify: func(a *assertionSpec) { delete(a.claims, "jti") },
			status: http.StatusUnauthorized, errMsg: "jti is required"},
		{name: "static short jti", modify: func(a *assertionSpec) { a.claims["jti"] = "jwt-id-123" },
			status: http.StatusUnauthorized, errMsg: "at least 16"},
		{name: "unknown certificate in x5c", modify: func(a *assertionSpec) {
			a.key, a.kid, a.x5c = stranger.Signer, stranger.KeyID, x5cOf(stranger.Chain)
		}, status: http.StatusUnauthorized, errMsg: "not the certificate registered"},
		{name: "signed by another key", modify: func(a *assertionSpec) { a.key = stranger.Signer },
			status: http.StatusUnauthorized, errMsg: "signature does not verify"},
		{name: "missing x5c", modify: func(a *assertionSpec) { a.x5c = nil },
			status: http.StatusUnauthorized, errMsg: "no x5c"},
		{name: "missing kid", modify: func(a *assertionSpec) { a.kid = "" },
			status: http.StatusUnauthorized, errMsg: "no kid"},
		{name: "HS256 is not accepted", modify: func(a *assertionSpec) {
			a.alg, a.key = jose.HS256, []byte("a shared secret of at least 32 bytes!")
		}, status: http.StatusUnauthorized, errMsg: "compact JWS"},
		{name: "not a JWT", raw: "not.a.jwt", status: http.StatusUnauthorized, errMsg: "compact JWS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := tt.raw
			if raw == "" {
				a := validAssertion(sb)
				tt.modify(&a)
				raw = a.sign(t)
			}
			r := postForm(t, sb.TokenURL, tokenForm(raw))
			if tt.status == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			checkOAuthError(t, r, tt.status, "invalid_client", tt.errMsg)
		})
	}
}

func TestTokenRequestForm(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	form := func(change func(url.Values)) string {
		f := tokenForm(validAssertion(sb).sign(t))
		change(f)
		return f.Encode()
	}
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		errCode     string
		errMsg      string
	}{
		{"JSON body", http.MethodPost, "application/json", `{"grant_type":"client_credentials"}`,
			http.StatusBadRequest, "invalid_request", "Content-Type"},
		{"no grant_type", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Del("grant_type") }),
			http.StatusBadRequest, "invalid_request", "grant_type"},
		{"password grant", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Set("grant_type", "password") }),
			http.StatusBadRequest, "unsupported_grant_type", "password"},
		{"wrong assertion type", http.MethodPost, "application/x-www-form-urlencoded",
			form(func(f url.Values) {
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			}),
			http.StatusBadRequest, "invalid_request", "client_assertion_type"},
		{"no assertion", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Del("client_assertion") }),
			http.StatusBadRequest, "invalid_request", "client_assertion is required"},
		{"no scope", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Del("scope") }),
			http.StatusBadRequest, "invalid_request", "scope"},
		{"repeated parameter", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Add("scope", "system/*.read") }),
			http.StatusBadRequest, "invalid_request", "repeated"},
		{"client_id of someone else", http.MethodPost, "application/x-www-form-urlencoded", form(func(f url.Values) { f.Set("client_id", "other") }),
			http.StatusUnauthorized, "invalid_client", "client_id"},
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed, "invalid_request", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			r := do(t, tt.method, sb.TokenURL, h, strings.NewReader(tt.body))
			checkOAuthError(t, r, tt.status, tt.errCode, tt.errMsg)
		})
	}
}

func TestPlainTokenURLRefuses(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	for i := range 2 {
		r := postForm(t, sb.PlainTokenURL, tokenForm(validAssertion(sb).sign(t)))
		checkOAuthError(t, r, http.StatusUnauthorized, "invalid_client", "must be sent to the carequality-token URL")
		if got := sb.PlainTokenCalls(); got != int64(i+1) {
			t.Errorf("PlainTokenCalls() = %d, want %d", got, i+1)
		}
	}
	if got := sb.Exchanges(); got != 0 {
		t.Errorf("Exchanges() = %d, want 0", got)
	}
}

// checkOAuthError checks an RFC 6749 error response with a Cerner-style
// error_uri.
func checkOAuthError(t *testing.T, r response, status int, code, descContains string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e oauthError
	r.decode(t, &e)
	if e.Error != code {
		t.Errorf("error %q, want %q (%s)", e.Error, code, e.ErrorDescription)
	}
	if !strings.Contains(e.ErrorDescription, descContains) {
		t.Errorf("error_description %q does not contain %q", e.ErrorDescription, descContains)
	}
	wantPrefix := "https://sandbox.cqgate.invalid/errors/"
	wantInstance := "/instances/" + r.header.Get("X-Request-Id")
	if !strings.HasPrefix(e.ErrorURI, wantPrefix) || !strings.Contains(e.ErrorURI, wantInstance) {
		t.Errorf("error_uri %q, want %s<code>%s", e.ErrorURI, wantPrefix, wantInstance)
	}
	if _, err := url.Parse(e.ErrorURI); err != nil {
		t.Errorf("error_uri %q: %v", e.ErrorURI, err)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}
