package directory

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// Current says "the same answer, still served fresh" until the answer
// is forgotten, replaced or expired; a static entry stays current.
func TestCurrent(t *testing.T) {
	const oid = "2.16.840.1.113883.3.1"
	tests := []struct {
		name   string
		static bool
		change func(r *Resolver, clock *clocktest.Clock)
		want   bool
	}{
		{"unchanged", false, func(*Resolver, *clocktest.Clock) {}, true},
		{"within the TTL", false, func(_ *Resolver, c *clocktest.Clock) { c.Advance(59 * time.Minute) }, true},
		{"expired", false, func(_ *Resolver, c *clocktest.Clock) { c.Advance(time.Hour) }, false},
		{"forgotten", false, func(r *Resolver, _ *clocktest.Clock) { r.Forget(oid) }, false},
		{"replaced", false, func(r *Resolver, _ *clocktest.Clock) {
			r.Forget(oid)
			if _, err := r.Lookup(context.Background(), oid); err != nil {
				panic(err)
			}
		}, false},
		{"static", true, func(_ *Resolver, c *clocktest.Clock) { c.Advance(48 * time.Hour) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
			cfg := ResolverConfig{Clock: clock.Now, TTL: time.Hour,
				Fetcher: fetcherFunc(func(_ context.Context, oid string) (*Organization, error) {
					return &Organization{OID: oid, Name: "Org"}, nil
				})}
			if tt.static {
				cfg.Static = map[string]*Organization{oid: {Name: "Static"}}
			}
			r := NewResolver(cfg)
			e, err := r.Lookup(context.Background(), oid)
			if err != nil {
				t.Fatal(err)
			}
			if r.Current(oid, NewEntry(&Organization{OID: oid}, SourceDirectory).Answer()) {
				t.Error("Current took an organization that is not the cached one")
			}
			tt.change(r, clock)
			if got := r.Current(oid, e.Answer()); got != tt.want {
				t.Errorf("Current = %v, want %v", got, tt.want)
			}
			if got := testing.AllocsPerRun(100, func() { r.Current(oid, e.Answer()) }); got != 0 {
				t.Errorf("Current allocates %v times", got)
			}
		})
	}
}

// An answer stops being current when a refresh of it fails (it is then
// served stale only) or the directory no longer knows it, and the answer
// fetched after stays current: the cache marks the record it drops, for
// good.
func TestCurrentAfterFailedOrRefusedRefresh(t *testing.T) {
	const oid = "2.16.840.1.113883.3.2"
	tests := []struct {
		name string
		err  error
	}{
		{"refresh failed", &Error{StatusCode: 503, Err: errors.New("unavailable")}},
		{"not found any more", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
			var fail atomic.Bool
			r := NewResolver(ResolverConfig{Clock: clock.Now, TTL: time.Hour, StaleRetry: -1, NegativeTTL: -1,
				Fetcher: fetcherFunc(func(_ context.Context, oid string) (*Organization, error) {
					if fail.Load() {
						return nil, tt.err
					}
					return &Organization{OID: oid, Name: "Org"}, nil
				})})
			ctx := context.Background()
			e, err := r.Lookup(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Hour) // expired: the next Lookup refreshes
			fail.Store(true)
			_, _ = r.Lookup(ctx, oid) // stale, or not found
			if r.Current(oid, e.Answer()) {
				t.Error("the answer is current after its refresh failed")
			}
			fail.Store(false)
			e2, err := r.Lookup(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Current(oid, e2.Answer()) {
				t.Error("the answer fetched after is not current")
			}
			if r.Current(oid, e.Answer()) {
				t.Error("the old answer is current again")
			}
		})
	}
}
