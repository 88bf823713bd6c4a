package assertion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

const testAccessToken = "at-SECRET-0123456789abcdef"

// tokenServer is an httptest token endpoint that records what it was sent
// and answers with respond.
type tokenServer struct {
	*httptest.Server
	t       *testing.T
	mu      sync.Mutex
	forms   []url.Values
	headers []http.Header
	respond func(w http.ResponseWriter, r *http.Request, form url.Values)
}

func newTokenServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, form url.Values)) *tokenServer {
	ts := &tokenServer{t: t, respond: respond}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		ts.mu.Lock()
		ts.forms = append(ts.forms, r.PostForm)
		ts.headers = append(ts.headers, r.Header.Clone())
		respond := ts.respond
		ts.mu.Unlock()
		respond(w, r, r.PostForm)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) setRespond(respond func(w http.ResponseWriter, r *http.Request, form url.Values)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.respond = respond
}

func (ts *tokenServer) lastAssertion() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.forms) == 0 {
		return ""
	}
	return ts.forms[len(ts.forms)-1].Get("client_assertion")
}

func (ts *tokenServer) calls() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.forms)
}

func jsonResponse(status int, body string, header ...string) func(http.ResponseWriter, *http.Request, url.Values) {
	return func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newExchanger(t *testing.T, clock *clocktest.Clock, client *http.Client) *Exchanger {
	t.Helper()
	return &Exchanger{
		Signer:     &Signer{Keys: staticKeys{newMaterial(t, rsaKey())}, Clock: clock.Now},
		HTTPClient: client,
		Clock:      clock.Now,
		Retry:      RetryPolicy{Sleep: func(context.Context, time.Duration) error { return nil }},
	}
}

// checkNoLeaks fails if any rendering of err or tok contains a secret.
func checkNoLeaks(t *testing.T, err error, tok *Token, secrets ...string) {
	t.Helper()
	if err != nil {
		assertNoSecrets(t, "err.Error()", err.Error(), secrets...)
		assertNoSecrets(t, "%+v of err", fmt.Sprintf("%+v %#v", err, err), secrets...)
		for e := err; e != nil; e = errors.Unwrap(e) {
			assertNoSecrets(t, "wrapped error", e.Error(), secrets...)
		}
	}
	if tok != nil {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, nil))
		log.Info("token", "ptr", tok, "val", *tok)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("token", "ptr", tok, "val", *tok)
		for what, s := range map[string]string{
			"String()":    tok.String(),
			"%v":          fmt.Sprintf("%v", tok),
			"%+v":         fmt.Sprintf("%+v", tok),
			"%#v":         fmt.Sprintf("%#v", tok),
			"%v value":    fmt.Sprintf("%v", *tok),
			"%+v value":   fmt.Sprintf("%+v", *tok),
			"%#v value":   fmt.Sprintf("%#v", *tok),
			"%s":          fmt.Sprintf("%s", tok),
			"%q":          fmt.Sprintf("%q", tok),
			"%+v struct":  fmt.Sprintf("%+v", struct{ T Token }{*tok}),
			"slog output": buf.String(),
		} {
			assertNoSecrets(t, what, s, secrets...)
		}
	}
}

