package cluster

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/redistest"
)

// BenchmarkLoadHit is an L2 hit against redis-server on loopback: GET and
// AES-GCM open of a token of the given size. It reports the p50 and p99
// of single Loads and, for the stored value, its length (STRLEN) and what
// Redis spends on the key (MEMORY USAGE, key and overhead included).
//
//	go test -run '^$' -bench LoadHit -benchtime 2000x ./internal/cluster/
func BenchmarkLoadHit(b *testing.B) {
	srv := redistest.Start(b)
	c := replica(b, srv, nil)
	r := raw(b, srv)
	ctx := context.Background()
	for _, size := range []int{64, 1024, 2048} {
		b.Run(fmt.Sprintf("token=%dB", size), func(b *testing.B) {
			key := fmt.Sprintf("%s&size=%d", cacheKey, size)
			value := bytes.Repeat([]byte("t"), size)
			if err := c.Store(ctx, key, value, time.Now().Add(time.Hour)); err != nil {
				b.Fatal(err)
			}
			name := c.tokenName(Ref(key))
			strlen := r.StrLen(ctx, name).Val()
			mem := r.MemoryUsage(ctx, name).Val()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				v, _, ok, err := c.Load(ctx, key)
				lat = append(lat, time.Since(start))
				if err != nil || !ok || len(v) != size {
					b.Fatalf("Load: %v %v", ok, err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(strlen), "strlen-B")
			b.ReportMetric(float64(mem), "memory-usage-B")
		})
	}
}
