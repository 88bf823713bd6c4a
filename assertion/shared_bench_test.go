package assertion

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/redistest"
)

// BenchmarkCacheHitShared is BenchmarkCacheHit on a Cache with a shared
// tier: the L1 hit path must cost the same (it never touches Redis).
// Compare the two in one run:
//
//	go test -run '^$' -bench 'BenchmarkCacheHit' -count 6 ./assertion | benchstat -col /tier -
func BenchmarkCacheHitShared(b *testing.B) {
	srv := redistest.Start(b)
	cl, err := cluster.New(cluster.Config{Redis: cluster.RedisConfig{URL: srv.URL()}, EncryptionKey: clusterKey})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for _, tier := range []struct {
		name   string
		shared SharedTier
	}{{"l1-only", nil}, {"l1+redis", cl}} {
		b.Run("tier="+tier.name, func(b *testing.B) {
			c := NewCache(CacheConfig{Shared: tier.shared})
			defer c.Close()
			src := &countingSource{clock: clocktest.New(time.Now()), expiresIn: time.Hour}
			key := Request{TokenURL: "https://fhir-ehr.example.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/Authorization/token",
				ClientID: "gateway.example.org", Scope: "system/Patient.read system/Observation.read", B2B: fullB2B()}.Key()
			ctx := context.Background()
			if _, err := c.Token(ctx, key, src); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Token(ctx, key, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSharedL2Hit is a fresh replica's first request for a token
// context another replica has: an L1 miss answered from Redis (Load,
// open, decode). It reports the p50 and p99 of that first Token call and
// the bytes the sealed token takes in Redis.
func BenchmarkSharedL2Hit(b *testing.B) {
	srv := redistest.Start(b)
	cl, err := cluster.New(cluster.Config{Redis: cluster.RedisConfig{URL: srv.URL()}, EncryptionKey: clusterKey})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	src := &partnerSource{}
	warm := NewCache(CacheConfig{Shared: cl})
	defer warm.Close()
	key := Request{TokenURL: "https://fhir-ehr.example.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/Authorization/token",
		ClientID: "gateway.example.org", Scope: "system/Patient.read system/Observation.read", B2B: fullB2B()}.Key()
	if _, err := warm.Token(ctx, key, src); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		fresh := NewCache(CacheConfig{Shared: cl})
		start := time.Now()
		if _, err := fresh.Token(ctx, key, src); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		fresh.Close()
	}
	if n := src.n.Load(); n != 1 {
		b.Fatalf("%d exchanges; every fresh replica should have read Redis", n)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
	r := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer r.Close()
	n, err := r.StrLen(ctx, "cqgate:tok:"+cluster.Ref(key.String())).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n), "bytes/token")
}
