package keys_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	h := keys.NewHolder(&keys.VaultKV{Client: vaultClient(t, srv, vaultToken), Path: "cqgate/signing"}, keys.HolderOptions{Logger: logger})
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

// versionedSource is a Versioner whose version, material and errors the
// test sets; it counts calls.
type versionedSource struct {
	mu         sync.Mutex
	version    string
	versionErr error
	m          *keys.Material
	err        error
	loads      int
	checks     int
}

func (s *versionedSource) Load(context.Context) (*keys.Material, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	return s.m, s.err
}

func (s *versionedSource) Version(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
	return s.version, s.versionErr
}

func (s *versionedSource) set(f func(s *versionedSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *versionedSource) counts() (loads, checks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads, s.checks
}

func TestHolderPoll(t *testing.T) {
	ctx := context.Background()
	v1, _ := material(t, "v1", t0.Add(-time.Hour), t0.Add(365*24*time.Hour))
	v2, _ := material(t, "v2", t0.Add(-time.Hour), t0.Add(365*24*time.Hour))
	expired, _ := material(t, "old", t0.Add(-48*time.Hour), t0.Add(-time.Hour))
	boom := errors.New("keys: reading secret at secret/data/x: connection refused")

	t.Run("versioner: loads only when the version changes", func(t *testing.T) {
		clock := clocktest.New(t0)
		src := &versionedSource{version: "a", m: v1}
		logger, hook := logtest.NewNullLogger()
		h := keys.NewHolder(src, keys.HolderOptions{Clock: clock.Now, Logger: logger})
		if st := h.Status(); st != (keys.Status{}) {
			t.Errorf("Status before any load = %+v", st)
		}
		steps := []struct {
			name      string
			set       func(*versionedSource)
			wantErr   error
			want      *keys.Material
			wantLoads int
			wantStat  keys.Status
		}{
			{name: "first", set: func(*versionedSource) {}, want: v1, wantLoads: 1,
				wantStat: keys.Status{Version: "v1", NotAfter: v1.NotAfter(), Reloads: 1}},
			{name: "unchanged", set: func(*versionedSource) {}, want: v1, wantLoads: 1,
				wantStat: keys.Status{Version: "v1", NotAfter: v1.NotAfter(), Reloads: 1}},
			{name: "new version fails", set: func(s *versionedSource) { s.version, s.m, s.err = "b", nil, boom }, wantErr: boom, want: v1, wantLoads: 2,
				wantStat: keys.Status{Version: "v1", NotAfter: v1.NotAfter(), Reloads: 1, Failures: 1, LastError: boom.Error(), LastErrorAt: t0}},
			{name: "same failing version is tried again", set: func(*versionedSource) {}, wantErr: boom, want: v1, wantLoads: 3,
				wantStat: keys.Status{Version: "v1", NotAfter: v1.NotAfter(), Reloads: 1, Failures: 2, LastError: boom.Error(), LastErrorAt: t0}},
			{name: "expired certificate refused", set: func(s *versionedSource) { s.version, s.m, s.err = "c", expired, nil }, wantErr: keys.ErrCertificateExpired, want: v1, wantLoads: 4},
			{name: "it loads", set: func(s *versionedSource) { s.m = v2 }, want: v2, wantLoads: 5},
			{name: "then stays", set: func(*versionedSource) {}, want: v2, wantLoads: 5},
		}
		for _, st := range steps {
			src.set(st.set)
			err := h.Poll(ctx)
			if st.wantErr == nil && err != nil || st.wantErr != nil && !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: Poll = %v, want %v", st.name, err, st.wantErr)
			}
			if h.Current() != st.want {
				t.Errorf("%s: Current = %v, want %v", st.name, h.Current(), st.want)
			}
			if loads, _ := src.counts(); loads != st.wantLoads {
				t.Errorf("%s: %d loads, want %d", st.name, loads, st.wantLoads)
			}
			if st.wantStat != (keys.Status{}) {
				got := h.Status()
				got.LoadedAt = time.Time{}
				if got != st.wantStat {
					t.Errorf("%s: Status = %+v\nwant %+v", st.name, got, st.wantStat)
				}
			}
		}
		if st := h.Status(); st.Failures != 0 || st.Reloads != 2 || st.Version != "v2" || !strings.Contains(st.LastError, "expired") {
			t.Errorf("final Status = %+v", st)
		}
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "expires soon") {
				t.Errorf("unexpected expiry warning for a certificate valid for a year: %s", entryText(e))
			}
		}
	})

	t.Run("not a versioner: loads every time, swaps only on change", func(t *testing.T) {
		src := &scriptedSource{results: []result{{m: v1}}}
		h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }})
		for range 3 {
			if err := h.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if src.Calls() != 3 || h.Current() != v1 || h.Status().Reloads != 1 {
			t.Errorf("calls %d, Current %v, Status %+v; want 3 loads, one swap", src.Calls(), h.Current(), h.Status())
		}
		// Equal material (same version and key) keeps the pointer in service.
		same := *v1
		src.mu.Lock()
		src.results = []result{{m: &same}}
		src.mu.Unlock()
		if m, err := h.Reload(ctx); err != nil || m != v1 || h.Current() != v1 {
			t.Errorf("Reload of equal material = %p, %v; want the current %p", m, err, v1)
		}
	})

	t.Run("failed version check falls back to full loads, warning once", func(t *testing.T) {
		src := &versionedSource{versionErr: errors.New("keys: vault: reading secret metadata at secret/metadata/x: permission denied"), m: v1}
		logger, hook := logtest.NewNullLogger()
		h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }, Logger: logger})
		for range 3 {
			if err := h.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if loads, checks := src.counts(); loads != 3 || checks != 3 {
			t.Errorf("loads %d, checks %d; want 3 each", loads, checks)
		}
		warned := 0
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "checking the signing material's version failed") {
				warned++
			}
		}
		if warned != 1 {
			t.Errorf("%d version-check warnings, want 1", warned)
		}
		src.set(func(s *versionedSource) { s.versionErr, s.version = nil, "a" })
		_ = h.Poll(ctx)
		_ = h.Poll(ctx)
		if loads, _ := src.counts(); loads != 4 {
			t.Errorf("after the version check recovered: %d loads, want 4", loads)
		}
	})

	t.Run("a source that was unreachable and answers again clears the failures", func(t *testing.T) {
		src := &versionedSource{version: "a", m: v1}
		logger, hook := logtest.NewNullLogger()
		h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }, Logger: logger})
		if err := h.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		src.set(func(s *versionedSource) { s.versionErr, s.err = boom, boom })
		for range 2 {
			if err := h.Poll(ctx); !errors.Is(err, boom) {
				t.Fatalf("Poll with the source down = %v", err)
			}
		}
		if st := h.Status(); st.Failures != 2 || h.Current() != v1 {
			t.Fatalf("with the source down: Status %+v, Current %v", st, h.Current())
		}
		src.set(func(s *versionedSource) { s.versionErr, s.err = nil, nil })
		if err := h.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		st := h.Status()
		if st.Failures != 0 || st.Reloads != 1 || st.Version != "v1" || st.LastError != boom.Error() || h.Current() != v1 {
			t.Errorf("after the source answers again: Status %+v, Current %v", st, h.Current())
		}
		if loads, _ := src.counts(); loads != 3 {
			t.Errorf("%d loads, want 3 (first, two failed; none once the version is the one in service)", loads)
		}
		if e := hook.LastEntry(); e == nil || e.Level != logrus.InfoLevel || !strings.Contains(e.Message, "answers again") || e.Data["failures"] != 2 {
			t.Errorf("recovery not logged: %v", e)
		}
		n := len(hook.AllEntries())
		if err := h.Poll(ctx); err != nil || len(hook.AllEntries()) != n {
			t.Errorf("a quiet poll after the recovery = %v, logged %d entries", err, len(hook.AllEntries())-n)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		src := &versionedSource{versionErr: context.Canceled, m: v1}
		h := keys.NewHolder(src, keys.HolderOptions{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := h.Poll(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Poll = %v, want context.Canceled", err)
		}
		if loads, _ := src.counts(); loads != 0 || h.Status().Failures != 0 {
			t.Errorf("a canceled Poll loaded (%d) or counted a failure (%+v)", loads, h.Status())
		}
	})
}

