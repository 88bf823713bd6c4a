package vault_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
)

func TestNew(t *testing.T) {
	clearVaultEnv(t) // t.Setenv: these subtests cannot run in parallel
	srv := vaulttest.New(t, rootToken)
	srv.Put("secret", "app", map[string]any{"k": "v"})

	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "\n  "+rootToken+"  \n")
	emptyFile := writeFile(t, dir, "empty", " \n")
	secretIDFile := writeFile(t, dir, "secret-id", secretID+"\n")
	saFile := writeFile(t, dir, "sa-token", saJWT)
	missing := filepath.Join(dir, "nope")

	tests := []struct {
		name          string
		env           map[string]string
		cfg           vault.Config
		wantAddr      string
		wantToken     string // "" for none
		wantNamespace string
		wantTimeout   time.Duration
		wantErr       []string // each a problem in the one error
		wantErrIs     error
		works         bool // can read secret/app without Start
	}{
		{name: "explicit address and token", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}},
			wantAddr: srv.URL, wantToken: rootToken, wantTimeout: vault.DefaultTimeout, works: true},
		{name: "method spelled out", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: " Token ", Token: rootToken}}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "token file is trimmed", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: tokenFile}}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "environment only", env: map[string]string{"VAULT_ADDR": srv.URL, "VAULT_TOKEN": rootToken}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "Token beats TokenFile and VAULT_TOKEN", env: map[string]string{"VAULT_TOKEN": "env-token"},
			cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken, TokenFile: emptyFile}}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "TokenFile beats VAULT_TOKEN", env: map[string]string{"VAULT_TOKEN": "env-token"},
			cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: tokenFile}}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "Address beats VAULT_ADDR and VAULT_AGENT_ADDR", env: map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_AGENT_ADDR": "http://127.0.0.1:2"},
			cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}}, wantAddr: srv.URL, wantToken: rootToken, works: true},
		{name: "namespace and timeout", cfg: vault.Config{Address: srv.URL, Namespace: "team-a/", Timeout: 7 * time.Second, Auth: vault.AuthConfig{Token: rootToken}},
			wantAddr: srv.URL, wantToken: rootToken, wantNamespace: "team-a/", wantTimeout: 7 * time.Second},
		{name: "VAULT_CLIENT_TIMEOUT kept", env: map[string]string{"VAULT_CLIENT_TIMEOUT": "42s"},
			cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}}, wantAddr: srv.URL, wantToken: rootToken, wantTimeout: 42 * time.Second},
		{name: "approle ignores VAULT_TOKEN", env: map[string]string{"VAULT_TOKEN": "env-token"},
			cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretIDFile: secretIDFile}}, wantAddr: srv.URL},
		{name: "kubernetes", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes", Role: "cqgate", ServiceAccountTokenFile: saFile}}, wantAddr: srv.URL},

		{name: "missing address and token, at once", wantErr: []string{"address: missing (set Address or VAULT_ADDR)", "auth: token missing (set Token, TokenFile or VAULT_TOKEN)"}},
		{name: "empty token file", env: map[string]string{"VAULT_TOKEN": "env-token"}, cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: emptyFile}},
			wantErr: []string{"auth: token file: " + emptyFile + " is empty"}},
		{name: "unreadable token file", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: missing}},
			wantErr: []string{"auth: token file: open " + missing}, wantErrIs: fs.ErrNotExist},
		{name: "missing CA file", cfg: vault.Config{Address: srv.URL, CACert: filepath.Join(dir, "ca.pem"), Auth: vault.AuthConfig{Token: rootToken}},
			wantErr: []string{"ca_cert: loading " + filepath.Join(dir, "ca.pem")}},
		{name: "negative timeout", cfg: vault.Config{Address: srv.URL, Timeout: -time.Second, Auth: vault.AuthConfig{Token: rootToken}}, wantErr: []string{"timeout: -1s is negative"}},
		{name: "token method with approle fields", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken, RoleID: roleID, Role: "r"}},
			wantErr: []string{"auth: role_id is set but the method is token", "auth: role is set but the method is token"}},
		{name: "approle without anything", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", Token: rootToken}},
			wantErr: []string{"auth: approle needs a role_id", "auth: approle needs a secret_id or secret_id_file", "auth: token is set but the method is approle"}},
		{name: "approle with both secret sources", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretID: secretID, SecretIDFile: secretIDFile}},
			wantErr: []string{"auth: approle takes secret_id or secret_id_file, not both"}},
		{name: "approle secret ID file missing", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretIDFile: missing}},
			wantErr: []string{"auth: secret ID file: open " + missing}, wantErrIs: fs.ErrNotExist},
		{name: "kubernetes without role, default token file", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes"}},
			wantErr: kubernetesDefaultProblems()},
		{name: "kubernetes with an empty token file", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes", Role: "r", ServiceAccountTokenFile: emptyFile, SecretID: secretID}},
			wantErr: []string{emptyFile + " is empty", "auth: secret_id is set but the method is kubernetes"}},
		{name: "unknown method", cfg: vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "userpass"}}, wantErr: []string{`auth: method "userpass" is not one of token, approle, kubernetes`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := vault.New(tc.cfg, vault.WithMaxRetries(0))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("New succeeded, want an error")
				}
				var ce *failure.ConfigError
				if !errors.As(err, &ce) || len(ce.Problems) != len(tc.wantErr) || ce.Kind() != failure.Misconfigured {
					t.Errorf("err = %v, want a *failure.ConfigError (misconfigured) with %d problems", err, len(tc.wantErr))
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err = %q\nwant it to contain %q", err, s)
					}
				}
				if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
					t.Errorf("err = %v, want errors.Is %v", err, tc.wantErrIs)
				}
				if !strings.HasPrefix(err.Error(), "vault: invalid configuration: ") {
					t.Errorf("err = %q, want the package prefix", err)
				}
				assertNoSecrets(t, "error", err.Error(), rootToken, "env-token", roleID, secretID, saJWT)
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			api := c.API()
			if api.Address() != tc.wantAddr || api.Token() != tc.wantToken || api.Namespace() != tc.wantNamespace {
				t.Errorf("client address %q namespace %q token ok=%v; want %q %q", api.Address(), api.Namespace(), api.Token() == tc.wantToken, tc.wantAddr, tc.wantNamespace)
			}
			if tc.wantTimeout != 0 && api.ClientTimeout() != tc.wantTimeout {
				t.Errorf("timeout = %v, want %v", api.ClientTimeout(), tc.wantTimeout)
			}
			if tc.works {
				if _, err := c.ReadKV(context.Background(), "secret", "app"); err != nil {
					t.Errorf("reading through the client: %v", err)
				}
				if err := c.Ready(); err != nil {
					t.Errorf("Ready with a static token before Start: %v", err)
				}
			}
		})
	}
}

