package vault_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
)

// opRecorder records the ops an error observer is told of.
type opRecorder struct {
	mu  sync.Mutex
	ops []vault.Op
}

func (r *opRecorder) observe(op vault.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

func (r *opRecorder) take() []vault.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// TestErrorObserver: every failed operation is reported once with its
// op, and successful ones are not.
func TestErrorObserver(t *testing.T) {
	clearVaultEnv(t)
	ctx := context.Background()
	srv := vaulttest.New(t, rootToken, "secret")
	srv.AddTransitKey("transit", "ec", vaulttest.KeyTypeECDSAP256)
	rec := &opRecorder{}
	c := newTokenClient(t, srv.URL, rootToken, vault.WithErrorObserver(rec.observe))
	if _, err := c.WriteKV(ctx, "secret", "there", map[string]any{"a": "b"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		op   func() error
		want vault.Op // "" for a success
	}{
		{"kv read", func() error { _, err := c.ReadKV(ctx, "secret", "there"); return err }, ""},
		{"kv read missing", func() error { _, err := c.ReadKV(ctx, "secret", "missing"); return err }, vault.OpKVRead},
		{"kv metadata", func() error { _, err := c.KVVersion(ctx, "secret", "there"); return err }, ""},
		{"kv metadata missing", func() error { _, err := c.KVVersion(ctx, "secret", "missing"); return err }, vault.OpKVMetadata},
		{"kv write refused", func() error {
			_, err := c.WriteKV(ctx, "secret", "there", map[string]any{"a": "c"}, vault.CheckAndSet(7))
			return err
		}, vault.OpKVWrite},
		{"transit key", func() error { _, err := c.ReadTransitKey(ctx, "transit/keys/ec"); return err }, ""},
		{"transit key missing", func() error { _, _ = c.ReadTransitKey(ctx, "transit/keys/nope"); return nil }, vault.OpTransitKey},
		{"transit sign", func() error {
			_, err := c.TransitSign(ctx, "transit/sign/ec", map[string]any{"input": "aGk=", "marshaling_algorithm": "jws"})
			return err
		}, ""},
		{"transit sign unknown key", func() error {
			_, err := c.TransitSign(ctx, "transit/sign/nope", map[string]any{"input": "aGk="})
			return err
		}, vault.OpTransitSign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			got := rec.take()
			switch {
			case tt.want == "" && (err != nil || len(got) != 0):
				t.Errorf("err %v, reported %v; want a success, unreported", err, got)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Errorf("reported %v, want [%s]", got, tt.want)
			}
		})
	}

	t.Run("login", func(t *testing.T) {
		rec := &opRecorder{}
		bad := newTokenClient(t, srv.URL, "not-a-token", vault.WithErrorObserver(rec.observe), vault.WithLoginBackoff(time.Hour, time.Hour))
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); <-bad.Done() }()
		if err := bad.Start(ctx); err == nil {
			t.Fatal("a bad token logged in")
		}
		if got := rec.take(); len(got) != 1 || got[0] != vault.OpLogin {
			t.Errorf("reported %v, want [login]", got)
		}
	})
}