func TestHolderExpiryWarning(t *testing.T) {
	ctx := context.Background()
	soon, _ := material(t, "soon", t0.Add(-time.Hour), t0.Add(10*24*time.Hour))
	later, _ := material(t, "later", t0.Add(-time.Hour), t0.Add(60*24*time.Hour))
	warnings := func(hook *logtest.Hook) int {
		n := 0
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "expires soon") {
				n++
			}
		}
		return n
	}

	tests := []struct {
		name   string
		m      *keys.Material
		window time.Duration
		want   []int // warnings after load, a poll 1h later, a poll 25h later
	}{
		{name: "default window", m: soon, want: []int{1, 1, 2}},
		{name: "outside the window", m: later, want: []int{0, 0, 0}},
		{name: "wide window", m: later, window: 90 * 24 * time.Hour, want: []int{1, 1, 2}},
		{name: "turned off", m: soon, window: -1, want: []int{0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := clocktest.New(t0)
			logger, hook := logtest.NewNullLogger()
			src := &versionedSource{version: "v", m: tc.m}
			h := keys.NewHolder(src, keys.HolderOptions{Clock: clock.Now, Logger: logger, ExpiryWarning: tc.window})
			if _, err := h.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			got := []int{warnings(hook)}
			if e := hook.LastEntry(); e.Level != logrus.InfoLevel {
				t.Errorf("last entry after the load is %s %q, want the info entry", e.Level, e.Message)
			}
			for _, d := range []time.Duration{time.Hour, 24 * time.Hour} {
				clock.Advance(d)
				if err := h.Poll(ctx); err != nil {
					t.Fatal(err)
				}
				got = append(got, warnings(hook))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("warnings = %v, want %v", got, tc.want)
			}
			if tc.want[0] == 1 {
				var e *logrus.Entry
				for _, x := range hook.AllEntries() {
					if strings.Contains(x.Message, "expires soon") {
						e = x
						break
					}
				}
				if e.Data["not_after"] != tc.m.NotAfter().UTC().Format(time.RFC3339) || e.Data["expires_in"] == "" {
					t.Errorf("warning fields = %v", e.Data)
				}
			}
		})
	}
}

