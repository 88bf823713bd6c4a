package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// A SIGHUP whose file changes inbound.callers (which only a restart
// applies) swaps in none of its keys: a key moved to a caller name whose
// policy the file also changed would get the running policy of that
// name, which neither file gives it (here billing's key, renamed
// "reports", would reach 1.2.3). The error says why.
func TestReloadHoldsKeysBackWhenPoliciesChanged(t *testing.T) {
	lt := newLoopbackTenant(t)
	const billingKey, reportsKey = "billing-key-0123456789", "reports-key-0123456789"
	base := func() *config.Config {
		cfg := config.Default()
		cfg.Client.ClientID = "gw.example.org"
		cfg.Client.Scope = "system/*.read"
		cfg.Audit.Destination = "none"
		cfg.Keys.Source = "static"
		cfg.Inbound.Auth = "api_key"
		cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: lt.srv.URL + "/r4", TokenURL: lt.srv.URL + "/token", AllowPrivateAddresses: true}}
		return cfg
	}
	running := base()
	running.Inbound.APIKeys = map[string]string{"billing": callerauth.HashKey(billingKey), "reports": callerauth.HashKey(reportsKey)}
	running.Inbound.Callers = map[string]config.Caller{
		"billing": {Organizations: []string{"9.9.9"}},
		"reports": {Organizations: []string{"1.2.3"}},
	}
	file := base()
	file.Inbound.APIKeys = map[string]string{"reports": callerauth.HashKey(billingKey)}
	file.Inbound.Callers = map[string]config.Caller{"reports": {Organizations: []string{"9.9.9"}}}
	ctx, g, get := reloadGateway(t, lt, running, file)
	if code := get(billingKey); code != http.StatusForbidden {
		t.Fatalf("before the reload billing's key got %d at 1.2.3, want 403", code)
	}
	if err := g.Reload(ctx, file); err == nil || !strings.Contains(err.Error(), "inbound.callers changed") {
		t.Errorf("Reload = %v, want it to say the keys were held back for inbound.callers", err)
	}
	if code := get(billingKey); code != http.StatusForbidden {
		t.Errorf("after the reload billing's key got %d at 1.2.3, which neither the running file nor the re-read one allows it (want 403)", code)
	}
	if n := lt.upstream.Load(); n != 0 {
		t.Errorf("the partner got %d requests", n)
	}
}

// Reload re-reads Vault's keys before it checks the file's against them:
// a key moved from the Vault secret to the file under another caller's
// name does not make the file's key set clash with Vault's old one, and
// the removal of a leaked key from the file takes effect.
func TestReloadChecksFileKeysAgainstFreshVaultKeys(t *testing.T) {
	lt := newLoopbackTenant(t)
	const leaked, fresh, moved = "leaked-key-0123456789", "fresh-key-0123456789", "moved-key-0123456789"
	v := vaulttest.New(t, "tok")
	v.Put("secret", "callers", map[string]any{"reports": callerauth.HashKey(moved)})
	base := func() *config.Config {
		cfg := config.Default()
		cfg.Client.ClientID = "gw.example.org"
		cfg.Client.Scope = "system/*.read"
		cfg.Audit.Destination = "none"
		cfg.Keys.Source = "static"
		cfg.Vault.Address, cfg.Vault.Auth.Token = v.URL, "tok"
		cfg.Inbound.Auth = "api_key"
		cfg.Inbound.APIKeysVault.Path = "callers"
		cfg.Inbound.Callers = map[string]config.Caller{
			"billing": {Organizations: []string{"1.2.3"}},
			"reports": {Organizations: []string{"1.2.3"}},
			"ops":     {Organizations: []string{"1.2.3"}},
		}
		cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: lt.srv.URL + "/r4", TokenURL: lt.srv.URL + "/token", AllowPrivateAddresses: true}}
		return cfg
	}
	running := base()
	running.Inbound.APIKeys = map[string]string{"billing": callerauth.HashKey(leaked)}
	file := base()
	file.Inbound.APIKeys = map[string]string{"billing": callerauth.HashKey(fresh), "ops": callerauth.HashKey(moved)}
	ctx, g, get := reloadGateway(t, lt, running, file)
	if err := g.apiKeys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := get(leaked), get(moved); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("before: leaked %d, moved %d", a, b)
	}
	// The key moves from Vault ("reports") to the file ("ops"); the
	// leaked key is removed from the file.
	v.Put("secret", "callers", map[string]any{})
	if err := g.Reload(ctx, file); err != nil {
		t.Errorf("Reload: %v", err)
	}
	if code := get(leaked); code != http.StatusUnauthorized {
		t.Errorf("the key removed from the file got %d after the reload, want 401", code)
	}
	if code := get(fresh); code != http.StatusOK {
		t.Errorf("the key added to the file got %d after the reload, want 200", code)
	}
}

// reloadGateway builds a gateway on running (both configurations
// validated first, as start and SIGHUP validate them) and returns its
// context and a GET of the organization's Patient/1 with an API key,
// answering the status.
func reloadGateway(t *testing.T, lt *loopbackTenant, running, file *config.Config) (context.Context, *Gateway, func(key string) int) {
	t.Helper()
	for _, c := range []*config.Config{running, file} {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, running, Options{Logger: log, Keys: keys.NewStatic(lt.material)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	get := func(key string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient/1", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("X-API-Key", key)
		g.Handler.ServeHTTP(rec, req)
		return rec.Code
	}
	return ctx, g, get
}
