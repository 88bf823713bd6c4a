package keys_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

const vaultToken = "hvs.CAESIJ-test-token-must-never-leak-Zq9"

func TestVaultKV(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "vault leaf"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP384})
	if err != nil {
		t.Fatal(err)
	}

	srv := vaulttest.New(t, vaultToken, "secret", "pki/kv")
	good := map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)}
	srv.Put("secret", "cqgate/signing", good)
	srv.Put("secret", "cqgate/rotated", map[string]any{"certificate": string(otherCert), "private_key": string(otherKey)})
	srv.Put("secret", "cqgate/rotated", good)
	srv.Put("pki/kv", "custom", map[string]any{"chain": string(certPEM), "key": string(keyPEM)})
	srv.Put("secret", "no-key", map[string]any{"certificate": string(certPEM)})
	srv.Put("secret", "number-key", map[string]any{"certificate": string(certPEM), "private_key": 42})
	srv.Put("secret", "object-key", map[string]any{"certificate": string(certPEM), "private_key": map[string]any{"pem": string(keyPEM)}})
	srv.Put("secret", "empty-key", map[string]any{"certificate": string(certPEM), "private_key": "  "})
	srv.Put("secret", "swapped", map[string]any{"certificate": string(keyPEM), "private_key": string(certPEM)})
	srv.Put("secret", "mismatch", map[string]any{"certificate": string(certPEM), "private_key": string(otherKey)})
	srv.Put("secret", "deleted", good)
	if err := srv.Client(t).KVv2("secret").Delete(context.Background(), "deleted"); err != nil {
		t.Fatal(err)
	}

	client := srv.Client(t)
	wrongToken := srv.Client(t)
	wrongToken.SetToken("hvs.wrong-token-also-secret")
	down := vaulttest.New(t, vaultToken)
	down.Put("secret", "cqgate/signing", good)
	down.SetDown(true)

	loadedAt := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name        string
		kv          keys.VaultKV
		wantVersion string
		wantErrIs   error
		wantStatus  int      // *api.ResponseError status code
		wantInErr   []string // substrings of the error
	}{
		{name: "happy", kv: keys.VaultKV{Client: client, Path: "cqgate/signing"}, wantVersion: "kv:v1"},
		{name: "explicit defaults and slashes", kv: keys.VaultKV{Client: client, Mount: "/secret/", Path: "/cqgate/signing/", CertificateField: "certificate", PrivateKeyField: "private_key"}, wantVersion: "kv:v1"},
		{name: "latest version wins", kv: keys.VaultKV{Client: client, Path: "cqgate/rotated"}, wantVersion: "kv:v2"},
		{name: "custom mount and fields", kv: keys.VaultKV{Client: client, Mount: "pki/kv", Path: "custom", CertificateField: "chain", PrivateKeyField: "key"}, wantVersion: "kv:v1"},
		{
			name: "wrong token is 403", kv: keys.VaultKV{Client: wrongToken, Path: "cqgate/signing"}, wantStatus: 403,
			wantInErr: []string{"keys: reading secret at secret/data/cqgate/signing: ", "permission denied"},
		},
		{
			name: "missing secret is 404", kv: keys.VaultKV{Client: client, Path: "cqgate/nope"}, wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"keys: reading secret at secret/data/cqgate/nope: "},
		},
		{
			name: "unknown mount", kv: keys.VaultKV{Client: client, Mount: "nomount", Path: "cqgate/signing"}, wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"keys: reading secret at nomount/data/cqgate/signing: "},
		},
		{name: "missing field", kv: keys.VaultKV{Client: client, Path: "no-key"}, wantInErr: []string{"secret/data/no-key", `field "private_key" is missing`}},
		{name: "missing custom field", kv: keys.VaultKV{Client: client, Path: "cqgate/signing", CertificateField: "chain"}, wantInErr: []string{"secret/data/cqgate/signing", `field "chain" is missing`}},
		{name: "number instead of PEM", kv: keys.VaultKV{Client: client, Path: "number-key"}, wantInErr: []string{"secret/data/number-key", `field "private_key" is a number, want a PEM string`}},
		{name: "object instead of PEM", kv: keys.VaultKV{Client: client, Path: "object-key"}, wantInErr: []string{`field "private_key" is an object`}},
		{name: "empty field", kv: keys.VaultKV{Client: client, Path: "empty-key"}, wantInErr: []string{`field "private_key" is empty`}},
		{name: "fields swapped", kv: keys.VaultKV{Client: client, Path: "swapped"}, wantErrIs: keys.ErrNoCertificate, wantInErr: []string{"secret/data/swapped", `(fields "certificate" and "private_key")`}},
		{name: "key does not match", kv: keys.VaultKV{Client: client, Path: "mismatch"}, wantErrIs: keys.ErrKeyMismatch, wantInErr: []string{"secret/data/mismatch"}},
		{name: "latest version deleted", kv: keys.VaultKV{Client: client, Path: "deleted"}, wantInErr: []string{"secret/data/deleted", "latest version 1 is deleted or destroyed"}},
		{name: "vault sealed", kv: keys.VaultKV{Client: down.Client(t), Path: "cqgate/signing"}, wantStatus: 503, wantInErr: []string{"Vault is sealed"}},
		{name: "no client", kv: keys.VaultKV{Path: "cqgate/signing"}, wantInErr: []string{"secret/data/cqgate/signing: no Vault client configured"}},
		{name: "no path", kv: keys.VaultKV{Client: client}, wantInErr: []string{"secret path is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kv := tc.kv
			kv.Clock = func() time.Time { return loadedAt }
			m, err := kv.Load(context.Background())
			if tc.wantVersion == "" {
				if err == nil {
					t.Fatal("Load succeeded, want an error")
				}
				if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
					t.Errorf("err = %v, want errors.Is %v", err, tc.wantErrIs)
				}
				if tc.wantStatus != 0 {
					var re *api.ResponseError
					if !errors.As(err, &re) || re.StatusCode != tc.wantStatus {
						t.Errorf("err = %v, want *api.ResponseError %d", err, tc.wantStatus)
					}
				}
				for _, s := range tc.wantInErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err = %q\nwant it to contain %q", err, s)
					}
				}
				secrets := append(secretsOf(t, keyPEM), secretsOf(t, otherKey)...)
				assertNoSecrets(t, "error", err.Error(), append(secrets, vaultToken, "hvs.wrong-token-also-secret", "-----BEGIN")...)
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if m.KeyID != want.KeyID || len(m.Chain) != 1 || !m.Chain[0].Equal(want.Chain[0]) {
				t.Errorf("Load = %v, want %v", m, want)
			}
			if m.Version != tc.wantVersion {
				t.Errorf("Version = %q, want %q", m.Version, tc.wantVersion)
			}
			if !m.LoadedAt.Equal(loadedAt) {
				t.Errorf("LoadedAt = %v, want %v", m.LoadedAt, loadedAt)
			}
		})
	}

	t.Run("reads through vault api", func(t *testing.T) {
		before := srv.RequestsFor("secret/data/cqgate/signing")
		if _, err := (&keys.VaultKV{Client: client, Path: "cqgate/signing"}).Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := srv.RequestsFor("secret/data/cqgate/signing") - before; got != 1 {
			t.Errorf("Load made %d requests to secret/data/cqgate/signing, want 1", got)
		}
	})

	t.Run("String names the secret only", func(t *testing.T) {
		s := fmt.Sprint(&keys.VaultKV{Client: client, Path: "cqgate/signing"})
		if s != "vault-kv:secret/data/cqgate/signing" {
			t.Errorf("String = %q", s)
		}
		for _, f := range []string{"%v", "%+v", "%#v"} {
			assertNoSecrets(t, "fmt "+f, fmt.Sprintf(f, keys.VaultKV{Client: client, Path: "p"}), vaultToken)
		}
	})
}

