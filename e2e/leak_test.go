package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// leakWindow is the length of the pieces of a secret the leak checker
// looks for: a token, key or assertion cut short or split across fields
// still leaks if any 20 consecutive bytes of it show.
const leakWindow = 20

// leakChecker finds secrets, whole or any leakWindow-byte piece of them,
// in text. Pieces that also occur in public material (the certificate,
// whose modulus a private key's encoding contains too) are not secrets.
type leakChecker struct {
	whole  map[string]string // secret → what it is
	pieces map[string]string // leakWindow-byte piece of a secret → what it is
}

// newLeakChecker takes secrets as secret → what it is.
func newLeakChecker(secrets map[string]string, public ...string) *leakChecker {
	c := &leakChecker{whole: map[string]string{}, pieces: map[string]string{}}
	for s, what := range secrets {
		if len(s) < 8 {
			panic(fmt.Sprintf("leak checker: %s is too short to look for", what))
		}
		c.whole[s] = what
		for i := 0; i+leakWindow <= len(s); i++ {
			piece := s[i : i+leakWindow]
			if !slices.ContainsFunc(public, func(p string) bool { return strings.Contains(p, piece) }) {
				c.pieces[piece] = what
			}
		}
	}
	return c
}

// find returns what leaked into text, sorted, each once.
func (c *leakChecker) find(text string) []string {
	found := map[string]bool{}
	for s, what := range c.whole {
		if strings.Contains(text, s) {
			found[what] = true
		}
	}
	for i := 0; i+leakWindow <= len(text); i++ {
		if what, ok := c.pieces[text[i:i+leakWindow]]; ok {
			found[what] = true
		}
	}
	out := make([]string, 0, len(found))
	for what := range found {
		out = append(out, what)
	}
	slices.Sort(out)
	return out
}

// keySecrets returns the private key's material in every encoding it
// could leak in: the PEM's base64 lines, and for RSA the private
// exponent, primes and CRT values in decimal, hex and base64 (as in a
// JWK).
func keySecrets(t *testing.T, certPEM, keyPEM []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i, line := range strings.Split(string(keyPEM), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") && len(line) >= leakWindow {
			out[line] = fmt.Sprintf("private key PEM line %d", i)
		}
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := m.Signer.(*rsa.PrivateKey)
	if !ok {
		return out
	}
	parts := map[string]*big.Int{"D": rk.D, "P": rk.Primes[0], "Q": rk.Primes[1], "Dp": rk.Precomputed.Dp, "Dq": rk.Precomputed.Dq, "Qinv": rk.Precomputed.Qinv}
	for name, n := range parts {
		if n == nil {
			continue
		}
		b := n.Bytes()
		out[n.String()] = "private key " + name + " (decimal)"
		out[hex.EncodeToString(b)] = "private key " + name + " (hex)"
		out[base64.RawURLEncoding.EncodeToString(b)] = "private key " + name + " (base64url)"
		out[base64.StdEncoding.EncodeToString(b)] = "private key " + name + " (base64)"
	}
	return out
}

// publicMaterial is text derived from the certificate, which may appear
// anywhere (x5c headers, logs of the loaded key).
func publicMaterial(t *testing.T, certPEM []byte) []string {
	t.Helper()
	out := []string{string(certPEM)}
	for rest := certPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		out = append(out, base64.StdEncoding.EncodeToString(block.Bytes), base64.RawURLEncoding.EncodeToString(block.Bytes))
	}
	if len(out) == 1 {
		t.Fatal("no certificate in the PEM")
	}
	return out
}