// kubernetesDefaultProblems are New's problems with a kubernetes config
// that names neither role nor token file: the default token file exists
// only inside a pod.
func kubernetesDefaultProblems() []string {
	out := []string{"auth: kubernetes needs a role"}
	if _, err := os.Stat(vault.DefaultServiceAccountTokenFile); err != nil {
		out = append(out, "auth: service account token file: open "+vault.DefaultServiceAccountTokenFile)
	}
	return out
}

func TestNewCACert(t *testing.T) {
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

	withCA, err := vault.New(vault.Config{Address: tlsSrv.URL, CACert: caFile, Auth: vault.AuthConfig{Token: rootToken}})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := withCA.API().Sys().Health(); err != nil || h.Version != "1.20.4" {
		t.Fatalf("health over TLS with CACert = %+v, %v", h, err)
	}

	withoutCA, err := vault.New(vault.Config{Address: tlsSrv.URL, Auth: vault.AuthConfig{Token: rootToken}}, vault.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = withoutCA.API().Sys().Health()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("health without CACert err = %v, want a certificate verification error", err)
	}
}

func TestStringsRedactCredentials(t *testing.T) {
	clearVaultEnv(t)
	cfg := vault.Config{
		Address: "https://vault.example.org:8200", Namespace: "ns", Timeout: time.Second,
		Auth: vault.AuthConfig{Method: "approle", Token: rootToken, TokenFile: "/run/token", RoleID: roleID, SecretID: secretID, Role: "cqgate"},
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{cfg, &cfg, cfg.Auth, &cfg.Auth} {
			out := fmt.Sprintf(f, v)
			assertNoSecrets(t, "fmt "+f, out, rootToken, "CAESIJ", roleID, secretID)
			if !strings.Contains(out, "<redacted>") {
				t.Errorf("fmt %s = %s, want <redacted>", f, out)
			}
		}
	}
	if s := cfg.String(); !strings.Contains(s, "vault.example.org") || !strings.Contains(s, "Method:approle") || !strings.Contains(s, "Mount:approle") {
		t.Errorf("String = %s, want the address, method and mount", s)
	}
	if s := (vault.Config{}).String(); !strings.Contains(s, "Token:<unset>") || !strings.Contains(s, "Method:token") {
		t.Errorf("empty config String = %s", s)
	}

	srv := vaulttest.New(t, rootToken)
	c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v"} {
		out := fmt.Sprintf(f, c) + fmt.Sprintf(f, c.Status())
		assertNoSecrets(t, "fmt "+f, out, rootToken)
	}
	s := &vault.KVSecret{Data: map[string]any{"private_key": "PEM-SECRET"}, Version: 3}
	for _, f := range []string{"%v", "%+v", "%#v"} {
		assertNoSecrets(t, "KVSecret fmt "+f, fmt.Sprintf(f, s)+fmt.Sprintf(f, *s), "PEM-SECRET")
	}
}
