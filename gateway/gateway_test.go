package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// While Vault is down at start the gateway is not ready and says why; it
// loads the key by itself once Vault answers.
func TestKeyLoadRetriesUntilVaultAnswers(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	vault := vaulttest.New(t, "tok")
	vault.Put("secret", "cq", map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)})
	vault.SetDown(true)

	cfg := config.Default()
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token"}}
	cfg.Vault.Address, cfg.Vault.Auth.Token, cfg.Keys.Vault.Path = vault.URL, "tok", "cq"
	cfg.Client.ClientID = "gw.example.org"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := New(ctx, cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	type answer struct {
		Code int
		Body string
	}
	get := func(path string) answer {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, string(b)}
	}
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body, "signing key not loaded") {
		t.Fatalf("readyz while Vault is down: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/fhir/1.2.3/Patient/1"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body, "OperationOutcome") {
		t.Fatalf("FHIR request while no key is loaded: %d %s\n%s", rec.Code, rec.Body, logs.String())
	}
	if !strings.Contains(logs.String(), "signing key not loaded") {
		t.Errorf("the failed load is not logged: %s", logs.String())
	}

	vault.SetDown(false)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := g.WaitReady(wctx); err != nil {
		t.Fatalf("key never loaded after Vault came back: %v", err)
	}
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("readyz after recovery: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(logs.String(), `"tok"`) {
		t.Error("key material or Vault token in the logs")
	}
}

// auditedGateway is a gateway for organization 1.2.3 at fhirBase, with
// its token endpoint at tokenURL, that lets the anonymous caller do
// anything its token's scope covers (tokens.enforce_granted_scope on)
// and writes its audit trail to the file it returns.
func auditedGateway(t *testing.T, lt *loopbackTenant, fhirBase, tokenURL string) (*Gateway, string) {
	t.Helper()
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	cfg.Client.Scope = "system/*.read"
	cfg.Tokens.EnforceGrantedScope = true
	cfg.Audit.Destination = "file:" + trail
	cfg.Keys.Source = "static"
	cfg.Inbound.Callers = map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}}
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: fhirBase, TokenURL: tokenURL, AllowPrivateAddresses: true}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(lt.material)})
	if err != nil {
		t.Fatal(err)
	}
	return g, trail
}

// A failure the proxy answers (the token endpoint refusing cqgate, the
// partner unreachable, the granted scope not covering the request) is
// audited with the issue code of the OperationOutcome the caller got,
// as the router's own refusals are (internal/audit.Record.Error).
func TestProxyFailuresAreAuditedWithTheirIssueCode(t *testing.T) {
	lt := newLoopbackTenant(t)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
	}))
	defer refusing.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name               string
		method             string
		fhirBase, tokenURL string
		status             int
	}{
		{"the token endpoint refuses", http.MethodGet, lt.srv.URL + "/r4", refusing.URL + "/token", http.StatusBadGateway},
		{"the partner is unreachable", http.MethodGet, gone.URL + "/r4", lt.srv.URL + "/token", http.StatusBadGateway},
		{"the granted scope does not cover the request", http.MethodDelete, lt.srv.URL + "/r4", lt.srv.URL + "/token", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, trail := auditedGateway(t, lt, tc.fhirBase, tc.tokenURL)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, "/fhir/1.2.3/Patient/1", nil)
			req.RemoteAddr = "127.0.0.1:5000"
			g.Handler.ServeHTTP(rec, req)
			var oo struct{ Issue []struct{ Code string } }
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); rec.Code != tc.status || err != nil || len(oo.Issue) == 0 {
				t.Fatalf("answered %d %s, want %d with an OperationOutcome", rec.Code, rec.Body, tc.status)
			}
			raw, err := os.ReadFile(trail)
			if err != nil {
				t.Fatal(err)
			}
			var line map[string]any
			if err := json.Unmarshal(raw, &line); err != nil {
				t.Fatalf("audit %q: %v", raw, err)
			}
			if line["error"] != oo.Issue[0].Code || line["status"] != float64(tc.status) {
				t.Errorf("answered %d with issue %s; audited status %v, error %v: %s", rec.Code, oo.Issue[0].Code, line["status"], line["error"], raw)
			}
		})
	}
}

// cqgate_upstream_duration_seconds is the partner's latency until its
// response header: observed as the header comes, not after the body
// (which the partner here holds back until the sample is there).
func TestPartnerLatencyEndsAtTheResponseHeader(t *testing.T) {
	lt := newLoopbackTenant(t)
	release := make(chan struct{})
	var once sync.Once
	releaseBody := func() { once.Do(func() { close(release) }) }
	defer releaseBody()
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`+"\n")
	}))
	defer partner.Close()
	g, _ := auditedGateway(t, lt, partner.URL+"/r4", lt.srv.URL+"/token")
	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/fhir/1.2.3/Patient")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); upstreamSamples(t, g, "1.2.3") == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			releaseBody()
			t.Fatal("no partner latency observed while the partner's body was held back: the sample waits for the body")
		}
	}
	releaseBody()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := upstreamSamples(t, g, "1.2.3"); n != 1 {
		t.Errorf("%d samples of partner latency for one request", n)
	}
}

// upstreamSamples is how many partner latencies were observed for org.
func upstreamSamples(t *testing.T, g *Gateway, org string) uint64 {
	t.Helper()
	mfs, err := g.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cqgate_upstream_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "org" && lp.GetValue() == org {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