// The checker itself: every secret is found whole, cut, embedded or
// escaped as JSON; public material and clean text are not flagged.
func TestNoSecretsLeakCheckerFlags(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: clientID})
	if err != nil {
		t.Fatal(err)
	}
	const (
		token     = "ory_at_WFRs0X0Ofbzu-Sk3KGwYINl5z7wM5LXEYQuldakx6W0.OV0pdCApcBrlhA7BUpJdgrMsILT6xw81MBKP4Qvn6OM"
		assertion = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJnYXRld2F5LmV4YW1wbGUub3JnIn0.c2lnbmF0dXJlLW9mLXRoZS1hc3NlcnRpb24tdGhhdC1tdXN0LW5vdC1sZWFr"
		apiKey    = "inbound-api-key-0123456789abcdef0123456789abcdef"
	)
	secrets := keySecrets(t, certPEM, keyPEM)
	secrets[token] = "access token"
	secrets[assertion] = "client assertion"
	secrets[strings.Split(assertion, ".")[2]] = "client assertion signature"
	secrets[vaultToken] = "vault token"
	secrets[dirAPIKey] = "directory API key"
	secrets[apiKey] = "inbound API key"
	c := newLeakChecker(secrets, publicMaterial(t, certPEM)...)

	m, _ := keys.ParsePEM(certPEM, keyPEM)
	d := m.Signer.(*rsa.PrivateKey).D.Bytes()
	keyLine := strings.Split(string(keyPEM), "\n")[3]
	certB64 := base64.StdEncoding.EncodeToString(m.Chain[0].Raw)
	jsonEscaped, _ := json.Marshal(map[string]string{"msg": "got <" + token + ">"})

	tests := []struct {
		name, text string
		want       string // what must be found; "" for nothing
	}{
		{"whole token in a log line", `{"level":"info","msg":"token ` + token + `"}`, "access token"},
		{"token cut to its first 24 bytes", "Bearer " + token[:24] + "…", "access token"},
		{"a middle piece of the token", "x" + token[30:52] + "y", "access token"},
		{"token in JSON with escaping around it", string(jsonEscaped), "access token"},
		{"assertion in a form", "client_assertion=" + assertion, "client assertion"},
		{"only the assertion's signature", `"sig":"` + strings.Split(assertion, ".")[2] + `"`, "client assertion signature"},
		{"a PEM line of the key", "key: " + keyLine, secrets[keyLine]},
		{"private exponent as base64url", `{"d":"` + base64.RawURLEncoding.EncodeToString(d) + `"}`, "private key D (base64url)"},
		{"private exponent in hex", hex.EncodeToString(d)[:40], "private key D (hex)"},
		{"vault token", "X-Vault-Token: " + vaultToken, "vault token"},
		{"directory API key", "Authorization: api-key " + dirAPIKey, "directory API key"},
		{"inbound API key", "X-API-Key=" + apiKey, "inbound API key"},
		{"the certificate is public", "x5c: " + certB64, ""},
		{"clean text", `{"level":"info","msg":"request","status":200,"oid":"2.16.840.1.113883.3.13.1"}`, ""},
		{"a short common prefix is not a leak", "ory_at_", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.find(tt.text)
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("flagged %v in clean text", got)
			case tt.want != "" && !slices.Contains(got, tt.want):
				t.Errorf("found %v, want %q", got, tt.want)
			}
		})
	}
}

// transcript collects everything the gateway said to callers.
type transcript struct {
	bytes.Buffer
}

func (tr *transcript) record(label string, resp *http.Response, body []byte) {
	fmt.Fprintf(tr, "=== %s: %s\n", label, resp.Status)
	resp.Header.Write(tr)
	tr.WriteString("\n")
	tr.Write(body)
	tr.WriteString("\n")
}

// failingVault is a Vault in front of a Vault test server that, when
// failing, answers every call with a 500 whose body carries marker.
type failingVault struct {
	*httptest.Server
	failing atomic.Bool
	failed  atomic.Int64
}

const vaultFailureMarker = "vault-backend-failure-marker-7f3a"

