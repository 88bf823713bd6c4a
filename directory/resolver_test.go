package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// fetcherFunc adapts a function to Fetcher.
type fetcherFunc func(ctx context.Context, oid string) (*Organization, error)

func (f fetcherFunc) Organization(ctx context.Context, oid string) (*Organization, error) {
	return f(ctx, oid)
}

// directoryServer is an httptest R4 directory counting its requests.
// While gate is non-nil, requests wait for it to be closed.
type directoryServer struct {
	*httptest.Server
	requests atomic.Int64
	started  chan struct{} // receives once per request (buffered)
}

func newDirectoryServer(t *testing.T, gate <-chan struct{}) *directoryServer {
	t.Helper()
	ds := &directoryServer{started: make(chan struct{}, 100)}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds.requests.Add(1)
		ds.started <- struct{}{}
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		oid := r.URL.Path[len("/fhir/Organization/"):]
		fmt.Fprint(w, r4Body(oid))
	}))
	t.Cleanup(ds.Close)
	return ds
}

func (ds *directoryServer) client() *R4Client {
	return &R4Client{BaseURL: ds.URL + "/fhir", APIKey: testKey, HTTPClient: ds.Client()}
}

func TestResolverStatic(t *testing.T) {
	called := false
	fetcher := fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
		called = true
		return nil, errors.New("directory must not be asked")
	})
	static := &Organization{Name: "Configured Cerner", Active: true, Endpoints: []Endpoint{{Transaction: "FHIR REST", Address: "https://fhir.example.test/r4"}}}
	clock := newFakeClock()
	r := NewResolver(ResolverConfig{
		Fetcher: fetcher,
		Static: map[string]*Organization{
			"urn:oid:" + cernerOID: static,
			"not-an-oid":           {Name: "ignored"},
			"1.2.3":                nil,
		},
		Clock: clock.Now,
	})
	tests := []struct{ name, oid string }{
		{"bare OID", cernerOID},
		{"urn form", "urn:oid:" + cernerOID},
		{"upper-case urn form", "URN:OID:" + cernerOID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := r.Lookup(context.Background(), tt.oid)
			if err != nil {
				t.Fatal(err)
			}
			if e.Source != SourceStatic || e.Organization.Name != "Configured Cerner" || e.Organization.OID != cernerOID || !e.CachedAt.Equal(clock.Now()) {
				t.Errorf("Lookup = %+v (org %+v), want the static entry with OID filled in", e, e.Organization)
			}
		})
	}
	if called {
		t.Error("static lookup asked the directory")
	}
	if static.OID != "" {
		t.Error("NewResolver modified the caller's static Organization")
	}
}

func TestResolverErrors(t *testing.T) {
	boom := errors.New("directory: boom")
	tests := []struct {
		name    string
		cfg     ResolverConfig
		oid     string
		wantIs  error
		wantAny bool // any error will do
	}{
		{name: "invalid OID", cfg: ResolverConfig{}, oid: "1.2.x", wantIs: ErrInvalidOID},
		{name: "no fetcher", cfg: ResolverConfig{}, oid: cernerOID, wantIs: ErrNotFound},
		{
			name: "not in directory",
			cfg: ResolverConfig{Fetcher: fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, oid)
			})},
			oid:    cernerOID,
			wantIs: ErrNotFound,
		},
		{
			name: "fetch error",
			cfg: ResolverConfig{Fetcher: fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
				return nil, boom
			})},
			oid:    cernerOID,
			wantIs: boom,
		},
		{
			name: "fetcher returns another organization",
			cfg: ResolverConfig{Fetcher: fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
				return &Organization{OID: "1.2.3"}, nil
			})},
			oid:     cernerOID,
			wantAny: true,
		},
		{
			name: "fetcher returns nil",
			cfg: ResolverConfig{Fetcher: fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
				return nil, nil
			})},
			oid:     cernerOID,
			wantAny: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewResolver(tt.cfg).Lookup(context.Background(), tt.oid)
			if err == nil {
				t.Fatalf("Lookup = %+v, want error", e)
			}
			if !tt.wantAny && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if !strings.HasPrefix(err.Error(), "directory: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestResolverCacheTTL(t *testing.T) {
	ds := newDirectoryServer(t, nil)
	clock := newFakeClock()
	r := NewResolver(ResolverConfig{Fetcher: ds.client(), TTL: time.Hour, Clock: clock.Now})
	ctx := context.Background()

	steps := []struct {
		name         string
		advance      time.Duration
		forget       bool
		wantRequests int64
		wantCachedAt time.Duration // since the fake clock's start
	}{
		{name: "first lookup asks the directory", wantRequests: 1},
		{name: "within TTL is a cache hit", advance: 59 * time.Minute, wantRequests: 1},
		{name: "at TTL the entry has expired", advance: time.Minute, wantRequests: 2, wantCachedAt: time.Hour},
		{name: "cached again", advance: time.Second, wantRequests: 2, wantCachedAt: time.Hour},
		{name: "Forget drops the entry", forget: true, wantRequests: 3, wantCachedAt: time.Hour + time.Second},
	}
	start := clock.Now()
	for _, s := range steps {
		clock.Advance(s.advance)
		if s.forget {
			r.Forget("urn:oid:" + cernerOID)
		}
		e, err := r.Lookup(ctx, cernerOID)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := ds.requests.Load(); got != s.wantRequests {
			t.Errorf("%s: %d directory requests, want %d", s.name, got, s.wantRequests)
		}
		if e.Source != SourceDirectory || e.Organization.OID != cernerOID {
			t.Errorf("%s: entry %+v", s.name, e)
		}
		if want := start.Add(s.wantCachedAt); !e.CachedAt.Equal(want) {
			t.Errorf("%s: CachedAt = %v, want %v", s.name, e.CachedAt, want)
		}
	}
}

func TestResolverErrorsNotCached(t *testing.T) {
	var calls atomic.Int64
	fetcher := fetcherFunc(func(ctx context.Context, oid string) (*Organization, error) {
		if calls.Add(1) == 1 {
			return nil, &Error{URL: "https://d.example.test/fhir/Organization/" + oid, StatusCode: http.StatusServiceUnavailable}
		}
		return &Organization{OID: oid}, nil
	})
	r := NewResolver(ResolverConfig{Fetcher: fetcher})
	if _, err := r.Lookup(context.Background(), cernerOID); err == nil {
		t.Fatal("first lookup: want error")
	}
	if _, err := r.Lookup(context.Background(), cernerOID); err != nil {
		t.Fatalf("second lookup: %v", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
}

func TestResolverConcurrentLookupsShareOneRequest(t *testing.T) {
	gate := make(chan struct{})
	ds := newDirectoryServer(t, gate)
	r := NewResolver(ResolverConfig{Fetcher: ds.client()})

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := r.Lookup(context.Background(), cernerOID)
			if err == nil && e.Organization.OID != cernerOID {
				err = fmt.Errorf("got organization %q", e.Organization.OID)
			}
			errs <- err
		}()
	}
	<-ds.started // the shared request is in flight
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := ds.requests.Load(); got != 1 {
		t.Errorf("%d directory requests for %d concurrent lookups, want 1", got, n)
	}
}

func TestResolverLookupWithDoneContext(t *testing.T) {
	ds := newDirectoryServer(t, nil)
	r := NewResolver(ResolverConfig{Fetcher: ds.client()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Lookup(ctx, cernerOID); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if got := ds.requests.Load(); got != 0 {
		t.Errorf("%d directory requests for a done context, want 0", got)
	}
}

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}
