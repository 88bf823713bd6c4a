package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/udaptest"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// UDAP registration keeps the client id in Vault, where a second replica
// finds it; an organization configured with another identity is signed for
// with that identity's key and client id.
func TestRegistrationAndIdentities(t *testing.T) {
	const (
		udapOID = "1.2.3.1"
		ehxOID  = "1.2.3.2"
		issuer  = "https://gw.example.org/udap"
	)
	defCert, defKey, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org", URIs: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	ehxCert, ehxKey, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "ehx.example.org", KeyType: keys.KeyTypeECP256})
	if err != nil {
		t.Fatal(err)
	}
	v := vaulttest.New(t, "tok")
	v.Put("secret", "cqgate/default", map[string]any{"certificate": string(defCert), "private_key": string(defKey)})
	v.Put("secret", "cqgate/ehx", map[string]any{"certificate": string(ehxCert), "private_key": string(ehxKey)})
	reg := udaptest.New(t, udaptest.Config{})

	// A FHIR server whose smart-configuration names the registration
	// endpoint (and a token endpoint).
	fhir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/.well-known/smart-configuration") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token_endpoint": "http://" + r.Host + "/token", "registration_endpoint": reg.RegistrationURL,
			"grant_types_supported": []string{"client_credentials"}, "capabilities": []string{"client-confidential-asymmetric"}})
	}))
	defer fhir.Close()

	cfg := config.Default()
	cfg.Vault.Address, cfg.Vault.Auth.Token = v.URL, "tok"
	cfg.Keys.Vault.Path = "cqgate/default"
	cfg.Client.ClientID = "gw.example.org"
	cfg.Audit.Destination = "none"
	cfg.UDAP = config.UDAP{Issuer: issuer, ClientName: "cqgate test", Contacts: []string{"mailto:ops@example.org"}, Registrations: config.KVRef{Mount: "secret", Path: "cqgate/registrations"}}
	cfg.Identities = map[string]config.Identity{"ehx": {ClientID: "ehx.example.org", Keys: config.Keys{Source: "vault", Vault: config.VaultKeys{Mount: "secret", Path: "cqgate/ehx"}}}}
	cfg.Organizations = map[string]config.Organization{
		udapOID: {FHIRBase: fhir.URL + "/r4", DiscoveryOrder: []string{"smart-configuration"}, AllowPrivateAddresses: true,
			// The registration server is another loopback origin.
			AllowedTokenOrigins: []string{reg.URL},
			UDAP:                config.OrgUDAP{Enabled: true, Register: "auto", OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}},
		ehxOID: {FHIRBase: "https://fhir.ehx.example/r4", TokenURL: "https://auth.ehx.example/token", Identity: "ehx"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newGateway := func() *Gateway {
		g, err := New(ctx, cfg, Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return g
	}

	g := newGateway()
	tn, err := g.Tenants.Resolve(ctx, udapOID) // register: auto
	if err != nil {
		t.Fatal(err)
	}
	clients := reg.Clients()
	if len(clients) != 1 || tn.ClientID != clients[0].ID || clients[0].Issuer != issuer || !tn.UDAP {
		t.Fatalf("registered %+v, tenant client id %q (UDAP %v)", clients, tn.ClientID, tn.UDAP)
	}
	if _, err := g.Tenants.Resolve(ctx, udapOID); err != nil || len(reg.Clients()) != 1 || len(reg.Statements()) != 1 {
		t.Fatalf("second resolve registered again: %d statements, %v", len(reg.Statements()), err)
	}
	replica := newGateway()
	tn2, err := replica.Tenants.Resolve(ctx, udapOID)
	if err != nil || tn2.ClientID != tn.ClientID || len(reg.Statements()) != 1 {
		t.Fatalf("replica: client id %q (want %q), %d registrations, %v", tn2.ClientID, tn.ClientID, len(reg.Statements()), err)
	}

	_, p, err := g.PreviewAssertion(ctx, ehxOID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Header["alg"] != "ES256" || p.Claims["iss"] != "ehx.example.org" {
		t.Errorf("ehx assertion header %v claims %v, want ES256 signed by ehx.example.org", p.Header, p.Claims)
	}
	_, p, err = g.PreviewAssertion(ctx, udapOID)
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := p.Claims["extensions"].(map[string]any)
	if p.Header["alg"] != "RS384" || p.Claims["iss"] != tn.ClientID || ext["hl7-b2b"] == nil {
		t.Errorf("UDAP assertion header %v claims %v", p.Header, p.Claims)
	}
}

// cqgate assert (PreviewAssertion) shows the header and claims of the
// assertion the token exchange sends: with client.jku set, the jku the
// exchanger adds too.
func TestPreviewAssertionShowsTheJKUSent(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sentHeader map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		header, _, _ := strings.Cut(r.PostForm.Get("client_assertion"), ".")
		raw, _ := base64.RawURLEncoding.DecodeString(header)
		mu.Lock()
		_ = json.Unmarshal(raw, &sentHeader)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"at-123456789","token_type":"Bearer","expires_in":300}`)
	}))
	defer srv.Close()

	const jku = "https://gw.example.org/.well-known/jwks.json"
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	cfg.Client.JKU = jku
	cfg.Audit.Destination = "none"
	cfg.Keys.Source = "static"
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: srv.URL + "/r4", TokenURL: srv.URL + "/token", AllowPrivateAddresses: true}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(m)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Exchange(ctx, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	sent := sentHeader
	mu.Unlock()
	_, p, err := g.PreviewAssertion(ctx, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if sent["jku"] != jku {
		t.Fatalf("sent assertion header %v, want jku %s", sent, jku)
	}
	for _, h := range []string{"alg", "kid", "typ", "jku"} {
		if p.Header[h] != sent[h] {
			t.Errorf("cqgate assert shows %s = %v, the assertion sent carries %v", h, p.Header[h], sent[h])
		}
	}
}

// The directory API key read from Vault is cached, re-read after keyTTL,
// and the last one read stays in use while Vault is down.
func TestDirectoryAPIKeyFromVault(t *testing.T) {
	v := vaulttest.New(t, "tok")
	v.Put("secret", "cqgate/directory", map[string]any{"api_key": "k-1"})
	vc := vaultClient(t, v)
	now := time.Now()
	src := &vaultAPIKey{v: vc, mount: "secret", path: "cqgate/directory", field: "api_key", clock: func() time.Time { return now }}
	ctx := context.Background()
	if k, err := src.APIKey(ctx); err != nil || k != "k-1" {
		t.Fatalf("%q %v", k, err)
	}
	v.Put("secret", "cqgate/directory", map[string]any{"api_key": "k-2"})
	if k, _ := src.APIKey(ctx); k != "k-1" {
		t.Errorf("re-read before keyTTL: %q", k)
	}
	now = now.Add(keyTTL + time.Second)
	if k, _ := src.APIKey(ctx); k != "k-2" {
		t.Errorf("rotated key not picked up: %q", k)
	}
	v.SetDown(true)
	now = now.Add(keyTTL + time.Second)
	if k, err := src.APIKey(ctx); k != "k-2" || err != nil {
		t.Errorf("Vault down: %q %v, want the last key", k, err)
	}
	empty := &vaultAPIKey{v: vc, mount: "secret", path: "cqgate/none", field: "api_key", clock: time.Now}
	if _, err := empty.APIKey(ctx); err == nil {
		t.Error("no key and Vault down: want an error")
	}
}

func vaultClient(t *testing.T, v *vaulttest.Server) *vault.Client {
	t.Helper()
	c, err := vault.New(vault.Config{Address: v.URL, Auth: vault.AuthConfig{Token: "tok"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}
