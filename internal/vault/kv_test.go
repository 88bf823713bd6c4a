package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
)

func newTokenClient(t *testing.T, addr, token string, opts ...vault.Option) *vault.Client {
	t.Helper()
	c, err := vault.New(vault.Config{Address: addr, Auth: vault.AuthConfig{Token: token}}, append([]vault.Option{vault.WithMaxRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKV(t *testing.T) {
	clearVaultEnv(t)
	ctx := context.Background()
	srv := vaulttest.New(t, rootToken, "secret", "kv/team")
	c := newTokenClient(t, srv.URL, rootToken)

	// Write, read, version: the round trip replicas use to share data.
	v1, err := c.WriteKV(ctx, "secret", "/udap/clients/", map[string]any{"client_id": "abc", "n": 1})
	if err != nil || v1 != 1 {
		t.Fatalf("WriteKV = %d, %v; want version 1", v1, err)
	}
	v2, err := c.WriteKV(ctx, "secret/", "udap/clients", map[string]any{"client_id": "def"}, vault.CheckAndSet(1))
	if err != nil || v2 != 2 {
		t.Fatalf("WriteKV with CheckAndSet(1) = %d, %v; want version 2", v2, err)
	}
	s, err := c.ReadKV(ctx, "secret", "udap/clients")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || s.Data["client_id"] != "def" || s.CreatedTime.IsZero() || time.Since(s.CreatedTime) > time.Hour {
		t.Errorf("ReadKV = %+v %v", s, s.Data)
	}
	if v, err := c.KVVersion(ctx, "secret", "udap/clients"); err != nil || v != 2 {
		t.Errorf("KVVersion = %d, %v; want 2", v, err)
	}
	if old, _ := srv.Client(t).KVv2("secret").GetVersion(ctx, "udap/clients", 1); old.Data["n"] != json.Number("1") {
		t.Errorf("version 1 = %v, want n as json.Number 1", old.Data)
	}
	if _, err := c.WriteKV(ctx, "kv/team", "empty", nil); err != nil {
		t.Errorf("WriteKV with nil data: %v", err)
	}

	srv.Put("secret", "deleted", map[string]any{"k": "v"})
	if err := srv.Client(t).KVv2("secret").Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	wrong := newTokenClient(t, srv.URL, "hvs.wrong-token-must-not-leak")
	sealed := vaulttest.New(t, rootToken)
	sealed.SetDown(true)
	sealedClient := newTokenClient(t, sealed.URL, rootToken)

	tests := []struct {
		name       string
		run        func() error
		wantIs     error
		wantStatus int
		wantInErr  []string
	}{
		{name: "check-and-set conflict", run: func() error {
			_, err := c.WriteKV(ctx, "secret", "udap/clients", map[string]any{"client_id": "x"}, vault.CheckAndSet(1))
			return err
		}, wantStatus: 400, wantInErr: []string{"vault: writing secret at secret/data/udap/clients: ", "check-and-set parameter did not match"}},
		{name: "create-only on an existing secret", run: func() error {
			_, err := c.WriteKV(ctx, "secret", "udap/clients", map[string]any{"client_id": "x"}, vault.CheckAndSet(0))
			return err
		}, wantStatus: 400},
		{name: "missing secret", run: func() error { _, err := c.ReadKV(ctx, "secret", "nope"); return err },
			wantIs: vault.ErrSecretNotFound, wantInErr: []string{"vault: reading secret at secret/data/nope: "}},
		{name: "missing mount", run: func() error { _, err := c.ReadKV(ctx, "nomount", "x"); return err }, wantIs: api.ErrSecretNotFound},
		{name: "deleted", run: func() error { _, err := c.ReadKV(ctx, "secret", "deleted"); return err },
			wantIs: vault.ErrSecretDeleted, wantInErr: []string{"secret/data/deleted: version 1: the current version is deleted or destroyed"}},
		{name: "missing metadata", run: func() error { _, err := c.KVVersion(ctx, "secret", "nope"); return err },
			wantIs: vault.ErrSecretNotFound, wantInErr: []string{"vault: reading secret metadata at secret/metadata/nope: "}},
		{name: "wrong token reading", run: func() error { _, err := wrong.ReadKV(ctx, "secret", "udap/clients"); return err }, wantStatus: 403, wantInErr: []string{"permission denied"}},
		{name: "wrong token writing", run: func() error { _, err := wrong.WriteKV(ctx, "secret", "x", map[string]any{"a": "b"}); return err }, wantStatus: 403},
		{name: "wrong token versions", run: func() error { _, err := wrong.KVVersion(ctx, "secret", "udap/clients"); return err }, wantStatus: 403},
		{name: "sealed", run: func() error { _, err := sealedClient.ReadKV(ctx, "secret", "x"); return err }, wantStatus: 503, wantInErr: []string{"Vault is sealed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
			}
			var re *api.ResponseError
			if tc.wantStatus != 0 && (!errors.As(err, &re) || re.StatusCode != tc.wantStatus) {
				t.Errorf("err = %v, want *api.ResponseError %d", err, tc.wantStatus)
			}
			for _, s := range tc.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q\nwant it to contain %q", err, s)
				}
			}
			assertNoSecrets(t, "error", err.Error(), rootToken, "hvs.wrong-token-must-not-leak")
		})
	}
}

func TestResponseLimits(t *testing.T) {
	clearVaultEnv(t)
	ctx := context.Background()

	t.Run("body too large", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.Put("secret", "big", map[string]any{"blob": strings.Repeat("x", 4096)})
		srv.Put("secret", "small", map[string]any{"k": "v"})
		c := newTokenClient(t, srv.URL, rootToken, vault.WithMaxResponseBody(2048))
		if _, err := c.ReadKV(ctx, "secret", "big"); !errors.Is(err, vault.ErrResponseTooLarge) || !strings.Contains(err.Error(), "secret/data/big") {
			t.Errorf("ReadKV of a large secret err = %v, want ErrResponseTooLarge", err)
		}
		if _, err := c.ReadKV(ctx, "secret", "small"); err != nil {
			t.Errorf("ReadKV of a small secret: %v", err)
		}
	})

	t.Run("endless body", func(t *testing.T) {
		endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"data":{"data":{"blob":"`)
			chunk := []byte(strings.Repeat("y", 64<<10))
			for i := 0; i < 1024 && r.Context().Err() == nil; i++ { // up to 64 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		t.Cleanup(endless.Close)
		c := newTokenClient(t, endless.URL, rootToken)
		if _, err := c.ReadKV(ctx, "secret", "x"); !errors.Is(err, vault.ErrResponseTooLarge) {
			t.Errorf("err = %v, want ErrResponseTooLarge", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		t.Cleanup(slow.Close)
		c, err := vault.New(vault.Config{Address: slow.URL, Timeout: 50 * time.Millisecond, Auth: vault.AuthConfig{Token: rootToken}}, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadKV(ctx, "secret", "x"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestNilClient(t *testing.T) {
	var c *vault.Client
	if _, err := c.ReadKV(context.Background(), "secret", "x"); err == nil || !strings.Contains(err.Error(), "no Vault client configured") {
		t.Errorf("ReadKV on a nil client = %v", err)
	}
	if _, err := c.WriteKV(context.Background(), "secret", "x", nil); err == nil {
		t.Error("WriteKV on a nil client succeeded")
	}
	if _, err := c.KVVersion(context.Background(), "secret", "x"); err == nil {
		t.Error("KVVersion on a nil client succeeded")
	}
	if c.Status().LoggedIn || c.Ready() == nil {
		t.Error("a nil client is ready")
	}
}
