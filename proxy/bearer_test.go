package proxy

import (
	"strconv"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
)

func TestBearersCacheTheHeaderValue(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	b := &bearers{now: func() time.Time { return now }}
	tok := &assertion.Token{AccessToken: "tok-a", Expiry: now.Add(time.Hour)}
	first := b.get(tok)
	if len(first) != 1 || first[0] != "Bearer tok-a" {
		t.Fatalf("get = %q, want [Bearer tok-a]", first)
	}
	if again := b.get(tok); &again[0] != &first[0] {
		t.Error("a second get built a new value")
	}
	if n := testing.AllocsPerRun(100, func() { b.get(tok) }); n != 0 {
		t.Errorf("a cached get allocates %.0f times", n)
	}
	other := &assertion.Token{AccessToken: "tok-b", Expiry: now.Add(time.Hour)}
	if v := b.get(other); v[0] != "Bearer tok-b" {
		t.Fatalf("get(other) = %q", v)
	}
	b.forget(tok)
	if b.len() != 1 {
		t.Fatalf("after forget: %d values, want 1", b.len())
	}
}

func TestBearersStayBounded(t *testing.T) {
	now := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	b := &bearers{now: func() time.Time { return now }}
	expired := &assertion.Token{AccessToken: "old", Expiry: now.Add(-time.Second)}
	b.get(expired)
	live := make([]*assertion.Token, maxBearers-1)
	for i := range live {
		live[i] = &assertion.Token{AccessToken: "t" + strconv.Itoa(i), Expiry: now.Add(time.Hour)}
		b.get(live[i])
	}
	if b.len() != maxBearers {
		t.Fatalf("%d values, want %d", b.len(), maxBearers)
	}
	// Full: the expired token's value goes, the live ones stay.
	b.get(&assertion.Token{AccessToken: "new", Expiry: now.Add(time.Hour)})
	if b.len() != maxBearers {
		t.Fatalf("after a sweep of one expired value: %d values, want %d", b.len(), maxBearers)
	}
	b.mu.RLock()
	_, kept := b.m[expired]
	b.mu.RUnlock()
	if kept {
		t.Error("the expired token's value was kept")
	}
	// Full of live tokens: emptied, then the new one added.
	b.get(&assertion.Token{AccessToken: "newer", Expiry: now.Add(time.Hour)})
	if b.len() != 1 {
		t.Fatalf("after a full map of live tokens: %d values, want 1", b.len())
	}
}
