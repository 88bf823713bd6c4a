package discovery

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// Current says "the same result, still served as it is" until the
// result is forgotten, replaced, due for a refresh ahead of expiry, or
// expired; Version refuses a result that is not the cached one.
func TestCurrent(t *testing.T) {
	tests := []struct {
		name   string
		change func(d *Discoverer, clock *clocktest.Clock, base string)
		want   bool
	}{
		{"unchanged", func(*Discoverer, *clocktest.Clock, string) {}, true},
		{"within the TTL", func(_ *Discoverer, c *clocktest.Clock, _ string) { c.Advance(30 * time.Minute) }, true},
		{"in the refresh-ahead window", func(_ *Discoverer, c *clocktest.Clock, _ string) { c.Advance(59 * time.Minute) }, false},
		{"expired", func(_ *Discoverer, c *clocktest.Clock, _ string) { c.Advance(2 * time.Hour) }, false},
		{"forgotten", func(d *Discoverer, _ *clocktest.Clock, base string) { d.Forget(base) }, false},
		{"forgotten and discovered again", func(d *Discoverer, c *clocktest.Clock, base string) {
			d.Forget(base)
			c.Advance(time.Second)
			if _, err := d.Discover(context.Background(), Request{FHIRBase: base, Order: []Source{SourceSMARTConfiguration}}); err != nil {
				panic(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			f.set(docNameSMART, 0, smartConfig(urlSMART, "RS384"))
			clock := newFakeClock()
			d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: time.Hour, RefreshAhead: 5 * time.Minute})
			req := Request{FHIRBase: f.base() + "/", Order: []Source{SourceSMARTConfiguration}}
			res, err := d.Discover(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			key, ok := d.Key(req)
			if !ok {
				t.Fatal("no key")
			}
			version, ok := d.Version(key, res)
			if !ok {
				t.Fatal("Version: the result Discover returned is not the cached one")
			}
			other := *res
			other.TokenURL = "https://elsewhere.example/token"
			if _, ok := d.Version(key, &other); ok {
				t.Error("Version took a result that is not the cached one")
			}
			if d.Current(Cached{}) {
				t.Error("the zero Cached is current")
			}
			tt.change(d, clock, f.base())
			if got := d.Current(version); got != tt.want {
				t.Errorf("Current = %v, want %v", got, tt.want)
			}
			if got := testing.AllocsPerRun(100, func() { d.Current(version) }); got != 0 {
				t.Errorf("Current allocates %v times", got)
			}
		})
	}
}

// In the refresh-ahead window a result is current only while its next
// refresh is not due (a failed one backs off); a refresh that works
// replaces it, and the replaced result is never current again.
func TestCurrentThroughRefreshAhead(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: time.Minute})
	done := refreshHook(d)
	req := Request{FHIRBase: f.base(), Order: []Source{SourceCarequalityToken}}
	version := func() Cached {
		t.Helper()
		res := mustDiscover(t, d, req)
		key, _ := d.Key(req)
		v, ok := d.Version(key, res)
		if !ok {
			t.Fatal("Version: the result Discover returned is not the cached one")
		}
		return v
	}
	v1 := version()

	f.set(docNameMetadata, http.StatusBadGateway, "")
	clock.Advance(9*time.Minute + 30*time.Second)
	if d.Current(v1) {
		t.Error("current in the refresh-ahead window, before any refresh")
	}
	mustDiscover(t, d, req) // starts the refresh, which fails
	if err := waitRefresh(t, done); err == nil {
		t.Fatal("the refresh did not fail")
	}
	if !d.Current(v1) {
		t.Error("not current while the failed refresh backs off")
	}
	clock.Advance(10 * time.Second) // past the backoff
	if d.Current(v1) {
		t.Error("current once the next refresh is due")
	}

	f.set(docNameMetadata, 0, cqDoc(cqB))
	mustDiscover(t, d, req)
	if err := waitRefresh(t, done); err != nil {
		t.Fatal(err)
	}
	v2 := version()
	if d.Current(v1) || !d.Current(v2) {
		t.Errorf("after the refresh: replaced result current %v, new one %v; want false, true", d.Current(v1), d.Current(v2))
	}
}
