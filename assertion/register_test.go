package assertion

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/udaptest"
)

const testIssuer = "https://client.example.org" // the URI SAN of newMaterial's leaf

func testRegistration(url string) Registration {
	return Registration{
		URL:        url,
		Issuer:     testIssuer,
		ClientName: "cqgate test",
		Contacts:   []string{"https://example.org/support", "mailto:ops@example.org"},
		Scope:      "system/Patient.read system/Observation.read",
	}
}

func newUDAPServer(t *testing.T) *udaptest.Server {
	roots := x509.NewCertPool()
	roots.AddCert(caCert())
	return udaptest.New(t, udaptest.Config{Roots: roots})
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name     string
		key      crypto.Signer
		accepted []string
		wantAlg  jose.SignatureAlgorithm
	}{
		{"RSA, server takes RS256 only", rsaKey(), []string{"RS256"}, jose.RS256},
		{"RSA follows the key", rsaKey(), nil, jose.RS384},
		{"P-256", p256Key(), nil, jose.ES256},
		{"P-384", p384Key(), []string{"RS256", "ES384"}, jose.ES384},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newUDAPServer(t)
			clock := newFakeClock()
			m := newMaterial(t, tc.key)
			g := &Registrar{Signer: &Signer{Keys: staticKeys{m}}, Clock: clock.Now}
			reg := testRegistration(srv.RegistrationURL)
			reg.Accepted = tc.accepted
			got, err := g.Register(context.Background(), reg)
			if err != nil {
				t.Fatalf("Register: %v (server: %v)", err, srv.Failures())
			}
			if got.ClientID == "" || got.StatusCode != 201 || got.RequestID == "" || got.Cancelled || !got.At.Equal(clock.Now()) {
				t.Errorf("Registered = %+v", got)
			}
			if got.TokenEndpointAuthMethod != "private_key_jwt" || !slices.Equal(got.GrantTypes, []string{"client_credentials"}) ||
				got.Scope != reg.Scope || got.ClientName != reg.ClientName || !slices.Equal(got.Contacts, reg.Contacts) {
				t.Errorf("registered metadata = %+v", got)
			}
			if _, ok := got.Raw["client_id_issued_at"]; !ok {
				t.Errorf("Raw = %v", got.Raw)
			}
			if _, ok := got.Raw["software_statement"]; ok {
				t.Error("Raw keeps the software statement")
			}

			// The request as the server saw it.
			body := srv.Bodies()[0]
			if string(body["udap"]) != `"1"` || string(body["certifications"]) != `[]` || len(body) != 3 {
				t.Errorf("request body = %v", body)
			}
			statement := srv.Statements()[0]
			parsed, err := jwt.ParseSigned(statement, []jose.SignatureAlgorithm{tc.wantAlg})
			if err != nil {
				t.Fatalf("statement alg: %v", err)
			}
			h := parsed.Headers[0]
			if h.KeyID != m.KeyID || h.ExtraHeaders[jose.HeaderType] != "JWT" {
				t.Errorf("header = %+v", h)
			}
			header, payload := rawSegments(t, statement)
			if x5c, _ := header["x5c"].([]any); len(x5c) != 2 {
				t.Errorf("x5c = %v", header["x5c"])
			}
			if payload["iss"] != testIssuer || payload["sub"] != testIssuer || payload["aud"] != srv.RegistrationURL {
				t.Errorf("iss/sub/aud = %v %v %v", payload["iss"], payload["sub"], payload["aud"])
			}
			if exp, iat := payload["exp"].(float64), payload["iat"].(float64); exp-iat > 300 || exp <= iat {
				t.Errorf("exp − iat = %v", exp-iat)
			}
			if _, ok := payload["nbf"]; ok {
				t.Error("software statement has nbf, which the IG does not list")
			}
			for _, k := range []string{"jti", "client_name", "contacts", "grant_types", "token_endpoint_auth_method", "scope"} {
				if _, ok := payload[k]; !ok {
					t.Errorf("claim %s missing", k)
				}
			}

			// Registering again modifies; cancelling confirms.
			again, err := g.Register(context.Background(), reg)
			if err != nil || again.ClientID != got.ClientID || again.StatusCode != 200 {
				t.Errorf("re-registration = %+v, %v", again, err)
			}
			reg.Cancel = true
			cancelled, err := g.Register(context.Background(), reg)
			if err != nil || !cancelled.Cancelled || cancelled.ClientID != got.ClientID {
				t.Errorf("cancel = %+v, %v", cancelled, err)
			}
			if len(srv.Clients()) != 0 {
				t.Error("still registered")
			}
		})
	}
}

