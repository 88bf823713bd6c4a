package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
