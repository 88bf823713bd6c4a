package keys_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/keys"
)

// TestRealVault runs the rotation suite against a real Vault when both
// VAULT_ADDR and VAULT_TOKEN are set (e.g. `vault server -dev`). The KV v2
// mount is VAULT_KV_MOUNT, "secret" by default; the token needs create,
// read and delete on <mount>/data/cqgate-test/* and <mount>/metadata/cqgate-test/*.
func TestRealVault(t *testing.T) {
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
		t.Skip("real Vault tests skipped: set VAULT_ADDR and VAULT_TOKEN to run them against a real Vault")
	}
	mount := os.Getenv("VAULT_KV_MOUNT")
	if mount == "" {
		mount = keys.DefaultKVMount
	}
	client, err := keys.NewVaultClient(keys.VaultConfig{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("NewVaultClient from the environment: %v", err)
	}
	runVaultRotationSuite(t, client, mount)
}

// runVaultRotationSuite writes a self-signed certificate and key to a fresh
// random path, loads it through VaultKV and a Holder, rotates it with a
// second version and checks that Reload picks that up, then deletes every
// version and the metadata.
func runVaultRotationSuite(t *testing.T, client *api.Client, mount string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	path := "cqgate-test/" + hex.EncodeToString(rnd[:])
	kv := client.KVv2(mount)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kv.DeleteMetadata(ctx, path); err != nil {
			t.Errorf("cleaning up %s/metadata/%s: %v", mount, path, err)
		}
	})

	put := func(opts keys.SelfSignedOptions) (*keys.Material, int, []byte) {
		t.Helper()
		certPEM, keyPEM, err := keys.GenerateSelfSigned(opts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := keys.ParsePEM(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		w, err := kv.Put(ctx, path, map[string]any{
			keys.DefaultCertificateField: string(certPEM),
			keys.DefaultPrivateKeyField:  string(keyPEM),
		})
		if err != nil {
			t.Fatalf("writing %s/data/%s: %v", mount, path, err)
		}
		return want, w.VersionMetadata.Version, keyPEM
	}

	want1, v1, key1 := put(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "cqgate vault test v1", URIs: []string{"urn:oid:2.16.840.1.113883.3.7204.1"}})
	h := keys.NewHolder(&keys.VaultKV{Client: client, Mount: mount, Path: path}, keys.HolderOptions{Logger: testLogger(t)})
	m1, err := h.Reload(ctx)
	if err != nil {
		t.Fatalf("first Reload: %v", err)
	}
	checkLoaded(t, m1, want1, fmt.Sprintf("kv:v%d", v1))
	if h.Current() != m1 {
		t.Error("Current is not the loaded material")
	}

	want2, v2, key2 := put(keys.SelfSignedOptions{KeyType: keys.KeyTypeRSA, CommonName: "cqgate vault test v2"})
	if v2 != v1+1 {
		t.Errorf("second write is version %d, want %d", v2, v1+1)
	}
	m2, err := h.Reload(ctx)
	if err != nil {
		t.Fatalf("Reload after rotation: %v", err)
	}
	checkLoaded(t, m2, want2, fmt.Sprintf("kv:v%d", v2))
	if m2.KeyID == m1.KeyID || h.Current() != m2 {
		t.Errorf("Reload did not switch to the rotated key: %v -> %v", m1, m2)
	}
	mustSignAndVerify(t, h.Current())

	// A broken third version must not replace the second.
	if _, err := kv.Put(ctx, path, map[string]any{keys.DefaultCertificateField: "broken"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.Reload(ctx)
	if err == nil {
		t.Fatal("Reload of a secret without private_key succeeded")
	}
	if h.Current() != m2 {
		t.Error("failed Reload replaced the current material")
	}
	assertNoSecrets(t, "error", err.Error(), append(append(secretsOf(t, key1), secretsOf(t, key2)...), client.Token())...)
}

func checkLoaded(t *testing.T, got, want *keys.Material, wantVersion string) {
	t.Helper()
	if got.KeyID != want.KeyID {
		t.Errorf("KeyID = %s, want %s", got.KeyID, want.KeyID)
	}
	if len(got.Chain) != len(want.Chain) || !got.Chain[0].Equal(want.Chain[0]) {
		t.Errorf("chain = %v, want %v", got, want)
	}
	if got.Version != wantVersion {
		t.Errorf("Version = %q, want %q", got.Version, wantVersion)
	}
	if got.LoadedAt.IsZero() {
		t.Error("LoadedAt not set")
	}
}