// TestVaultRotationSuiteAgainstFake runs the real-Vault suite against the
// fake, so that its code is exercised on every test run.
func TestVaultRotationSuiteAgainstFake(t *testing.T) {
	srv := vaulttest.New(t, vaultToken)
	t.Run("suite", func(t *testing.T) { runVaultRotationSuite(t, srv.Client(t), "secret") })
	if paths := srv.Paths("secret"); len(paths) != 0 {
		t.Errorf("suite left secrets behind: %v", paths)
	}
}

// clearVaultEnv unsets the VAULT_* variables api.DefaultConfig and
// api.NewClient read, for the duration of the test.
func clearVaultEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		api.EnvVaultAddress, api.EnvVaultAgentAddr, api.EnvVaultToken, api.EnvVaultNamespace,
		api.EnvVaultCACert, api.EnvVaultCACertBytes, api.EnvVaultCAPath, api.EnvVaultClientCert,
		api.EnvVaultClientKey, api.EnvVaultClientTimeout, api.EnvVaultSkipVerify, api.EnvVaultTLSServerName,
		api.EnvVaultMaxRetries, api.EnvVaultHeaders, api.EnvVaultProxyAddr,
	} {
		t.Setenv(k, "")
	}
}

func TestNewVaultClient(t *testing.T) {
	clearVaultEnv(t) // t.Setenv: these subtests cannot run in parallel
	srv := vaulttest.New(t, vaultToken)
	srv.Put("secret", "app", map[string]any{"k": "v"})

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("\n  "+vaultToken+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyTokenFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyTokenFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		env           map[string]string
		cfg           keys.VaultConfig
		wantAddr      string
		wantToken     string
		wantNamespace string
		wantTimeout   time.Duration
		wantErr       []string
		works         bool // can read secret/app from the fake
	}{
		{name: "explicit address and token", cfg: keys.VaultConfig{Address: srv.URL, Token: vaultToken}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "token file is trimmed", cfg: keys.VaultConfig{Address: srv.URL, TokenFile: tokenFile}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "environment only", env: map[string]string{"VAULT_ADDR": srv.URL, "VAULT_TOKEN": vaultToken}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "Token beats TokenFile and VAULT_TOKEN", env: map[string]string{"VAULT_TOKEN": "env-token"}, cfg: keys.VaultConfig{Address: srv.URL, Token: vaultToken, TokenFile: emptyTokenFile}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "TokenFile beats VAULT_TOKEN", env: map[string]string{"VAULT_TOKEN": "env-token"}, cfg: keys.VaultConfig{Address: srv.URL, TokenFile: tokenFile}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "Address beats VAULT_ADDR and VAULT_AGENT_ADDR", env: map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_AGENT_ADDR": "http://127.0.0.1:2"}, cfg: keys.VaultConfig{Address: srv.URL, Token: vaultToken}, wantAddr: srv.URL, wantToken: vaultToken, works: true},
		{name: "namespace and timeout", cfg: keys.VaultConfig{Address: srv.URL, Token: vaultToken, Namespace: "team-a/", Timeout: 7 * time.Second}, wantAddr: srv.URL, wantToken: vaultToken, wantNamespace: "team-a/", wantTimeout: 7 * time.Second},
		{name: "missing address and token", wantErr: []string{"missing address (set Address or VAULT_ADDR) and token (set Token, TokenFile or VAULT_TOKEN)"}},
		{name: "missing address", cfg: keys.VaultConfig{Token: vaultToken}, wantErr: []string{"missing address"}},
		{name: "missing token", cfg: keys.VaultConfig{Address: srv.URL}, wantErr: []string{"missing token"}},
		{name: "empty token file", env: map[string]string{"VAULT_TOKEN": "env-token"}, cfg: keys.VaultConfig{Address: srv.URL, TokenFile: emptyTokenFile}, wantErr: []string{"token (token file " + emptyTokenFile + " is empty)"}},
		{name: "unreadable token file", cfg: keys.VaultConfig{Address: srv.URL, TokenFile: filepath.Join(dir, "nope")}, wantErr: []string{"reading Vault token file " + filepath.Join(dir, "nope")}},
		{name: "missing CA file", cfg: keys.VaultConfig{Address: srv.URL, Token: vaultToken, CACert: filepath.Join(dir, "ca.pem")}, wantErr: []string{"loading Vault CA certificate " + filepath.Join(dir, "ca.pem")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := keys.NewVaultClient(tc.cfg)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("NewVaultClient succeeded, want an error")
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err = %q\nwant it to contain %q", err, s)
					}
				}
				assertNoSecrets(t, "error", err.Error(), vaultToken, "env-token")
				return
			}
			if err != nil {
				t.Fatalf("NewVaultClient: %v", err)
			}
			if c.Address() != tc.wantAddr || c.Token() != tc.wantToken || c.Namespace() != tc.wantNamespace {
				t.Errorf("client address %q namespace %q token ok=%v; want %q %q", c.Address(), c.Namespace(), c.Token() == tc.wantToken, tc.wantAddr, tc.wantNamespace)
			}
			if tc.wantTimeout != 0 && c.ClientTimeout() != tc.wantTimeout {
				t.Errorf("timeout = %v, want %v", c.ClientTimeout(), tc.wantTimeout)
			}
			if tc.works {
				if _, err := c.KVv2("secret").Get(context.Background(), "app"); err != nil {
					t.Errorf("reading through the client: %v", err)
				}
			}
		})
	}
}

