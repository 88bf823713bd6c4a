package tenant

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// countingSource resolves every OID to a new tenant and counts calls.
type countingSource struct {
	calls atomic.Int64
	fail  error
}

func (s *countingSource) Resolve(_ context.Context, oid string) (*Tenant, error) {
	s.calls.Add(1)
	if s.fail != nil {
		return nil, s.fail
	}
	return &Tenant{OID: oid}, nil
}

func TestReuser(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	type step struct {
		advance   time.Duration
		oid       string
		fail      error
		forget    bool
		wantCalls int64 // total calls to the source after the step
		wantSame  bool  // the tenant is the one the previous step got
	}
	tests := []struct {
		name  string
		ttl   time.Duration
		steps []step
	}{
		{"reused within the TTL", time.Second, []step{
			{oid: "1.2.3", wantCalls: 1},
			{advance: 999 * time.Millisecond, oid: "1.2.3", wantCalls: 1, wantSame: true},
		}},
		{"asked again once the TTL has passed", time.Second, []step{
			{oid: "1.2.3", wantCalls: 1},
			{advance: time.Second, oid: "1.2.3", wantCalls: 2},
			{oid: "1.2.3", wantCalls: 2, wantSame: true},
		}},
		{"each OID on its own", time.Second, []step{
			{oid: "1.2.3", wantCalls: 1},
			{oid: "1.2.4", wantCalls: 2},
			{oid: "1.2.4", wantCalls: 2, wantSame: true},
		}},
		{"failures are not reused", time.Second, []step{
			{oid: "1.2.3", fail: errors.New("directory down"), wantCalls: 1},
			{oid: "1.2.3", fail: errors.New("directory down"), wantCalls: 2},
			{oid: "1.2.3", wantCalls: 3},
			{oid: "1.2.3", wantCalls: 3, wantSame: true},
		}},
		{"forget asks again", time.Second, []step{
			{oid: "1.2.3", wantCalls: 1},
			{oid: "1.2.3", forget: true, wantCalls: 2},
		}},
		{"a zero TTL turns reuse off", 0, []step{
			{oid: "1.2.3", wantCalls: 1},
			{oid: "1.2.3", wantCalls: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(t0)
			src := &countingSource{}
			r := Reuse(src, tt.ttl, clock.Now)
			var prev *Tenant
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.forget {
					r.Forget(s.oid)
				}
				src.fail = s.fail
				got, err := r.Resolve(context.Background(), s.oid)
				if (err != nil) != (s.fail != nil) {
					t.Fatalf("step %d: error %v, want failure %v", i, err, s.fail)
				}
				if n := src.calls.Load(); n != s.wantCalls {
					t.Errorf("step %d: %d calls to the source, want %d", i, n, s.wantCalls)
				}
				if s.wantSame && got != prev {
					t.Errorf("step %d: got a different tenant, want the reused one", i)
				}
				if err == nil && got.OID != s.oid {
					t.Errorf("step %d: tenant %s, want %s", i, got.OID, s.oid)
				}
				prev = got
			}
		})
	}
}

// Organizations no longer asked for do not stay in memory.
func TestReuserSweepsExpiredEntries(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC))
	r := Reuse(&countingSource{}, time.Second, clock.Now)
	for _, oid := range []string{"1.2.1", "1.2.2", "1.2.3"} {
		if _, err := r.Resolve(context.Background(), oid); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Len(); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	clock.Advance(sweepEvery + time.Second)
	if _, err := r.Resolve(context.Background(), "1.2.9"); err != nil {
		t.Fatal(err)
	}
	if n := r.Len(); n != 1 {
		t.Errorf("%d entries after the sweep, want only the fresh one", n)
	}
}

