package metrics

import (
	"testing"
	"time"
)

// TestHotPathDoesNotAllocate pins the property BenchmarkObserveRequest
// shows: once an organization's series exist, recording allocates nothing.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := New()
	m.ObserveRequest(oidA, "GET", 200)
	m.ObserveUpstream(oidA, time.Millisecond)
	tests := []struct {
		name string
		f    func()
	}{
		{"ObserveRequest known org", func() { m.ObserveRequest(oidA, "GET", 200) }},
		{"ObserveRequest unresolved", func() { m.ObserveRequest("", "GET", 404) }},
		{"ObserveUpstream", func() { m.ObserveUpstream(oidA, 20*time.Millisecond) }},
		{"Inflight", func() { m.InflightInc(); m.InflightDec() }},
		{"TokenExchange", func() { m.TokenExchange(ExchangeSuccess) }},
		{"TokenCache", func() { m.TokenCache(CacheHit) }},
		{"DirectoryLookup", func() { m.DirectoryLookup(LookupHit) }},
		{"DiscoveryLookup", func() { m.DiscoveryLookup(LookupHit) }},
		{"VaultError", func() { m.VaultError(VaultTransitSign) }},
		{"SigningKeyReload", func() { m.SigningKeyReload(ReloadSuccess) }},
		{"AuditWriteError", func() { m.AuditWriteError() }},
		{"InflightRejected", func() { m.InflightRejected(RejectQueueFull) }},
	}
	for _, tt := range tests {
		tt.f() // create the series
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, n)
		}
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New()
	m.ObserveRequest(oidA, "GET", 200)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.ObserveRequest(oidA, "GET", 200)
	}
}

func BenchmarkObserveRequestParallel(b *testing.B) {
	m := New()
	m.ObserveRequest(oidA, "GET", 200)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(oidA, "GET", 200)
		}
	})
}

func BenchmarkObserveUpstream(b *testing.B) {
	m := New()
	m.ObserveUpstream(oidA, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveUpstream(oidA, 20*time.Millisecond)
	}
}