func TestRegisterErrors(t *testing.T) {
	m := newMaterial(t, p256Key())
	echo := func(status int, format string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				SoftwareStatement string `json:"software_statement"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			w.Header().Set("X-Request-Id", "req-"+body.SoftwareStatement)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, format, body.SoftwareStatement)
		}
	}
	fixed := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("X-Request-Id", "r-1")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    RegistrationError // URL filled in
		wantErr bool
		inMsg   []string
	}{
		{"RFC 7591 error", fixed(400, "application/json", `{"error":"invalid_software_statement","error_description":"iss is not a SAN"}`),
			RegistrationError{StatusCode: 400, ErrorCode: "invalid_software_statement", ErrorDescription: "iss is not a SAN", RequestID: "r-1"}, false,
			[]string{"HTTP 400", "invalid_software_statement", "iss is not a SAN", "X-Request-Id=r-1"}},
		{"error echoing the statement", echo(400, `{"error":"unapproved_software_statement","error_description":"bad %s"}`),
			RegistrationError{StatusCode: 400, ErrorCode: "unapproved_software_statement", ErrorDescription: "bad [REDACTED]", RequestID: "req-[REDACTED]"}, false,
			[]string{"unapproved_software_statement"}},
		{"HTML 500", fixed(500, "text/html", `<html>down</html>`), RegistrationError{StatusCode: 500, RequestID: "r-1"}, true, []string{"HTTP 500", "text/html"}},
		{"201 without client_id", fixed(201, "application/json", `{"client_name":"x"}`), RegistrationError{StatusCode: 201, RequestID: "r-1"}, true, []string{"no client_id"}},
		{"201 with a numeric client_id", fixed(201, "application/json", `{"client_id":42}`), RegistrationError{StatusCode: 201, RequestID: "r-1"}, true, []string{"no client_id"}},
		{"201 not JSON", fixed(201, "text/plain", `ok`), RegistrationError{StatusCode: 201, RequestID: "r-1"}, true, []string{"not a JSON object"}},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://attacker.example/register", http.StatusTemporaryRedirect)
		}, RegistrationError{StatusCode: 307}, true, []string{"HTTP 307"}},
		{"oversized", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"client_id":"` + strings.Repeat("a", maxTokenResponse) + `"}`))
		}, RegistrationError{StatusCode: 201}, true, []string{"larger than"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var statement string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				var b struct {
					S string `json:"software_statement"`
				}
				_ = json.Unmarshal(raw, &b)
				statement = b.S
				r.Body = io.NopCloser(strings.NewReader(string(raw)))
				tc.handler(w, r)
			}))
			defer ts.Close()
			g := &Registrar{Signer: &Signer{Keys: staticKeys{m}}, HTTPClient: ts.Client()}
			got, err := g.Register(context.Background(), testRegistration(ts.URL+"/register"))
			var re *RegistrationError
			if got != nil || !errors.As(err, &re) {
				t.Fatalf("Register = %+v, %v; want a *RegistrationError", got, err)
			}
			if (re.Err != nil) != tc.wantErr {
				t.Errorf("Err = %v", re.Err)
			}
			g2 := *re
			g2.Err = nil
			tc.want.URL = ts.URL + "/register"
			if g2 != tc.want {
				t.Errorf("RegistrationError = %#v\nwant %#v", g2, tc.want)
			}
			if !re.Upstream() {
				t.Error("not an upstream error")
			}
			for _, s := range tc.inMsg {
				if !strings.Contains(err.Error(), s) || !strings.HasPrefix(err.Error(), "assertion: client registration at ") {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if statement == "" {
				t.Fatal("no statement was posted")
			}
			checkNoLeaks(t, err, nil, statement, strings.Split(statement, ".")[2])
		})
	}

	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close()
	_, err := (&Registrar{Signer: &Signer{Keys: staticKeys{m}}}).Register(context.Background(), testRegistration(addr+"/register"))
	var re *RegistrationError
	if !errors.As(err, &re) || re.StatusCode != 0 || re.Err == nil {
		t.Errorf("connection refused: %v", err)
	}

	// An independent server's refusal keeps its fields too.
	srv := newUDAPServer(t)
	srv.FailNext(400, "invalid_client_metadata", "scope not allowed")
	_, err = (&Registrar{Signer: &Signer{Keys: staticKeys{m}}}).Register(context.Background(), testRegistration(srv.RegistrationURL))
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client_metadata" || re.ErrorDescription != "scope not allowed" || re.RequestID == "" {
		t.Errorf("udaptest refusal: %#v", err)
	}
}

func TestRegisterValidation(t *testing.T) {
	m := newMaterial(t, p256Key())
	srv := newUDAPServer(t)
	tests := []struct {
		name   string
		mutate func(*Registration)
		want   string
	}{
		{"relative URL", func(r *Registration) { r.URL = "/register" }, "registration URL"},
		{"issuer not a URI", func(r *Registration) { r.Issuer = "client.example.org" }, "issuer"},
		{"issuer not in the certificate", func(r *Registration) { r.Issuer = "https://other.example.org" }, "not a URI subject alternative name of the signing certificate (it has https://client.example.org)"},
		{"no client name", func(r *Registration) { r.ClientName = " " }, "client name is empty"},
		{"no mailto contact", func(r *Registration) { r.Contacts = []string{"https://example.org"} }, "mailto"},
		{"bare mailto", func(r *Registration) { r.Contacts = []string{"mailto:"} }, "mailto"},
		{"no scope", func(r *Registration) { r.Scope = "" }, "scope is empty"},
		{"authorization_code", func(r *Registration) { r.GrantTypes = []string{"authorization_code"} }, `grant type "authorization_code" is not supported`},
		{"algorithm the key cannot use", func(r *Registration) { r.Algorithm = jose.RS256 }, "cannot be used with a ECDSA P-256 key"},
		{"no common algorithm", func(r *Registration) { r.Accepted = []string{"RS256"} }, "server accepts [RS256]"},
		{"several problems at once", func(r *Registration) { r.ClientName, r.Scope = "", "" }, "client name is empty; scope is empty"},
	}
	g := &Registrar{Signer: &Signer{Keys: staticKeys{m}}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRegistration(srv.RegistrationURL)
			tc.mutate(&r)
			_, err := g.Register(context.Background(), r)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "assertion: ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if n := len(srv.Statements()); n != 0 {
		t.Errorf("invalid registrations reached the server %d times", n)
	}
	if _, err := (&Registrar{}).Register(context.Background(), testRegistration(srv.RegistrationURL)); err == nil {
		t.Error("Registrar without Signer succeeded")
	}
	if _, err := (&Registrar{Signer: &Signer{}}).Register(context.Background(), testRegistration(srv.RegistrationURL)); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := g.Register(ctx, testRegistration(srv.RegistrationURL)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("done ctx: %v", err)
	}
}
