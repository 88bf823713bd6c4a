package keys_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// scriptedSource returns its results in order, repeating the last one.
type scriptedSource struct {
	mu      sync.Mutex
	results []result
	calls   int
}

type result struct {
	m   *keys.Material
	err error
}

func (s *scriptedSource) Load(context.Context) (*keys.Material, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.results[min(s.calls, len(s.results)-1)]
	s.calls++
	return r.m, r.err
}

func (s *scriptedSource) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// material returns EC P-256 material valid from nb to na, and its key PEM.
func material(t *testing.T, version string, nb, na time.Time) (*keys.Material, []byte) {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{
		KeyType: keys.KeyTypeECP256, CommonName: "holder " + version, NotBefore: nb, NotAfter: na,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = version
	return m, keyPEM
}

func TestHolderReload(t *testing.T) {
	valid, validKey := material(t, "v1", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	next, nextKey := material(t, "v2", t0.Add(-time.Hour), t0.Add(48*time.Hour))
	expired, expiredKey := material(t, "old", t0.Add(-48*time.Hour), t0.Add(-time.Hour))
	future, futureKey := material(t, "future", t0.Add(time.Hour), t0.Add(48*time.Hour))
	mismatched := &keys.Material{Signer: next.Signer, Chain: valid.Chain, KeyID: valid.KeyID, Version: "mixed"}
	secrets := append(append(append(secretsOf(t, validKey), secretsOf(t, nextKey)...), secretsOf(t, expiredKey)...), secretsOf(t, futureKey)...)
	boom := errors.New("keys: reading secret at secret/data/x: connection refused")

	type step struct {
		src       result
		at        time.Time
		wantErrIs error
		wantInErr []string
		want      *keys.Material // Current after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "first load", steps: []step{{src: result{m: valid}, at: t0, want: valid}}},
		{name: "rotation", steps: []step{
			{src: result{m: valid}, at: t0, want: valid},
			{src: result{m: next}, at: t0, want: next},
		}},
		{name: "failed reload keeps old", steps: []step{
			{src: result{m: valid}, at: t0, want: valid},
			{src: result{err: boom}, at: t0, wantErrIs: boom, want: valid},
			{src: result{m: next}, at: t0, want: next},
		}},
		{name: "failure before first load leaves nothing", steps: []step{
			{src: result{err: boom}, at: t0, wantErrIs: boom, want: nil},
		}},
		{name: "expired refused", steps: []step{
			{src: result{m: valid}, at: t0, want: valid},
			{src: result{m: expired}, at: t0, wantErrIs: keys.ErrCertificateExpired, want: valid,
				wantInErr: []string{"NotAfter " + t0.Add(-time.Hour).Format(time.RFC3339), `"CN=holder old"`, "now " + t0.Format(time.RFC3339)}},
		}},
		{name: "expired refused on first load", steps: []step{
			{src: result{m: expired}, at: t0, wantErrIs: keys.ErrCertificateExpired, want: nil},
		}},
		{name: "not yet valid refused", steps: []step{
			{src: result{m: future}, at: t0, wantErrIs: keys.ErrCertificateNotYetValid, want: nil,
				wantInErr: []string{"NotBefore " + t0.Add(time.Hour).Format(time.RFC3339)}},
			{src: result{m: future}, at: t0.Add(2 * time.Hour), want: future}, // the clock moved on
		}},
		{name: "same material expires as the clock moves", steps: []step{
			{src: result{m: valid}, at: t0, want: valid},
			{src: result{m: valid}, at: t0.Add(24*time.Hour + time.Second), wantErrIs: keys.ErrCertificateExpired, want: valid},
		}},
		{name: "exactly at NotAfter is still valid", steps: []step{
			{src: result{m: valid}, at: t0.Add(24 * time.Hour), want: valid},
		}},
		{name: "nil material", steps: []step{
			{src: result{}, at: t0, wantInErr: []string{"returned no material"}, want: nil},
		}},
		{name: "signer does not match chain", steps: []step{
			{src: result{m: valid}, at: t0, want: valid},
			{src: result{m: mismatched}, at: t0, wantErrIs: keys.ErrKeyMismatch, want: valid},
		}},
		{name: "empty chain", steps: []step{
			{src: result{m: &keys.Material{Signer: valid.Signer, Version: "nochain"}}, at: t0, wantInErr: []string{"lacks a signer or a certificate chain"}, want: nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := &scriptedSource{}
			clock := clocktest.New(t0)
			logger, hook := logtest.NewNullLogger()
			h := keys.NewHolder(src, keys.HolderOptions{Clock: clock.Now, Logger: logger})
			if h.Current() != nil {
				t.Fatal("Current before any load is not nil")
			}
			for i, st := range tc.steps {
				src.mu.Lock()
				src.results = []result{st.src}
				src.calls = 0
				src.mu.Unlock()
				clock.Set(st.at)
				hook.Reset()
				got, err := h.Reload(context.Background())

				failed := st.wantErrIs != nil || st.wantInErr != nil
				if failed {
					if err == nil || got != nil {
						t.Fatalf("step %d: Reload = %v, %v; want nil and an error", i, got, err)
					}
					if st.wantErrIs != nil && !errors.Is(err, st.wantErrIs) {
						t.Errorf("step %d: err = %v, want errors.Is %v", i, err, st.wantErrIs)
					}
					for _, s := range st.wantInErr {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("step %d: err = %q\nwant it to contain %q", i, err, s)
						}
					}
					assertNoSecrets(t, "error", err.Error(), secrets...)
					e := hook.LastEntry()
					if e == nil || e.Level != logrus.WarnLevel || e.Data["error"] != err.Error() {
						t.Errorf("step %d: want a warn entry with the error, got %+v", i, e)
					} else if st.want != nil && e.Data["kept_version"] != st.want.Version {
						t.Errorf("step %d: warn entry kept_version = %v, want %s", i, e.Data["kept_version"], st.want.Version)
					}
				} else {
					if err != nil {
						t.Fatalf("step %d: Reload: %v", i, err)
					}
					if got != st.want {
						t.Errorf("step %d: Reload returned %v, want %v", i, got, st.want)
					}
					e := hook.LastEntry()
					wantNotAfter := st.want.NotAfter().UTC().Format(time.RFC3339)
					if e == nil || e.Level != logrus.InfoLevel || e.Data["version"] != st.want.Version || e.Data["not_after"] != wantNotAfter || e.Data["key_id"] != st.want.KeyID {
						t.Errorf("step %d: want an info entry with version %s and not_after %s, got %+v", i, st.want.Version, wantNotAfter, e)
					}
				}
				if cur := h.Current(); cur != st.want {
					t.Errorf("step %d: Current = %v, want %v", i, cur, st.want)
				}
				for _, e := range hook.AllEntries() {
					assertNoSecrets(t, "log entry", entryText(e), secrets...)
				}
			}
		})
	}
}

func TestHolderLoad(t *testing.T) {
	valid, _ := material(t, "v1", t0.Add(-time.Hour), t0.Add(time.Hour))
	src := &scriptedSource{results: []result{{m: valid}}}
	h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }})

	for i := range 3 {
		m, err := h.Load(context.Background())
		if err != nil || m != valid {
			t.Fatalf("Load #%d = %v, %v", i, m, err)
		}
	}
	if src.Calls() != 1 {
		t.Errorf("source loaded %d times, want once (then Current)", src.Calls())
	}

	failing := keys.NewHolder(&scriptedSource{results: []result{{err: errors.New("down")}}}, keys.HolderOptions{})
	if _, err := failing.Load(context.Background()); err == nil {
		t.Error("Load with a failing source and nothing current succeeded")
	}
	if s := fmt.Sprint(h); !strings.Contains(s, valid.KeyID) {
		t.Errorf("Holder String = %q, want the current key ID", s)
	}
	if s := fmt.Sprint(keys.NewHolder(nil, keys.HolderOptions{})); !strings.Contains(s, "<nil>") {
		t.Errorf("empty Holder String = %q", s)
	}
	if _, err := keys.NewHolder(nil, keys.HolderOptions{}).Reload(context.Background()); err == nil {
		t.Error("Reload without a source succeeded")
	}
}