func newFailingVault(t *testing.T, backend string) *failingVault {
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	v := &failingVault{}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v.failing.Load() && r.URL.Path != "/v1/sys/health" {
			v.failed.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"errors":["%s: storage backend unavailable"]}`, vaultFailureMarker)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(v.Close)
	return v
}

// readKVField reads one field of a KV v2 secret over Vault's HTTP API.
func readKVField(t *testing.T, addr, token, mount, path, field string) string {
	t.Helper()
	req, err := http.NewRequest("GET", strings.TrimRight(addr, "/")+"/v1/"+mount+"/data/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("reading %s/%s from Vault: %d %v", mount, path, resp.StatusCode, err)
	}
	s, _ := out.Data.Data[field].(string)
	if s == "" {
		t.Fatalf("%s/%s has no %s", mount, path, field)
	}
	return s
}

// TestNoSecretsLeakFullScenario runs a success, a 401 retry, an OAuth
// error and a Vault error (transit signing with Vault failing, and the
// certificate watch failing with it) through a gateway with API-key
// callers, an audit file and metrics, then looks for every secret in
// everything the gateway wrote or answered.
func TestNoSecretsLeakFullScenario(t *testing.T) {
	// The Vault client's own retries would only stretch each failure.
	t.Setenv("VAULT_MAX_RETRIES", "0")
	const (
		unregisteredOID = "2.16.840.1.113883.3.777"
		transitKey      = "cqgate-leak"
		transitCertPath = "cqgate/leak-transit-cert"
	)
	inboundKey := "inbound-api-key-" + randomSecret(t)
	linkKey := make([]byte, 32)
	if _, err := rand.Read(linkKey); err != nil {
		t.Fatal(err)
	}
	linkKeyB64 := base64.StdEncoding.EncodeToString(linkKey)
	wrongKey := "wrong-api-key-" + randomSecret(t)
	keySum := sha256.Sum256([]byte(inboundKey))
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")

	var (
		vault   *failingVault
		certPEM string
	)
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Tokens.MinInterval = 0
		c.Audit.Destination = "file:" + auditPath
		c.Metrics.Enabled = true
		c.Bulk.LinkKey = linkKeyB64
		c.Client.Scope = "system/Patient.* system/Observation.read"
		c.Inbound.Auth = "api_key"
		c.Inbound.APIKeys = map[string]string{"svc": hex.EncodeToString(keySum[:])}
		c.Inbound.Callers = map[string]config.Caller{"svc": {Organizations: []string{"*"}, Methods: []string{"*"}}}
		c.Organizations[unregisteredOID] = config.Organization{
			Name: "Unregistered", FHIRBase: w.fhir.base(), TokenURL: w.auth.TokenURL, ClientID: "unregistered.example.org",
			AllowPrivateAddresses: true,
		}

		// Sign with a Vault transit key (the world's key, imported) so that
		// a failing Vault fails token exchanges, through a Vault that can
		// be made to fail.
		certPEM = readKVField(t, c.Vault.Address, c.Vault.Auth.Token, c.Keys.Vault.Mount, c.Keys.Vault.Path, "certificate")
		m, err := keys.ParsePEM([]byte(certPEM), w.keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		backend := vaulttest.New(t, vaultToken)
		backend.ImportTransitKey("transit", transitKey, m.Signer)
		backend.Put("secret", transitCertPath, map[string]any{"certificate": certPEM})
		vault = newFailingVault(t, backend.URL)
		c.Vault.Address = vault.URL
		c.Vault.Auth.Token = vaultToken
		c.Vault.Timeout = 2 * time.Second
		c.Keys.Source = "transit"
		c.Keys.Transit.Key = transitKey
		c.Keys.Transit.CertificatePath = transitCertPath
		c.Keys.WatchInterval = 50 * time.Millisecond
	}})

	var tr transcript
	call := func(label, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		resp, b := w.do(method, path, body, hdr)
		tr.record(label, resp, b)
		return resp, b
	}
	withKey := map[string]string{"X-API-Key": inboundKey}
	expect := func(what string, resp *http.Response, body []byte, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d: %s\nlogs:\n%s", what, resp.StatusCode, status, body, w.logs)
		}
	}

	// Success, with the key in either header.
	resp, body := call("success", "GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, withKey)
	expect("success", resp, body, http.StatusOK)
	resp, body = call("success, bearer key", "GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, map[string]string{"Authorization": "Bearer " + inboundKey})
	expect("success with the key as a bearer token", resp, body, http.StatusOK)
	resp, body = call("directory lookup", "GET", "/directory/Organization/"+cernerOID, nil, withKey)
	expect("directory lookup", resp, body, http.StatusOK)
	// A wrong key: 401, and the wrong key is a secret too.
	resp, body = call("wrong key", "GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, map[string]string{"X-API-Key": wrongKey})
	expect("wrong key", resp, body, http.StatusUnauthorized)

	// 401 retry: the token is refused, a new one is exchanged, the POST
	// is replayed.
	w.auth.ExpireAll()
	resp, body = call("401 retry", "POST", "/fhir/"+cernerOID+"/Patient", []byte(`{"resourceType":"Patient"}`),
		map[string]string{"X-API-Key": inboundKey, "Content-Type": "application/fhir+json"})
	expect("401 retry", resp, body, http.StatusCreated)

	// OAuth error: the token endpoint does not know the client.
	resp, body = call("oauth error", "GET", "/fhir/"+unregisteredOID+"/Patient/1316024", nil, withKey)
	expect("OAuth error", resp, body, http.StatusBadGateway)
	if !strings.Contains(string(body), "invalid_client") {
		t.Errorf("OAuth error not kept: %s", body)
	}

	// Vault error: Vault fails; a request that needs a new token (a
	// narrower scope) cannot have its assertion signed.
	vault.failing.Store(true)
	resp, body = call("vault error", "GET", "/fhir/"+cernerOID+"/Observation?patient=1316024", nil,
		map[string]string{"X-API-Key": inboundKey, "X-Cqgate-Scope": "system/Observation.read"})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "Vault") {
		t.Errorf("with Vault failing, a request needing a new token got %d, want a 502 naming Vault: %s", resp.StatusCode, body)
	}
	// The certificate watch fails too, and says so in the log.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.logs.String(), vaultFailureMarker) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(w.logs.String()+string(body), vaultFailureMarker) {
		t.Errorf("the Vault failure never showed in the log or the answer (%d failed Vault calls)", vault.failed.Load())
	}
	resp, body = call("readyz with Vault failing", "GET", "/readyz", nil, nil)
	t.Logf("/readyz with Vault failing: %d %s", resp.StatusCode, body)
	vault.failing.Store(false)

	resp, body = call("metrics", "GET", "/metrics", nil, nil)
	expect("/metrics", resp, body, http.StatusOK)
	metricsText := string(body)

	auditData, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(auditData, []byte("\n")); n < 6 {
		t.Errorf("the audit file has %d lines, want one per FHIR request", n)
	}

	// What must not appear anywhere.
	secrets := keySecrets(t, []byte(certPEM), w.keyPEM)
	add := func(what, s string) {
		if len(s) >= 8 {
			secrets[s] = what
		}
	}
	add("vault token", vaultToken)
	if tok := os.Getenv("VAULT_TOKEN"); tok != "" {
		add("real vault token", tok)
	}
	add("directory API key", dirAPIKey)
	add("inbound API key", inboundKey)
	add("bulk link key", linkKeyB64)
	add("wrong inbound API key", wrongKey)
	for i, a := range w.auth.Assertions() {
		add(fmt.Sprintf("client assertion #%d", i), a)
		if parts := strings.Split(a, "."); len(parts) == 3 {
			add(fmt.Sprintf("client assertion #%d signature", i), parts[2])
		}
	}
	for i, tok := range w.auth.AccessTokens() {
		add(fmt.Sprintf("access token #%d", i), tok)
	}
	if len(w.auth.Assertions()) < 3 || len(w.auth.AccessTokens()) < 2 {
		t.Fatalf("the scenario made %d assertions and %d tokens; the leak check needs them", len(w.auth.Assertions()), len(w.auth.AccessTokens()))
	}
	checker := newLeakChecker(secrets, publicMaterial(t, []byte(certPEM))...)
	// The checker must flag what the token endpoint received: a vacuous
	// pass is no pass.
	if forms := w.auth.Forms(); len(forms) == 0 || len(checker.find(forms[0].Encode())) == 0 {
		t.Fatal("the leak checker does not flag a token request, client assertion included")
	}
	for name, text := range map[string]string{
		"the gateway log":     w.logs.String(),
		"the audit file":      string(auditData),
		"the /metrics scrape": metricsText,
		"the answers":         tr.String(),
	} {
		if text == "" {
			t.Errorf("%s is empty: nothing was checked", name)
			continue
		}
		if leaked := checker.find(text); len(leaked) > 0 {
			t.Errorf("%s leaks: %s", name, strings.Join(leaked, ", "))
		}
	}
	t.Logf("checked %d secrets in %d bytes of logs, %d of audit, %d of metrics, %d of answers",
		len(secrets), len(w.logs.String()), len(auditData), len(metricsText), tr.Len())
}

func randomSecret(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
