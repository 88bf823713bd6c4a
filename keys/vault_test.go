package keys_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vault"
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

	client := vaultClient(t, srv, vaultToken)
	wrongToken := vaultClient(t, srv, "hvs.wrong-token-also-secret")
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
			wantInErr: []string{"keys: vault: reading secret at secret/data/cqgate/signing: ", "permission denied"},
		},
		{
			name: "missing secret is 404", kv: keys.VaultKV{Client: client, Path: "cqgate/nope"}, wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"keys: vault: reading secret at secret/data/cqgate/nope: "},
		},
		{
			name: "unknown mount", kv: keys.VaultKV{Client: client, Mount: "nomount", Path: "cqgate/signing"}, wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"keys: vault: reading secret at nomount/data/cqgate/signing: "},
		},
		{name: "missing field", kv: keys.VaultKV{Client: client, Path: "no-key"}, wantInErr: []string{"secret/data/no-key", `field "private_key" is missing`}},
		{name: "missing custom field", kv: keys.VaultKV{Client: client, Path: "cqgate/signing", CertificateField: "chain"}, wantInErr: []string{"secret/data/cqgate/signing", `field "chain" is missing`}},
		{name: "number instead of PEM", kv: keys.VaultKV{Client: client, Path: "number-key"}, wantInErr: []string{"secret/data/number-key", `field "private_key" is a number, want a PEM string`}},
		{name: "object instead of PEM", kv: keys.VaultKV{Client: client, Path: "object-key"}, wantInErr: []string{`field "private_key" is an object`}},
		{name: "empty field", kv: keys.VaultKV{Client: client, Path: "empty-key"}, wantInErr: []string{`field "private_key" is empty`}},
		{name: "fields swapped", kv: keys.VaultKV{Client: client, Path: "swapped"}, wantErrIs: keys.ErrNoCertificate, wantInErr: []string{"secret/data/swapped", `(fields "certificate" and "private_key")`}},
		{name: "key does not match", kv: keys.VaultKV{Client: client, Path: "mismatch"}, wantErrIs: keys.ErrKeyMismatch, wantInErr: []string{"secret/data/mismatch"}},
		{name: "latest version deleted", kv: keys.VaultKV{Client: client, Path: "deleted"}, wantErrIs: vault.ErrSecretDeleted, wantInErr: []string{"secret/data/deleted", "version 1: the current version is deleted or destroyed"}},
		{name: "vault sealed", kv: keys.VaultKV{Client: vaultClient(t, down, vaultToken), Path: "cqgate/signing"}, wantStatus: 503, wantInErr: []string{"Vault is sealed"}},
		{name: "no client", kv: keys.VaultKV{Path: "cqgate/signing"}, wantInErr: []string{"secret/data/cqgate/signing: no Vault client configured"}},
		{name: "nil vault.Client", kv: keys.VaultKV{Client: (*vault.Client)(nil), Path: "cqgate/signing"}, wantInErr: []string{"no Vault client configured"}},
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

	t.Run("version from metadata", func(t *testing.T) {
		kv := &keys.VaultKV{Client: client, Path: "cqgate/rotated"}
		before := srv.RequestsFor("secret/data/cqgate/rotated")
		v, err := kv.Version(context.Background())
		if err != nil || v != "kv:v2" {
			t.Fatalf("Version = %q, %v; want kv:v2", v, err)
		}
		if srv.RequestsFor("secret/data/cqgate/rotated") != before || srv.RequestsFor("secret/metadata/cqgate/rotated") == 0 {
			t.Error("Version read the secret's data instead of its metadata")
		}
		if _, err := (&keys.VaultKV{Client: wrongToken, Path: "cqgate/rotated"}).Version(context.Background()); err == nil ||
			!strings.Contains(err.Error(), "secret/metadata/cqgate/rotated") {
			t.Errorf("Version with a wrong token err = %v", err)
		} else {
			assertNoSecrets(t, "error", err.Error(), vaultToken, "hvs.wrong-token-also-secret")
		}
		if _, err := (&keys.VaultKV{Path: "x"}).Version(context.Background()); err == nil {
			t.Error("Version without a client succeeded")
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
	t.Run("suite", func(t *testing.T) { runVaultRotationSuite(t, vaultClient(t, srv, vaultToken), "secret") })
	if paths := srv.Paths("secret"); len(paths) != 0 {
		t.Errorf("suite left secrets behind: %v", paths)
	}
}