func TestExchangeSuccess(t *testing.T) {
	clock := newFakeClock()
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"`+testAccessToken+`","scope":"system/*.read","token_type":"bearer","expires_in":570}`))
	tokenURL := ts.URL + "/beta/tenant/Authorization/token"
	e := newExchanger(t, clock, ts.Client())
	extra := url.Values{"udap": {"1"}}
	tok, err := e.Exchange(context.Background(), Request{
		TokenURL:    tokenURL,
		ClientID:    "client-1",
		Scope:       "system/Patient.read system/Observation.read",
		Algorithm:   jose.RS256,
		ExtraParams: extra,
	})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken != testAccessToken || tok.TokenType != "bearer" || tok.Scope != "system/*.read" {
		t.Errorf("token = %+v / %q", tok, tok.TokenType)
	}
	if tok.ExpiresIn != 570*time.Second {
		t.Errorf("ExpiresIn = %v", tok.ExpiresIn)
	}
	if want := clock.Now().Add(570 * time.Second); !tok.Expiry.Equal(want) {
		t.Errorf("Expiry = %v, want %v", tok.Expiry, want)
	}
	extra.Set("udap", "changed") // the request must not alias the caller's map

	if ts.calls() != 1 {
		t.Fatalf("%d calls", ts.calls())
	}
	form, h := ts.forms[0], ts.headers[0]
	if ct := h.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	if a := h.Get("Authorization"); a != "" {
		t.Errorf("Authorization header sent: %q", a)
	}
	want := map[string]string{
		"grant_type":            "client_credentials",
		"scope":                 "system/Patient.read system/Observation.read",
		"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		"udap":                  "1",
	}
	for k, v := range want {
		if got := form[k]; len(got) != 1 || got[0] != v {
			t.Errorf("form %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"client_secret", "client_id"} {
		if _, ok := form[k]; ok {
			t.Errorf("form has %s", k)
		}
	}
	if len(form) != len(want)+1 {
		t.Errorf("form has unexpected keys: %v", form)
	}
	parsed, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("client_assertion: %v", err)
	}
	var c jwt.Claims
	if err := parsed.Claims(rsaKey().Public(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Audience) != 1 || c.Audience[0] != tokenURL || c.Issuer != "client-1" || c.Subject != "client-1" {
		t.Errorf("assertion claims = %+v", c)
	}
	checkNoLeaks(t, nil, tok, testAccessToken, form.Get("client_assertion"))
}

func TestExchangeResponseVariants(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name        string
		contentType string
		body        string
		want        Token
	}{
		{
			name:        "form-encoded",
			contentType: "application/x-www-form-urlencoded",
			body:        "access_token=" + testAccessToken + "&token_type=Bearer&expires_in=570&scope=system%2F*.read",
			want:        Token{AccessToken: testAccessToken, TokenType: "Bearer", Scope: "system/*.read", ExpiresIn: 570 * time.Second, Expiry: clock.Now().Add(570 * time.Second)},
		},
		{
			name:        "text/plain form",
			contentType: "text/plain",
			body:        "access_token=" + testAccessToken + "&token_type=Bearer&expires_in=300",
			want:        Token{AccessToken: testAccessToken, TokenType: "Bearer", ExpiresIn: 300 * time.Second, Expiry: clock.Now().Add(300 * time.Second)},
		},
		{
			name:        "no expires_in or scope, lower-case bearer",
			contentType: "application/json",
			body:        `{"access_token":"` + testAccessToken + `","token_type":"bearer"}`,
			want:        Token{AccessToken: testAccessToken, TokenType: "bearer"},
		},
		{
			name:        "expires_in as a string",
			contentType: "application/json",
			body:        `{"access_token":"` + testAccessToken + `","token_type":"Bearer","expires_in":"3600"}`,
			want:        Token{AccessToken: testAccessToken, TokenType: "Bearer", ExpiresIn: time.Hour, Expiry: clock.Now().Add(time.Hour)},
		},
		{
			name:        "negative expires_in ignored",
			contentType: "application/json",
			body:        `{"access_token":"` + testAccessToken + `","token_type":"BEARER","expires_in":-5}`,
			want:        Token{AccessToken: testAccessToken, TokenType: "BEARER"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = w.Write([]byte(tc.body))
			})
			tok, err := newExchanger(t, clock, ts.Client()).Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"})
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if *tok != tc.want {
				t.Errorf("token = %s %q %v, want %s %q %v", tok, tok.TokenType, tok.ExpiresIn, &tc.want, tc.want.TokenType, tc.want.ExpiresIn)
			}
			if _, ok := ts.forms[0]["scope"]; ok {
				t.Error("scope sent although Request.Scope is empty")
			}
		})
	}
}

// A token that is not a bearer token (DPoP, N_A, a missing token_type)
// is refused: cqgate would send it as a bearer token.
func TestExchangeRefusesOtherTokenTypes(t *testing.T) {
	for name, body := range map[string]string{
		"DPoP":                 `{"access_token":"` + testAccessToken + `","token_type":"DPoP","expires_in":300}`,
		"N_A":                  `{"access_token":"` + testAccessToken + `","token_type":"N_A"}`,
		"missing":              `{"access_token":"` + testAccessToken + `","expires_in":300}`,
		"echoes the token":     `{"access_token":"` + testAccessToken + `","token_type":"` + testAccessToken + `"}`,
		"form, no token_type":  "access_token=" + testAccessToken,
		"bearer with a suffix": `{"access_token":"` + testAccessToken + `","token_type":"Bearer2"}`,
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTokenServer(t, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
				if strings.HasPrefix(body, "{") {
					w.Header().Set("Content-Type", "application/json")
				} else {
					w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
				}
				_, _ = w.Write([]byte(body))
			})
			tok, err := newExchanger(t, newFakeClock(), ts.Client()).Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"})
			var re *RetrieveError
			if tok != nil || !errors.Is(err, ErrTokenType) || !errors.As(err, &re) || re.StatusCode != http.StatusOK {
				t.Fatalf("Exchange = %v, %v; want a RetrieveError matching ErrTokenType", tok, err)
			}
			if strings.Contains(err.Error(), testAccessToken) {
				t.Errorf("error reveals the access token: %v", err)
			}
			if len(ts.forms) != 1 {
				t.Errorf("%d exchange(s), want 1 (a wrong token type is not retried)", len(ts.forms))
			}
		})
	}
}

func TestExchangeErrors(t *testing.T) {
	clock := newFakeClock()
	echo := func(status int, contentType, format string) func(http.ResponseWriter, *http.Request, url.Values) {
		// Echoes the assertion back, as a careless server might, to
		// prove that it never reaches an error string.
		return func(w http.ResponseWriter, _ *http.Request, form url.Values) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("X-Request-Id", "req-"+form.Get("client_assertion"))
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, format, form.Get("client_assertion"))
		}
	}
	tests := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, url.Values)
		want    RetrieveError // TokenURL is filled in
		wantErr bool          // RetrieveError.Err must be set
		inMsg   []string
	}{
		{
			name: "400 invalid_client",
			respond: jsonResponse(400, `{"error":"invalid_client","error_description":"Client authentication failed","error_uri":"https://authorization.example.com/errors/urn%3Acerner%3Aerror/instances/42"}`,
				"X-Request-Id", "abc"),
			want: RetrieveError{StatusCode: 400, ErrorCode: "invalid_client", ErrorDescription: "Client authentication failed",
				ErrorURI: "https://authorization.example.com/errors/urn%3Acerner%3Aerror/instances/42", RequestID: "abc"},
			inMsg: []string{"HTTP 400", "invalid_client", "Client authentication failed", "instances/42", "X-Request-Id=abc"},
		},
		{
			name:    "error in a 200 response",
			respond: jsonResponse(200, `{"error":"invalid_scope"}`),
			want:    RetrieveError{StatusCode: 200, ErrorCode: "invalid_scope"},
			inMsg:   []string{"invalid_scope"},
		},
		{
			name:    "500 with HTML echoing the assertion",
			respond: echo(500, "text/html", "<html><body>Internal error for %s</body></html>"),
			want:    RetrieveError{StatusCode: 500, RequestID: "req-[REDACTED]"},
			wantErr: true,
			inMsg:   []string{"HTTP 500", "text/html"},
		},
		{
			name:    "400 whose description echoes the assertion",
			respond: echo(400, "application/json", `{"error":"invalid_client","error_description":"bad assertion %s"}`),
			want:    RetrieveError{StatusCode: 400, ErrorCode: "invalid_client", ErrorDescription: "bad assertion [REDACTED]", RequestID: "req-[REDACTED]"},
			inMsg:   []string{"invalid_client"},
		},
		{
			name:    "missing access_token",
			respond: jsonResponse(200, `{"token_type":"Bearer","expires_in":300}`, "X-Request-Id", "r1"),
			want:    RetrieveError{StatusCode: 200, RequestID: "r1"},
			wantErr: true,
			inMsg:   []string{"no access_token"},
		},
		{
			name:    "unparsable 200",
			respond: jsonResponse(200, `not json`),
			want:    RetrieveError{StatusCode: 200},
			wantErr: true,
		},
		{
			name: "redirect not followed",
			respond: func(w http.ResponseWriter, r *http.Request, _ url.Values) {
				http.Redirect(w, r, "https://attacker.example/steal", http.StatusTemporaryRedirect)
			},
			want:    RetrieveError{StatusCode: 307},
			wantErr: true,
			inMsg:   []string{"HTTP 307"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, tc.respond)
			tokenURL := ts.URL + "/token"
			tok, err := newExchanger(t, clock, ts.Client()).Exchange(context.Background(), Request{TokenURL: tokenURL, ClientID: "c", Scope: "system/*.read"})
			if tok != nil || err == nil {
				t.Fatalf("Exchange = %v, %v; want an error", tok, err)
			}
			var re *RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("err = %T %v, want *RetrieveError", err, err)
			}
			if (re.Err != nil) != tc.wantErr {
				t.Errorf("RetrieveError.Err = %v", re.Err)
			}
			got := *re
			got.Err = nil
			tc.want.TokenURL = tokenURL
			if got != tc.want {
				t.Errorf("RetrieveError = %#v\nwant %#v", got, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "assertion: ") {
				t.Errorf("error %q lacks the assertion: prefix", msg)
			}
			for _, s := range tc.inMsg {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not mention %q", msg, s)
				}
			}
			assertion := ts.lastAssertion()
			if assertion == "" {
				t.Fatal("no assertion was posted")
			}
			checkNoLeaks(t, err, nil, assertion, strings.Split(assertion, ".")[2], testAccessToken, "<html>")
		})
	}
}

func TestExchangeTimeouts(t *testing.T) {
	clock := newFakeClock()
	stall := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tests := []struct {
		name       string
		respond    func(http.ResponseWriter, *http.Request, url.Values)
		clientTO   time.Duration
		ctxTO      time.Duration
		wantStatus int
	}{
		{
			name:     "client timeout awaiting headers",
			respond:  func(w http.ResponseWriter, r *http.Request, _ url.Values) { stall(w, r) },
			clientTO: 100 * time.Millisecond,
		},
		{
			name: "client timeout while reading the body",
			respond: func(w http.ResponseWriter, r *http.Request, _ url.Values) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(200)
				_, _ = w.Write([]byte(`{"access_token":"`))
				w.(http.Flusher).Flush()
				stall(w, r)
			},
			clientTO:   100 * time.Millisecond,
			wantStatus: 200,
		},
		{
			name:    "caller deadline",
			respond: func(w http.ResponseWriter, r *http.Request, _ url.Values) { stall(w, r) },
			ctxTO:   100 * time.Millisecond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, tc.respond)
			client := ts.Client()
			client.Timeout = tc.clientTO
			ctx := context.Background()
			if tc.ctxTO > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTO)
				defer cancel()
			}
			start := time.Now()
			_, err := newExchanger(t, clock, client).Exchange(ctx, Request{TokenURL: ts.URL + "/token", ClientID: "c"})
			if time.Since(start) > 3*time.Second {
				t.Errorf("timeout took %v", time.Since(start))
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("err %v is not a net.Error timeout", err)
			}
			var re *RetrieveError
			if !errors.As(err, &re) || re.Err == nil || re.StatusCode != tc.wantStatus {
				t.Errorf("err = %#v, want *RetrieveError with a cause and status %d", err, tc.wantStatus)
			}
			checkNoLeaks(t, err, nil, ts.lastAssertion())
		})
	}
}