// TestHolderConcurrent is for -race: readers use Current while reloads swap.
func TestHolderConcurrent(t *testing.T) {
	a, _ := material(t, "a", t0.Add(-time.Hour), t0.Add(time.Hour))
	b, _ := material(t, "b", t0.Add(-time.Hour), t0.Add(time.Hour))
	src := &scriptedSource{results: []result{{m: a}, {m: b}, {err: errors.New("flaky")}, {m: a}, {m: b}}}
	h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }})
	if _, err := h.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if m := h.Current(); m != a && m != b {
					t.Errorf("Current = %v", m)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 20 {
				_, _ = h.Reload(context.Background())
			}
		})
	}
	wg.Wait()
}

// TestHolderWithVault rotates and breaks Vault under a Holder.
func TestHolderWithVault(t *testing.T) {
	srv := vaulttest.New(t, vaultToken)
	put := func(kt string) (*keys.Material, []byte) {
		certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: kt})
		if err != nil {
			t.Fatal(err)
		}
		srv.Put("secret", "cqgate/signing", map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)})
		m, err := keys.ParsePEM(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return m, keyPEM
	}
	want1, key1 := put(keys.KeyTypeECP256)
	logger, hook := logtest.NewNullLogger()
	h := keys.NewHolder(&keys.VaultKV{Client: srv.Client(t), Path: "cqgate/signing"}, keys.HolderOptions{Logger: logger})
	m1, err := h.Reload(context.Background())
	if err != nil || m1.KeyID != want1.KeyID || m1.Version != "kv:v1" {
		t.Fatalf("Reload = %v, %v", m1, err)
	}

	srv.SetDown(true)
	if _, err := h.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Fatalf("Reload while sealed err = %v", err)
	}
	if h.Current() != m1 {
		t.Fatal("sealed Vault replaced the current material")
	}

	srv.SetDown(false)
	want2, key2 := put(keys.KeyTypeECP384)
	m2, err := h.Reload(context.Background())
	if err != nil || m2.KeyID != want2.KeyID || m2.Version != "kv:v2" || h.Current() != m2 {
		t.Fatalf("Reload after rotation = %v, %v", m2, err)
	}

	secrets := append(append(secretsOf(t, key1), secretsOf(t, key2)...), vaultToken)
	if len(hook.AllEntries()) != 3 {
		t.Errorf("got %d log entries, want 3 (info, warn, info)", len(hook.AllEntries()))
	}
	for _, e := range hook.AllEntries() {
		assertNoSecrets(t, "log entry", entryText(e), secrets...)
	}
}