func TestNewVaultClientCACert(t *testing.T) {
	clearVaultEnv(t)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"initialized":true,"sealed":false,"standby":false,"version":"1.20.4"}`)
	}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the expected handshake failure below
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	withCA, err := keys.NewVaultClient(keys.VaultConfig{Address: tlsSrv.URL, Token: vaultToken, CACert: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := withCA.Sys().Health(); err != nil || h.Version != "1.20.4" {
		t.Fatalf("health over TLS with CACert = %+v, %v", h, err)
	}

	withoutCA, err := keys.NewVaultClient(keys.VaultConfig{Address: tlsSrv.URL, Token: vaultToken})
	if err != nil {
		t.Fatal(err)
	}
	withoutCA.SetMaxRetries(0)
	_, err = withoutCA.Sys().Health()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("health without CACert err = %v, want a certificate verification error", err)
	}
}

func TestVaultConfigStringRedactsToken(t *testing.T) {
	cfg := keys.VaultConfig{Address: "https://vault.example.org:8200", Token: vaultToken, TokenFile: "/run/token", Namespace: "ns", Timeout: time.Second}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{cfg, &cfg} {
			out := fmt.Sprintf(f, v)
			assertNoSecrets(t, "fmt "+f, out, vaultToken, "CAESIJ")
			if !strings.Contains(out, "vault.example.org") || !strings.Contains(out, "<redacted>") {
				t.Errorf("fmt %s = %s, want the address and <redacted>", f, out)
			}
		}
	}
	if s := (keys.VaultConfig{}).String(); !strings.Contains(s, "Token:<unset>") {
		t.Errorf("empty config String = %s", s)
	}
}