func TestHolderWatch(t *testing.T) {
	srv := vaulttest.New(t, vaultToken)
	put := func(data map[string]any) { srv.Put("secret", "cqgate/signing", data) }
	pair := func(kt string) map[string]any {
		certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: kt})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)}
	}
	put(pair(keys.KeyTypeECP256))
	h := keys.NewHolder(&keys.VaultKV{Client: vaultClient(t, srv, vaultToken), Path: "cqgate/signing"}, keys.HolderOptions{Logger: testLogger(t)})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Watch(ctx, 10*time.Millisecond) }()

	waitFor(t, "the first load (Watch polls at once when nothing is loaded)", func() bool { return h.Current() != nil })
	m1 := h.Current()
	if m1.Version != "kv:v1" {
		t.Fatalf("first material %v", m1)
	}

	put(pair(keys.KeyTypeECP384))
	waitFor(t, "Watch to load kv:v2", func() bool { return h.Current().Version == "kv:v2" })

	put(map[string]any{"certificate": "broken"})
	waitFor(t, "Watch to record the broken kv:v3", func() bool { return h.Status().Failures > 0 })
	if st := h.Status(); h.Current().Version != "kv:v2" || !strings.Contains(st.LastError, `field "private_key" is missing`) {
		t.Errorf("after a broken version: Current %v, Status %+v", h.Current(), st)
	}

	// Without metadata access, polls fall back to full loads and still work.
	srv.SetDenied("secret/metadata/", true)
	put(pair(keys.KeyTypeECP256))
	waitFor(t, "Watch to load kv:v4 without metadata access", func() bool { return h.Current().Version == "kv:v4" })
	if st := h.Status(); st.Failures != 0 || st.Reloads != 3 {
		t.Errorf("Status = %+v, want no current failure and 3 reloads", st)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestPEMFilesRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	write := func(kt string, mtime time.Time) {
		certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: kt})
		if err != nil {
			t.Fatal(err)
		}
		for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	src := &keys.PEMFiles{CertificateFile: certFile, PrivateKeyFile: keyFile}
	write(keys.KeyTypeECP256, t0)
	v1, err := src.Version(ctx)
	if err != nil || !strings.HasPrefix(v1, "files:") {
		t.Fatalf("Version = %q, %v", v1, err)
	}
	if again, _ := src.Version(ctx); again != v1 {
		t.Errorf("Version changed without a change: %q, %q", v1, again)
	}

	h := keys.NewHolder(src, keys.HolderOptions{Logger: testLogger(t)})
	if err := h.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	m1 := h.Current()
	if err := h.Poll(ctx); err != nil || h.Current() != m1 {
		t.Fatalf("Poll without a change: %v, %v", err, h.Current())
	}

	write(keys.KeyTypeECP384, t0.Add(time.Second))
	if v2, _ := src.Version(ctx); v2 == v1 {
		t.Errorf("Version did not change with the files")
	}
	if err := h.Poll(ctx); err != nil || h.Current() == m1 || h.Current().KeyID == m1.KeyID {
		t.Fatalf("Poll after rotating the files: %v, %v", err, h.Current())
	}

	// A half-done rotation (new certificate, old key) keeps the old material.
	m2 := h.Current()
	otherCert, _, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, otherCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(certFile, t0.Add(2*time.Second), t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := h.Poll(ctx); !errors.Is(err, keys.ErrKeyMismatch) || h.Current() != m2 {
		t.Errorf("Poll of a half rotation = %v, Current %v", err, h.Current())
	}

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Version(ctx); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("Version with a missing file: %v", err)
	}
	if _, err := (&keys.PEMFiles{}).Version(ctx); err == nil {
		t.Error("Version without files succeeded")
	}
}

