package scale_test

import (
	"fmt"
	"testing"

	"github.com/cqgate/cqgate/bench/scale"
)

// blob stands for a cached value (a tenant, a directory or discovery
// entry, a token): a few cache lines, pointing at one more allocation
// the lookup reads too (tenant -> resolution, entry -> result).
type blob struct {
	key  string
	next *blob
	pad  [480]byte
	n    int
}

// BenchmarkMapLookups is the synthetic counterpart of api
// BenchmarkHotPathOrgs' lookups: per operation, a random one of orgs
// organizations is looked up by OID in five maps of orgs values each
// (as a request asks the Reuser, the directory, the discovery results,
// the token cache and the rewriter), reading each value and the one it
// points at. Nothing else changes with orgs, so the difference between
// orgs=10 and orgs=10000 is what CPU-cache misses cost a request that
// does those lookups: compare it with HotPathOrgs' difference.
func BenchmarkMapLookups(b *testing.B) {
	const maps = 5
	for _, orgs := range []int{10, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			ms := make([]map[string]*blob, maps)
			for i := range ms {
				ms[i] = make(map[string]*blob)
			}
			// Interleaved allocation, as caches filled organization by
			// organization are.
			for n := range orgs {
				for i := range ms {
					k := scale.OID(n)
					ms[i][k] = &blob{key: k, next: &blob{n: n}}
				}
			}
			keys := make([]string, orgs)
			for n := range orgs {
				keys[n] = scale.OID(n)
			}
			picks := scale.Picks(orgs, 1<<14)
			mask := len(picks) - 1
			sum, i := 0, 0
			for b.Loop() {
				k := keys[picks[i&mask]]
				for _, m := range ms {
					v := m[k]
					sum += len(v.key) + v.next.n + int(v.pad[200])
				}
				i++
			}
			if sum < 0 {
				b.Fatal(sum)
			}
		})
	}
}
