package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/tenant"
)

// A tenant resolved through the real directory and discovery caches is
// current until one of the cached entries it was built from changes;
// the check allocates nothing; Derived values are built once per
// resolved tenant and shared with its copies.
func TestResolverCurrent(t *testing.T) {
	srv := scale.NewServer()
	defer srv.Close()
	dir := directory.NewResolver(directory.ResolverConfig{
		Fetcher: &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "k", HTTPClient: srv.Client()},
	})
	disc := discovery.New(discovery.Config{HTTPClient: srv.Client()})
	r := &tenant.Resolver{Directory: dir, Discovery: disc, Defaults: tenant.Settings{ClientID: "c", Scope: "system/Patient.read"}}
	ctx := context.Background()
	oid := scale.OID(7)

	tests := []struct {
		name   string
		change func(t0 *tenant.Tenant)
		want   bool
	}{
		{"unchanged", func(*tenant.Tenant) {}, true},
		{"directory entry forgotten", func(*tenant.Tenant) { dir.Forget(oid) }, false},
		{"discovery result forgotten", func(t0 *tenant.Tenant) { disc.Forget(t0.FHIRBase) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0, err := r.Resolve(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Current(t0) {
				t.Fatal("a tenant just resolved from cached entries is not current")
			}
			if got := testing.AllocsPerRun(100, func() { r.Current(t0) }); got != 0 {
				t.Errorf("Current allocates %v times", got)
			}
			tt.change(t0)
			if got := r.Current(t0); got != tt.want {
				t.Errorf("Current = %v, want %v", got, tt.want)
			}
			t1, err := r.Resolve(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Current(t1) {
				t.Error("the tenant resolved again is not current")
			}
		})
	}
	t.Run("a tenant not made by a Resolver is never current", func(t *testing.T) {
		if r.Current(&tenant.Tenant{OID: oid}) {
			t.Error("current")
		}
	})
	t.Run("derived values", func(t *testing.T) {
		t0, err := r.Resolve(ctx, oid)
		if err != nil {
			t.Fatal(err)
		}
		builds := 0
		build := func() (any, error) { builds++; return new(int), nil }
		k := tenant.DerivedKey{Kind: "test", A: "https", B: "gw.example"}
		v1, _ := t0.Derived(k, build)
		v2, _ := t0.WithScope("system/Observation.read").Derived(k, build)
		if v1 != v2 || builds != 1 {
			t.Errorf("built %d times, shared %v; want once, shared", builds, v1 == v2)
		}
		for i := range 5 { // more keys than kept: the oldest is replaced
			_, _ = t0.Derived(tenant.DerivedKey{Kind: "test", A: "https", B: string(rune('a' + i))}, build)
		}
		if _, _ = t0.Derived(k, build); builds != 7 {
			t.Errorf("%d builds, want 7 (the first key replaced)", builds)
		}
		if got := testing.AllocsPerRun(100, func() { _, _ = t0.Derived(tenant.DerivedKey{Kind: "test", A: "https", B: "e"}, build) }); got != 0 {
			t.Errorf("a kept value's lookup allocates %v times", got)
		}
	})
}

// Reused is true of the very tenant a Reuser keeps, and of nothing
// else: not a copy of it, not a tenant resolved without a Reuser.
func TestReused(t *testing.T) {
	srv := scale.NewServer()
	defer srv.Close()
	r := srv.Resolver("k", tenant.Settings{ClientID: "c", Scope: "system/Patient.read"})
	ctx := context.Background()
	oid := scale.OID(3)
	direct, err := r.Resolve(ctx, oid)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := tenant.Reuse(r, time.Second, nil).Resolve(ctx, oid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		t    *tenant.Tenant
		want bool
	}{
		{"kept by a Reuser", kept, true},
		{"a copy with another scope", kept.WithScope("system/Observation.read"), false},
		{"resolved without a Reuser", direct, false},
		{"not made by a Resolver", &tenant.Tenant{OID: oid}, false},
	} {
		if got := tt.t.Reused(); got != tt.want {
			t.Errorf("%s: Reused = %v, want %v", tt.name, got, tt.want)
		}
	}
}