func TestReuserConcurrent(t *testing.T) {
	src := &countingSource{}
	r := Reuse(src, time.Hour, nil)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				oid := []string{"1.2.1", "1.2.2"}[i%2]
				if got, err := r.Resolve(context.Background(), oid); err != nil || got.OID != oid {
					t.Errorf("Resolve(%s) = %v, %v", oid, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Concurrent first calls may each ask; afterwards none do.
	if n := src.calls.Load(); n > 32 {
		t.Errorf("%d calls to the source for 2 OIDs", n)
	}
}

// The OIDs kept (the key and the tenant's OID) are copies: the one asked
// for may be a slice of a caller's request line, query included, which
// must not stay in memory for as long as the tenant is reused.
func TestReuserKeepsNoSliceOfTheRequest(t *testing.T) {
	line := "GET /fhir/1.2.3/Patient?name=Peters HTTP/1.1"
	oid := line[len("GET /fhir/") : len("GET /fhir/")+len("1.2.3")]
	r := Reuse(&Resolver{Directory: stubDir{"1.2.3": org("1.2.3", fhirEP)}, Discovery: &stubDisc{}}, time.Hour, nil)
	tn, err := r.Resolve(context.Background(), oid)
	if err != nil {
		t.Fatal(err)
	}
	within := func(s string) bool {
		p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(line)))
		return p >= start && p < start+uintptr(len(line))
	}
	if within(tn.OID) {
		t.Error("the tenant's OID is a slice of the request line")
	}
	r.items.Range(func(k string) bool {
		if within(k) {
			t.Error("the Reuser's key is a slice of the request line")
		}
		return true
	})
}

// slowSource resolves after gate closes, counting calls.
type slowSource struct {
	calls atomic.Int64
	gate  chan struct{}
}

func (s *slowSource) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	s.calls.Add(1)
	<-s.gate
	return &Tenant{OID: oid}, nil
}

// Issue 18: a thousand requests for an organization not resolved yet
// share one resolution; a caller that gives up does not fail the others.
func TestReuserOneResolveForManyWaiters(t *testing.T) {
	src := &slowSource{gate: make(chan struct{})}
	r := Reuse(src, time.Minute, nil)
	const n = 1000
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tn, err := r.Resolve(context.Background(), "1.2.3"); err != nil || tn.OID != "1.2.3" {
				bad.Add(1)
			}
		}()
	}
	for src.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A caller that gives up while the resolution runs returns at once.
	impatient, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Resolve(impatient, "1.2.3"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller that gave up: err = %v, want its deadline", err)
	}
	close(src.gate)
	wg.Wait()
	if c := src.calls.Load(); c != 1 {
		t.Errorf("%d resolutions for %d concurrent callers, want 1", c, n)
	}
	if b := bad.Load(); b != 0 {
		t.Errorf("%d callers without the tenant", b)
	}
}

// checkedSource is a countingSource that vouches for the tenants it
// resolved while current is true.
type checkedSource struct {
	countingSource
	current atomic.Bool
}

func (s *checkedSource) Current(*Tenant) bool { return s.current.Load() }

// A tenant its Source vouches for is reused beyond the TTL while its
// sources are current, resolved again once they are not, and swept when
// no longer reusable.
func TestReuserKeepsCurrentTenants(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		current   bool
		advance   time.Duration
		wantCalls int64
	}{
		{"current: reused past the TTL", time.Second, true, time.Hour, 1},
		{"not current: the TTL still applies", time.Second, false, 999 * time.Millisecond, 1},
		{"not current past the TTL: resolved again", time.Second, false, time.Second, 2},
		{"a zero TTL: current still reused", 0, true, time.Hour, 1},
		{"a zero TTL: not current resolved every time", 0, false, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
			src := &checkedSource{}
			src.current.Store(tt.current)
			r := Reuse(src, tt.ttl, clock.Now)
			first, err := r.Resolve(context.Background(), "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			got, err := r.Resolve(context.Background(), "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if n := src.calls.Load(); n != tt.wantCalls {
				t.Errorf("%d calls to the source, want %d", n, tt.wantCalls)
			}
			if (got == first) != (tt.wantCalls == 1) {
				t.Errorf("reused %v, want %v", got == first, tt.wantCalls == 1)
			}
		})
	}
	t.Run("swept once no longer current", func(t *testing.T) {
		clock := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
		src := &checkedSource{}
		src.current.Store(true)
		r := Reuse(src, time.Second, clock.Now)
		for _, oid := range []string{"1.2.1", "1.2.2"} {
			if _, err := r.Resolve(context.Background(), oid); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(sweepEvery + time.Second)
		if _, err := r.Resolve(context.Background(), "1.2.8"); err != nil {
			t.Fatal(err)
		}
		if n := r.Len(); n != 3 {
			t.Fatalf("%d tenants kept while current, want 3", n)
		}
		src.current.Store(false)
		clock.Advance(sweepEvery + time.Second)
		if _, err := r.Resolve(context.Background(), "1.2.9"); err != nil {
			t.Fatal(err)
		}
		if n := r.Len(); n != 1 {
			t.Fatalf("%d tenants kept, want 1 (the others are no longer current)", n)
		}
	})
}
