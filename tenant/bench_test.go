package tenant_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/tenant"
)

// Benchmarks of resolving an OID to a tenant with warm caches, at 10,
// 1,000 and 10,000 cached organizations, through the package's public
// API only. The caches are the real ones, wired as gateway.New wires
// them, and filled through the real directory and discovery clients from
// a loopback server (bench/scale) that synthesizes a realistic R4
// Organization and CapabilityStatement for every OID 2.999.<n>. Each
// sub-benchmark also reports the live heap the caches hold per
// organization (B/org, from 1,000 organizations on).

// warmResolver is a tenant.Resolver over fresh directory and discovery
// caches filled with orgs organizations, and the per-organization heap
// that took.
func warmResolver(b *testing.B, srv *scale.Server, orgs int, resolve func(*tenant.Resolver) tenant.Source) (tenant.Source, float64) {
	b.Helper()
	r := srv.Resolver("scale-directory-key", tenant.Settings{ClientID: "gateway.scale.example", Scope: "system/Patient.read system/Observation.read"})
	src := resolve(r)
	perOrg, err := srv.FillCaches(context.Background(), orgs, func(ctx context.Context, n int) error {
		t, err := src.Resolve(ctx, scale.OID(n))
		if err == nil && (t.TokenURL != scale.CarequalityTokenURL(n) || t.FHIRBase != scale.FHIRBase(n)) {
			err = fmt.Errorf("%s resolved to %s, %s", t.OID, t.FHIRBase, t.TokenURL)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return src, perOrg
}

// benchResolve resolves a random cached organization per iteration.
func benchResolve(b *testing.B, resolve func(*tenant.Resolver) tenant.Source) {
	for _, orgs := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			srv := scale.NewServer()
			defer srv.Close()
			src, perOrg := warmResolver(b, srv, orgs, resolve)
			picks := scale.Picks(orgs, 1<<14)
			oids := make([]string, len(picks))
			for i, n := range picks {
				oids[i] = scale.OID(n)
			}
			mask := len(oids) - 1
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := src.Resolve(ctx, oids[i&mask]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.StopTimer()
			if dir, meta, other := srv.Counts(); dir != int64(orgs)+1 || meta != int64(orgs)+1 || other != 0 {
				b.Fatalf("%d directory reads, %d metadata reads, %d other requests for %d organizations: the lookups were not all warm", dir, meta, other, orgs+1)
			}
			if orgs >= 1000 {
				b.ReportMetric(perOrg, "B/org")
			}
			runtime.KeepAlive(src)
		})
	}
}

// BenchmarkResolveWarm is Resolver.Resolve of a random cached
// organization: a directory cache hit, the FHIR endpoint choice and URL
// checks, a discovery cache hit. Its cost should not grow with the
// number of organizations cached.
func BenchmarkResolveWarm(b *testing.B) {
	benchResolve(b, func(r *tenant.Resolver) tenant.Source { return r })
}

// BenchmarkReuseWarm is the same through a tenant.Reuser, as FHIR
// requests resolve (proxy.reuse_resolved). Its TTL is an hour here so
// that every lookup reuses, as it does for organizations whose requests
// keep coming; B/org includes the reused tenants.
func BenchmarkReuseWarm(b *testing.B) {
	benchResolve(b, func(r *tenant.Resolver) tenant.Source { return tenant.Reuse(r, time.Hour, nil) })
}
