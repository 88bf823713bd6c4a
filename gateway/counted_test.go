package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/tenant"
)

// Counting the directory's and discovery's lookups (metrics on, the
// default) keeps what their caches say about an answer being current:
// the Resolver vouches for the tenants it builds, and the Reuser keeps
// serving one past proxy.reuse_resolved for as long as its cached
// entries do not change, instead of resolving every organization again
// each time that expires (which, with thousands of organizations, was
// most requests).
func TestCountedLookupsKeepTenantsCurrent(t *testing.T) {
	srv := scale.NewServer()
	defer srv.Close()
	tests := []struct {
		name    string
		metrics *metrics.Metrics
	}{
		{"metrics off", nil},
		{"metrics on", metrics.New()},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.Resolver("k", tenant.Settings{ClientID: "c", Scope: "system/Patient.read"})
			dir := r.Directory.(*directory.Resolver)
			g := &Gateway{Metrics: tt.metrics, clock: time.Now}
			r.Directory, r.Discovery = g.counted(r.Directory, r.Discovery)
			now := time.Now()
			reuse := tenant.Reuse(r, time.Second, func() time.Time { return now })
			ctx := context.Background()
			oid := scale.OID(100 + i)

			t0, err := reuse.Resolve(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Current(t0) {
				t.Fatal("a tenant just resolved from cached entries is not current")
			}
			now = now.Add(time.Minute) // past proxy.reuse_resolved (1s here)
			t1, err := reuse.Resolve(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			if t1 != t0 {
				t.Error("the organization was resolved again once proxy.reuse_resolved passed, though its cached entries had not changed")
			}
			dir.Forget(oid)
			if r.Current(t0) {
				t.Error("still current after its directory entry was forgotten")
			}
			if tt.metrics == nil {
				return
			}
			if got := counterValue(t, tt.metrics, "cqgate_directory_lookups_total", "result", "miss"); got != 1 {
				t.Errorf("directory lookups counted as misses: %v, want 1", got)
			}
			if got := counterValue(t, tt.metrics, "cqgate_discovery_lookups_total", "result", "miss"); got != 1 {
				t.Errorf("discovery lookups counted as misses: %v, want 1", got)
			}
		})
	}
}