// TestHolderOnReload: OnReload hears of every swap and every failed
// reload, and not of a reload that finds the material unchanged.
func TestHolderOnReload(t *testing.T) {
	v1, _ := material(t, "v1", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	v2, _ := material(t, "v2", t0.Add(-time.Hour), t0.Add(24*time.Hour))
	boom := errors.New("keys: vault unreachable")
	src := &scriptedSource{}
	var got []error
	h := keys.NewHolder(src, keys.HolderOptions{Clock: func() time.Time { return t0 }, OnReload: func(err error) { got = append(got, err) }})
	steps := []struct {
		src      result
		reported bool
		wantErr  error
	}{
		{src: result{m: v1}, reported: true},                    // first load: a swap
		{src: result{m: v1}},                                    // unchanged: not a reload
		{src: result{err: boom}, reported: true, wantErr: boom}, // failure
		{src: result{m: v2}, reported: true},                    // rotation
	}
	for i, st := range steps {
		src.mu.Lock()
		src.results, src.calls = []result{st.src}, 0
		src.mu.Unlock()
		before := len(got)
		_, _ = h.Reload(context.Background())
		switch {
		case !st.reported && len(got) != before:
			t.Errorf("step %d: reported %v, want nothing", i, got[before:])
		case st.reported && len(got) != before+1:
			t.Errorf("step %d: %d reports, want 1", i, len(got)-before)
		case st.reported && !errors.Is(got[before], st.wantErr): // errors.Is(nil, nil) holds
			t.Errorf("step %d: reported %v, want %v", i, got[before], st.wantErr)
		}
	}
}
