package sandbox_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
	"github.com/cqgate/cqgate/keys"
)

// startSandbox starts a sandbox on a free loopback port and closes it when
// the test ends.
func startSandbox(t *testing.T, opts sandbox.Options) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sb
}

// response is a response read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the given headers and reads the response. It
// checks that every response carries a UUID X-Request-Id.
func do(t *testing.T, method, target string, header http.Header, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, target, err)
	}
	if _, err := uuid.Parse(resp.Header.Get("X-Request-Id")); err != nil {
		t.Errorf("%s %s: X-Request-Id %q is not a UUID", method, target, resp.Header.Get("X-Request-Id"))
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// operationOutcome is the part of an OperationOutcome the tests read.
type operationOutcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
	} `json:"issue"`
}

// wantOutcome checks that r is an OperationOutcome with the status.
func wantOutcome(t *testing.T, r response, status int) operationOutcome {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	var oo operationOutcome
	r.decode(t, &oo)
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || oo.Issue[0].Severity != "error" {
		t.Errorf("not an error OperationOutcome: %s", r.body)
	}
	return oo
}

// oauthError is a token endpoint error body.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
}

// tokenResponse is a token endpoint success body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// assertionSpec describes a client assertion to sign.
type assertionSpec struct {
	alg    jose.SignatureAlgorithm
	key    any      // signing key
	kid    string   // "" leaves kid out
	x5c    []string // nil leaves x5c out
	claims map[string]any
}

// validAssertion is a correct assertion for sb, signed RS384 with
// sb.Material.
func validAssertion(sb *sandbox.Sandbox) assertionSpec {
	now := time.Now()
	return assertionSpec{
		alg: jose.RS384,
		key: sb.Material.Signer,
		kid: sb.Material.KeyID,
		x5c: x5cOf(sb.Material.Chain),
		claims: map[string]any{
			"iss": sb.ClientID,
			"sub": sb.ClientID,
			"aud": sb.TokenURL,
			"iat": now.Unix(),
			"exp": now.Add(300 * time.Second).Unix(),
			"jti": newJTI(),
		},
	}
}

func (a assertionSpec) sign(t *testing.T) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if a.kid != "" {
		opts = opts.WithHeader("kid", a.kid)
	}
	if a.x5c != nil {
		opts = opts.WithHeader("x5c", a.x5c)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a.alg, Key: a.key}, opts)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	raw, err := jwt.Signed(signer).Claims(a.claims).Serialize()
	if err != nil {
		t.Fatalf("signing assertion: %v", err)
	}
	return raw
}

// x5cOf encodes a chain for the x5c header.
func x5cOf(chain []*x509.Certificate) []string {
	out := make([]string, len(chain))
	for i, c := range chain {
		out[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return out
}

// newJTI is 32 random bytes, base64url.
func newJTI() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// otherMaterial is a key and certificate the sandbox does not trust.
func otherMaterial(t *testing.T, clientID string) *keys.Material {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: clientID, DNSNames: []string{clientID}})
	if err != nil {
		t.Fatalf("GenerateSelfSigned: %v", err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParsePEM: %v", err)
	}
	return m
}

// tokenForm is a client-credentials request carrying assertion.
func tokenForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {"system/Patient.read system/Observation.read"},
	}
}

// postForm POSTs form, url-encoded, to target.
func postForm(t *testing.T, target string, form url.Values) response {
	t.Helper()
	return do(t, http.MethodPost, target,
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		strings.NewReader(form.Encode()))
}

// accessToken exchanges a fresh valid assertion for an access token.
func accessToken(t *testing.T, sb *sandbox.Sandbox) string {
	t.Helper()
	r := postForm(t, sb.TokenURL, tokenForm(validAssertion(sb).sign(t)))
	if r.status != http.StatusOK {
		t.Fatalf("token exchange: status %d: %s", r.status, r.body)
	}
	var tr tokenResponse
	r.decode(t, &tr)
	return tr.AccessToken
}

// fhirHeader is what a well-behaved client sends to the FHIR server.
func fhirHeader(token string) http.Header {
	return http.Header{
		"Accept":        {"application/fhir+json"},
		"Authorization": {"Bearer " + token},
	}
}
