package keys_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// TestNoSecretsInErrors drives every failure path that has a real private
// key or the Vault token at hand and checks that neither the PEM body (any
// line of it, or the key's private scalar) nor the token reaches
// err.Error(). The per-source tables check the same for their own cases.
func TestNoSecretsInErrors(t *testing.T) {
	clearVaultEnv(t)
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeRSA, CommonName: "secret test"})
	if err != nil {
		t.Fatal(err)
	}
	otherCert, _, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256})
	if err != nil {
		t.Fatal(err)
	}
	expiredCert, expiredKey, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{
		KeyType: keys.KeyTypeECP256, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	block.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,000102030405060708090A0B0C0D0E0F"}
	markedEncrypted := pem.EncodeToMemory(block)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	srv := vaulttest.New(t, vaultToken)
	srv.Put("secret", "swapped", map[string]any{"certificate": string(keyPEM), "private_key": string(certPEM)})
	srv.Put("secret", "nested", map[string]any{"certificate": string(certPEM), "private_key": map[string]any{"pem": string(keyPEM)}})
	srv.Put("secret", "truncated", map[string]any{"certificate": string(certPEM), "private_key": string(truncatePEM(t, keyPEM))})
	srv.Put("secret", "ok", map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)})
	srv.ImportTransitKey("transit", "signing", rsaKey2048())
	srv.Put("secret", "transit-cert", map[string]any{"certificate": string(newTestCA(t).certify(t, rsaKey2048().Public(), "transit"))})
	wrong := vaultClient(t, srv, vaultToken+"-wrong")
	client := vaultClient(t, srv, vaultToken)
	ctx := context.Background()

	expired, err := keys.ParsePEM(expiredCert, expiredKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		run  func() error
	}{
		{"ParsePEM truncated key", func() error { _, err := keys.ParsePEM(certPEM, truncatePEM(t, keyPEM)); return err }},
		{"ParsePEM key of another cert", func() error { _, err := keys.ParsePEM(otherCert, keyPEM); return err }},
		{"ParsePEM key in certificate slot", func() error { _, err := keys.ParsePEM(keyPEM, keyPEM); return err }},
		{"ParsePEM key marked encrypted", func() error { _, err := keys.ParsePEM(certPEM, markedEncrypted); return err }},
		{"PEMFiles key file as certificate", func() error {
			_, err := (&keys.PEMFiles{CertificateFile: keyFile, PrivateKeyFile: keyFile}).Load(ctx)
			return err
		}},
		{"VaultKV swapped fields", func() error { _, err := (&keys.VaultKV{Client: client, Path: "swapped"}).Load(ctx); return err }},
		{"VaultKV key nested in an object", func() error { _, err := (&keys.VaultKV{Client: client, Path: "nested"}).Load(ctx); return err }},
		{"VaultKV truncated key", func() error {
			_, err := (&keys.VaultKV{Client: client, Path: "truncated"}).Load(ctx)
			return err
		}},
		{"VaultKV wrong token", func() error { _, err := (&keys.VaultKV{Client: wrong, Path: "ok"}).Load(ctx); return err }},
		{"VaultTransit wrong token", func() error {
			_, err := (&keys.VaultTransit{Client: wrong, Key: "signing", CertPath: "transit-cert"}).Load(ctx)
			return err
		}},
		{"VaultTransit certificate of another key", func() error {
			_, err := (&keys.VaultTransit{Client: client, Key: "signing", CertPath: "ok"}).Load(ctx)
			return err
		}},
		{"VaultTransit signing while sealed", func() error {
			m, err := (&keys.VaultTransit{Client: client, Key: "signing", CertPath: "transit-cert"}).Load(ctx)
			if err != nil {
				return err
			}
			srv.SetDown(true)
			defer srv.SetDown(false)
			return signAndVerifyJWT(m, jose.RS256, m.Chain[0].PublicKey)
		}},
		{"VaultTransit signing denied", func() error {
			m, err := (&keys.VaultTransit{Client: client, Key: "signing", CertPath: "transit-cert"}).Load(ctx)
			if err != nil {
				return err
			}
			srv.SetDenied("transit/sign/", true)
			defer srv.SetDenied("transit/sign/", false)
			_, err = m.JOSESigner().SignPayload([]byte("eyJhbGciOiJSUzI1NiJ9.c2lnbmluZy1pbnB1dA"), jose.RS256)
			return err
		}},
		{"Holder expired material", func() error {
			_, err := keys.NewHolder(keys.NewStatic(expired), keys.HolderOptions{Logger: testLogger(t)}).Reload(ctx)
			return err
		}},
	}
	secrets := append(append(secretsOf(t, keyPEM), secretsOf(t, expiredKey)...), vaultToken, vaultToken+"-wrong", "PRIVATE KEY-----",
		"c2lnbmluZy1pbnB1dA", base64.StdEncoding.EncodeToString([]byte("eyJhbGciOiJSUzI1NiJ9.c2lnbmluZy1pbnB1dA")))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			assertNoSecrets(t, "err.Error()", err.Error(), secrets...)
		})
	}
}
