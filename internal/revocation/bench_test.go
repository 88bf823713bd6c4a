package revocation

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/pkitest"
)

// BenchmarkCheckCached is the per-request cost of checking a three-level
// chain whose answers are cached (the steady state).
func BenchmarkCheckCached(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := pkitest.New(b, pkitest.Options{Clock: func() time.Time { return now }})
	rc, err := New(Config{Client: &http.Client{}, Clock: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	chain := p.Chain(p.Issue(b, p.Intermediate, pkitest.CertOptions{}))
	if _, err := rc.Check(context.Background(), chain, Hard); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rc.Check(context.Background(), chain, Hard); err != nil {
			b.Fatal(err)
		}
	}
}
