package keys_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/keys"
)

// TestRealVault runs the rotation suite against a real Vault when both
// VAULT_ADDR and VAULT_TOKEN are set (e.g. `vault server -dev`). The KV v2
// mount is VAULT_KV_MOUNT, "secret" by default; the token needs create,
// read and delete on <mount>/data/cqgate-test/* and <mount>/metadata/cqgate-test/*.
// The transit part enables a transit engine at a fresh mount
// (cqgate-test-transit-<random>) and disables it afterwards; it is skipped,
// saying so, when the token may not do that.
func TestRealVault(t *testing.T) {
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
		t.Skip("real Vault tests skipped: set VAULT_ADDR and VAULT_TOKEN to run them against a real Vault")
	}
	mount := os.Getenv("VAULT_KV_MOUNT")
	if mount == "" {
		mount = keys.DefaultKVMount
	}
	client, err := vault.New(vault.Config{Timeout: 30 * time.Second}, vault.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("vault.New from the environment: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-client.Done()
	})
	if err := client.Start(ctx); err != nil {
		t.Fatalf("logging in to the real Vault: %v", err)
	}
	runVaultRotationSuite(t, client, mount)
}

// runVaultRotationSuite, against a real Vault or the fake:
//
//   - KV: writes a self-signed certificate and key to a fresh random path,
//     loads it through VaultKV and a Holder, writes a second version and
//     waits for Holder.Watch to pick it up, then writes a broken third
//     version and checks that the second stays in service and Status
//     records the failure;
//   - transit: enables a transit engine at a fresh mount, and for RSA,
//     P-256 and P-384 keys stores a certificate for the transit public key,
//     loads it through VaultTransit and signs JWTs that are verified with
//     the certificate's public key; rotates a transit key and checks that
//     the previous material keeps signing until a certificate for the new
//     version is stored, which Poll then picks up.
//
// Everything written is deleted afterwards.
func runVaultRotationSuite(t *testing.T, client *vault.Client, mount string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	path := "cqgate-test/" + randomHex(t)
	cleanupKV(t, client, mount, path)

	put := func(data map[string]any) int {
		t.Helper()
		v, err := client.WriteKV(ctx, mount, path, data)
		if err != nil {
			t.Fatalf("writing %s/data/%s: %v", mount, path, err)
		}
		return v
	}
	putKey := func(opts keys.SelfSignedOptions) (*keys.Material, int, []byte) {
		t.Helper()
		certPEM, keyPEM, err := keys.GenerateSelfSigned(opts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := keys.ParsePEM(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return want, put(map[string]any{keys.DefaultCertificateField: string(certPEM), keys.DefaultPrivateKeyField: string(keyPEM)}), keyPEM
	}

	want1, v1, key1 := putKey(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "cqgate vault test v1", URIs: []string{"urn:oid:2.16.840.1.113883.3.7204.1"}})
	h := keys.NewHolder(&keys.VaultKV{Client: client, Mount: mount, Path: path}, keys.HolderOptions{Logger: testLogger(t)})
	m1, err := h.Reload(ctx)
	if err != nil {
		t.Fatalf("first Reload: %v", err)
	}
	checkLoaded(t, m1, want1, fmt.Sprintf("kv:v%d", v1))
	if h.Current() != m1 {
		t.Error("Current is not the loaded material")
	}

	// Watch picks up a new version.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); h.Watch(watchCtx, 20*time.Millisecond) }()
	want2, v2, key2 := putKey(keys.SelfSignedOptions{KeyType: keys.KeyTypeRSA, CommonName: "cqgate vault test v2"})
	if v2 != v1+1 {
		t.Errorf("second write is version %d, want %d", v2, v1+1)
	}
	waitFor(t, "Watch to load the second version", func() bool { return h.Current() != m1 })
	stopWatch()
	<-watchDone
	m2 := h.Current()
	checkLoaded(t, m2, want2, fmt.Sprintf("kv:v%d", v2))
	mustSignAndVerify(t, m2)
	if st := h.Status(); st.Version != m2.Version || st.Failures != 0 || st.Reloads != 2 {
		t.Errorf("Status after rotation = %+v", st)
	}

	// A broken third version must not replace the second.
	put(map[string]any{keys.DefaultCertificateField: "broken"})
	err = h.Poll(ctx)
	if err == nil {
		t.Fatal("Poll of a secret without private_key succeeded")
	}
	if h.Current() != m2 {
		t.Error("failed Poll replaced the current material")
	}
	if st := h.Status(); st.Failures != 1 || st.LastError != err.Error() || st.Version != m2.Version {
		t.Errorf("Status after a failed reload = %+v", st)
	}
	assertNoSecrets(t, "error", err.Error(), append(append(secretsOf(t, key1), secretsOf(t, key2)...), client.API().Token())...)

	t.Run("transit", func(t *testing.T) { runTransitSuite(t, client, mount) })
}

func runTransitSuite(t *testing.T, client *vault.Client, kvMount string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	transit := "cqgate-test-transit-" + randomHex(t)
	err := client.API().Sys().MountWithContext(ctx, transit, &api.MountInput{Type: "transit"})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		t.Skipf("transit part skipped: the token may not enable a transit engine at %s/ (%d)", transit, re.StatusCode)
	}
	if err != nil {
		t.Fatalf("enabling a transit engine at %s/: %v", transit, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.API().Sys().UnmountWithContext(ctx, transit); err != nil {
			t.Errorf("disabling %s/: %v", transit, err)
		}
	})
	ca := newTestCA(t)

	createKey := func(name, typ string) crypto.PublicKey {
		t.Helper()
		if _, err := client.API().Logical().WriteWithContext(ctx, transit+"/keys/"+name, map[string]any{"type": typ}); err != nil {
			t.Fatalf("creating transit key %s: %v", name, err)
		}
		return transitPublicKey(t, client, transit, name, 0)
	}
	storeCert := func(path string, pub crypto.PublicKey, cn string) int {
		t.Helper()
		v, err := client.WriteKV(ctx, kvMount, path, map[string]any{keys.DefaultCertificateField: string(ca.certify(t, pub, cn))})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	for _, tc := range []struct {
		typ  string
		algs []jose.SignatureAlgorithm
	}{
		{"rsa-2048", []jose.SignatureAlgorithm{jose.RS256, jose.RS384}},
		{"ecdsa-p256", []jose.SignatureAlgorithm{jose.ES256}},
		{"ecdsa-p384", []jose.SignatureAlgorithm{jose.ES384}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			name := "cqgate-" + tc.typ
			pub := createKey(name, tc.typ)
			certPath := "cqgate-test/" + randomHex(t)
			cleanupKV(t, client, kvMount, certPath)
			kvVersion := storeCert(certPath, pub, "cqgate transit "+tc.typ)
			h := keys.NewHolder(&keys.VaultTransit{Client: client, Mount: transit, Key: name, CertMount: kvMount, CertPath: certPath},
				keys.HolderOptions{Logger: testLogger(t)})
			m, err := h.Reload(ctx)
			if err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if want := fmt.Sprintf("transit:v1+kv:v%d", kvVersion); m.Version != want || m.Signer != nil || m.Opaque == nil {
				t.Errorf("material %v: want version %s, an opaque signer and no local one", m, want)
			}
			for _, alg := range tc.algs {
				if err := signAndVerifyJWT(m, alg, m.Chain[0].PublicKey); err != nil {
					t.Errorf("%s: %v", alg, err)
				}
			}
		})
	}

	t.Run("rotation", func(t *testing.T) {
		name := "cqgate-rotated"
		pub1 := createKey(name, "ecdsa-p256")
		certPath := "cqgate-test/" + randomHex(t)
		cleanupKV(t, client, kvMount, certPath)
		storeCert(certPath, pub1, "cqgate transit rotation v1")
		h := keys.NewHolder(&keys.VaultTransit{Client: client, Mount: transit, Key: name, CertMount: kvMount, CertPath: certPath},
			keys.HolderOptions{Logger: testLogger(t)})
		if err := h.Poll(ctx); err != nil {
			t.Fatalf("first Poll: %v", err)
		}
		m1 := h.Current()

		if _, err := client.API().Logical().WriteWithContext(ctx, transit+"/keys/"+name+"/rotate", nil); err != nil {
			t.Fatalf("rotating: %v", err)
		}
		pub2 := transitPublicKey(t, client, transit, name, 2)
		err := h.Poll(ctx)
		if !errors.Is(err, keys.ErrKeyMismatch) || !strings.Contains(err.Error(), "rotated without storing a certificate") {
			t.Errorf("Poll after a transit rotation without a new certificate: err = %v, want ErrKeyMismatch", err)
		}
		if h.Current() != m1 || h.Status().Failures != 1 {
			t.Errorf("after the failed Poll: Current %v (want %v), Status %+v", h.Current(), m1, h.Status())
		}
		if err := signAndVerifyJWT(m1, jose.ES256, pub1); err != nil {
			t.Errorf("the old material no longer signs with the old key version: %v", err)
		}

		kv2 := storeCert(certPath, pub2, "cqgate transit rotation v2")
		if err := h.Poll(ctx); err != nil {
			t.Fatalf("Poll after storing the new certificate: %v", err)
		}
		m2 := h.Current()
		if want := fmt.Sprintf("transit:v2+kv:v%d", kv2); m2 == m1 || m2.Version != want {
			t.Fatalf("after rotation Current = %v, want version %s", m2, want)
		}
		if err := signAndVerifyJWT(m2, jose.ES256, pub2); err != nil {
			t.Errorf("new material: %v", err)
		}
		if err := signAndVerifyJWT(m2, jose.ES256, pub1); err == nil {
			t.Error("new material's signature verifies with the old key")
		}
	})
}

func transitPublicKey(t *testing.T, client *vault.Client, mount, name string, version int) crypto.PublicKey {
	t.Helper()
	s, err := client.API().Logical().Read(mount + "/keys/" + name)
	if err != nil || s == nil {
		t.Fatalf("reading transit key %s: %v", name, err)
	}
	if version == 0 {
		version = int(mustInt(t, s.Data["latest_version"]))
	}
	entry, _ := s.Data["keys"].(map[string]any)[fmt.Sprint(version)].(map[string]any)
	pemText, _ := entry["public_key"].(string)
	pub, err := parsePublicPEM(pemText)
	if err != nil {
		t.Fatalf("transit key %s version %d: %v", name, version, err)
	}
	return pub
}

func cleanupKV(t *testing.T, client *vault.Client, mount, path string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.API().KVv2(mount).DeleteMetadata(ctx, path); err != nil {
			t.Errorf("cleaning up %s/metadata/%s: %v", mount, path, err)
		}
	})
}

func randomHex(t *testing.T) string {
	t.Helper()
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(rnd[:])
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