func TestExchangeConnectionRefused(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close()
	_, err := newExchanger(t, newFakeClock(), nil).Exchange(context.Background(), Request{TokenURL: addr + "/token", ClientID: "c"})
	var re *RetrieveError
	var oe *net.OpError
	if !errors.As(err, &re) || re.StatusCode != 0 || !errors.As(err, &oe) {
		t.Errorf("err = %v, want a *RetrieveError wrapping a *net.OpError", err)
	}
}

func TestExchangeInvalidRequest(t *testing.T) {
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"x"}`))
	e := newExchanger(t, newFakeClock(), ts.Client())
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"empty token URL", Request{ClientID: "c"}, "token URL is empty"},
		{"relative token URL", Request{TokenURL: "/token", ClientID: "c"}, "not an absolute"},
		{"empty client id", Request{TokenURL: ts.URL}, "client id is empty"},
		{"extra client_assertion", Request{TokenURL: ts.URL, ClientID: "c", ExtraParams: url.Values{"client_assertion": {"x"}}}, `"client_assertion" is not allowed`},
		{"extra client_secret", Request{TokenURL: ts.URL, ClientID: "c", ExtraParams: url.Values{"client_secret": {"x"}}}, `"client_secret" is not allowed`},
		{"extra grant_type", Request{TokenURL: ts.URL, ClientID: "c", ExtraParams: url.Values{"grant_type": {"x"}}}, `"grant_type" is not allowed`},
		{"extra scope", Request{TokenURL: ts.URL, ClientID: "c", ExtraParams: url.Values{"scope": {"x"}}}, `"scope" is not allowed`},
		{"bad algorithm", Request{TokenURL: ts.URL, ClientID: "c", Algorithm: jose.ES256}, "cannot be used with a RSA-2048 key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Exchange(context.Background(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "assertion: ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if ts.calls() != 0 {
		t.Errorf("invalid requests reached the server %d times", ts.calls())
	}
	if _, err := (&Exchanger{}).Exchange(context.Background(), Request{TokenURL: ts.URL, ClientID: "c"}); err == nil {
		t.Error("Exchanger without Signer succeeded")
	}
}

func TestExchangerSourceExchangesEveryCall(t *testing.T) {
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"`+testAccessToken+`","token_type":"Bearer","expires_in":570}`))
	src := newExchanger(t, newFakeClock(), ts.Client()).Source(Request{TokenURL: ts.URL + "/token", ClientID: "c"})
	seen := map[string]bool{}
	for range 3 {
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		seen[ts.lastAssertion()] = true
	}
	if ts.calls() != 3 || len(seen) != 3 {
		t.Errorf("calls = %d, distinct assertions = %d; want 3 and 3", ts.calls(), len(seen))
	}
}

func TestTokenFormattingHidesAccessToken(t *testing.T) {
	tok := &Token{AccessToken: testAccessToken, TokenType: "Bearer", Scope: "system/*.read", ExpiresIn: time.Minute, Expiry: newFakeClock().Now()}
	checkNoLeaks(t, nil, tok, testAccessToken)
	if s := tok.String(); !strings.Contains(s, "system/*.read") || !strings.Contains(s, "Bearer") {
		t.Errorf("String() = %q", s)
	}
	var nilTok *Token
	if s := nilTok.String(); s != "<nil token>" {
		t.Errorf("nil String() = %q", s)
	}
	_ = fmt.Sprintf("%v", nilTok) // must not panic
}
