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
	return &R4Client{BaseURL: ds.URL + "/fhir", APIKey: testKey, HTTPClient: ds.Client(), Retry: noSleep}
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
			if e.Source != SourceStatic || e.Organization().Name != "Configured Cerner" || e.Organization().OID != cernerOID || !e.CachedAt.Equal(clock.Now()) {
				t.Errorf("Lookup = %+v (org %+v), want the static entry with OID filled in", e, e.Organization())
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
		if e.Source != SourceDirectory || e.Organization().OID != cernerOID {
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
			if err == nil && e.Organization().OID != cernerOID {
				err = fmt.Errorf("got organization %q", e.Organization().OID)
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

// switchDirectory is an httptest R4 directory whose answer can be
// switched between an organization and failures. It counts requests.
type switchDirectory struct {
	*httptest.Server
	mode     atomic.Value // "ok", "500", "403", "404", "drop", "garbage"
	requests atomic.Int64
}

func newSwitchDirectory(t *testing.T) *switchDirectory {
	t.Helper()
	sd := &switchDirectory{}
	sd.mode.Store("ok")
	sd.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sd.requests.Add(1)
		oid := r.URL.Path[len("/fhir/Organization/"):]
		switch sd.mode.Load().(string) {
		case "ok":
			fmt.Fprint(w, r4Body(oid))
		case "500":
			http.Error(w, "directory down, key "+testKey, http.StatusInternalServerError)
		case "403":
			http.Error(w, "key not allowed", http.StatusForbidden)
		case "404":
			http.Error(w, `{"resourceType":"OperationOutcome"}`, http.StatusNotFound)
		case "garbage":
			fmt.Fprint(w, "<html>maintenance</html>")
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}
	}))
	t.Cleanup(sd.Close)
	return sd
}

func (sd *switchDirectory) client() *R4Client {
	return &R4Client{BaseURL: sd.URL + "/fhir", APIKey: testKey, HTTPClient: sd.Client(), Retry: RetryPolicy{Attempts: 1}}
}

func TestResolverStaleIfError(t *testing.T) {
	sd := newSwitchDirectory(t)
	clock := newFakeClock()
	start := clock.Now()
	r := NewResolver(ResolverConfig{Fetcher: sd.client(), TTL: time.Hour, MaxStale: 24 * time.Hour, StaleRetry: time.Minute, Clock: clock.Now})
	ctx := context.Background()

	steps := []struct {
		name         string
		at           time.Duration // since start
		mode         string
		forget       bool
		wantStale    bool
		wantErr      bool
		wantRequests int64
		wantInReason string
	}{
		{name: "first lookup", at: 0, mode: "ok", wantRequests: 1},
		{name: "expired, directory 500: stale", at: 2 * time.Hour, mode: "500", wantStale: true, wantRequests: 2, wantInReason: "HTTP 500"},
		{name: "within StaleRetry: stale without asking", at: 2*time.Hour + 59*time.Second, mode: "500", wantStale: true, wantRequests: 2, wantInReason: "HTTP 500"},
		{name: "after StaleRetry: asks again, still stale", at: 2*time.Hour + time.Minute, mode: "500", wantStale: true, wantRequests: 3},
		{name: "Forget makes the next lookup ask", at: 2*time.Hour + 90*time.Second, mode: "500", forget: true, wantStale: true, wantRequests: 4},
		{name: "at the MaxStale limit: still stale", at: 25 * time.Hour, mode: "500", wantStale: true, wantRequests: 5},
		{name: "past MaxStale: the error", at: 25*time.Hour + 2*time.Minute, mode: "500", wantErr: true, wantRequests: 6},
		{name: "the directory is back", at: 26 * time.Hour, mode: "ok", wantRequests: 7},
		{name: "fresh again", at: 26*time.Hour + time.Minute, mode: "500", wantRequests: 7},
	}
	for _, s := range steps {
		clock.Set(start.Add(s.at))
		sd.mode.Store(s.mode)
		if s.forget {
			r.Forget(cernerOID)
		}
		e, err := r.Lookup(ctx, cernerOID)
		if got := sd.requests.Load(); got != s.wantRequests {
			t.Errorf("%s: %d requests, want %d", s.name, got, s.wantRequests)
		}
		if s.wantErr {
			var de *Error
			if !errors.As(err, &de) || de.StatusCode != 500 {
				t.Errorf("%s: Lookup = %+v, %v; want the *Error", s.name, e, err)
			} else {
				assertNoSecret(t, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if e.Stale != s.wantStale || e.Organization().OID != cernerOID || e.Source != SourceDirectory {
			t.Errorf("%s: entry %+v, want stale=%v", s.name, e, s.wantStale)
		}
		if s.wantStale {
			if !e.CachedAt.Equal(start) || e.StaleReason == "" || !strings.Contains(e.StaleReason, s.wantInReason) {
				t.Errorf("%s: CachedAt %v reason %q; want the first answer's time and a reason with %q", s.name, e.CachedAt, e.StaleReason, s.wantInReason)
			}
			assertNoKeyIn(t, "StaleReason", e.StaleReason)
		} else if e.StaleReason != "" {
			t.Errorf("%s: fresh entry with StaleReason %q", s.name, e.StaleReason)
		}
	}
}

func TestResolverStaleOnlyForDirectoryFailures(t *testing.T) {
	tests := []struct {
		mode      string
		wantStale bool
		wantIs    error
	}{
		{mode: "500", wantStale: true},
		{mode: "drop", wantStale: true},
		{mode: "403"},
		{mode: "garbage"},
		{mode: "404", wantIs: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			sd := newSwitchDirectory(t)
			clock := newFakeClock()
			r := NewResolver(ResolverConfig{Fetcher: sd.client(), Clock: clock.Now})
			if _, err := r.Lookup(context.Background(), cernerOID); err != nil {
				t.Fatal(err)
			}
			clock.Advance(DefaultTTL + time.Minute)
			sd.mode.Store(tt.mode)
			e, err := r.Lookup(context.Background(), cernerOID)
			if tt.wantStale {
				if err != nil || !e.Stale {
					t.Errorf("Lookup = %+v, %v; want a stale entry", e, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Lookup = %+v, want the error", e)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want %v", err, tt.wantIs)
			}
			if tt.mode == "404" {
				// Not found now: nothing stale is served later either.
				sd.mode.Store("500")
				clock.Advance(DefaultNegativeTTL)
				if e, err := r.Lookup(context.Background(), cernerOID); err == nil {
					t.Errorf("after a 404 and a 500: Lookup = %+v, want an error", e)
				}
			}
		})
	}
}

func TestResolverStaleDisabled(t *testing.T) {
	sd := newSwitchDirectory(t)
	clock := newFakeClock()
	r := NewResolver(ResolverConfig{Fetcher: sd.client(), MaxStale: -1, Clock: clock.Now})
	if _, err := r.Lookup(context.Background(), cernerOID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultTTL)
	sd.mode.Store("500")
	if e, err := r.Lookup(context.Background(), cernerOID); err == nil {
		t.Errorf("Lookup = %+v; want the error with MaxStale < 0", e)
	}
}

func TestResolverStaleAfterAPIKeySourceFailure(t *testing.T) {
	sd := newSwitchDirectory(t)
	clock := newFakeClock()
	var vaultDown atomic.Bool
	c := sd.client()
	c.APIKey = ""
	c.Key = APIKeyFunc(func(ctx context.Context) (string, error) {
		if vaultDown.Load() {
			return "", errors.New("vault: connection refused")
		}
		return testKey, nil
	})
	r := NewResolver(ResolverConfig{Fetcher: c, Clock: clock.Now})
	if _, err := r.Lookup(context.Background(), cernerOID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * DefaultTTL)
	vaultDown.Store(true)
	e, err := r.Lookup(context.Background(), cernerOID)
	if err != nil || !e.Stale || !strings.Contains(e.StaleReason, "vault: connection refused") {
		t.Errorf("Lookup = %+v, %v; want a stale entry saying why", e, err)
	}
}

func TestResolverNegativeCache(t *testing.T) {
	sd := newSwitchDirectory(t)
	sd.mode.Store("404")
	clock := newFakeClock()
	r := NewResolver(ResolverConfig{Fetcher: sd.client(), NegativeTTL: 5 * time.Minute, Clock: clock.Now})
	ctx := context.Background()

	steps := []struct {
		name         string
		advance      time.Duration
		mode         string
		forget       bool
		wantFound    bool
		wantRequests int64
	}{
		{name: "first lookup asks", mode: "404", wantRequests: 1},
		{name: "within NegativeTTL: no request", advance: 4*time.Minute + 59*time.Second, mode: "404", wantRequests: 1},
		{name: "still remembered although the directory knows it now", mode: "ok", wantRequests: 1},
		{name: "after NegativeTTL: one request", advance: time.Second, mode: "404", wantRequests: 2},
		{name: "remembered again", advance: time.Minute, mode: "ok", wantRequests: 2},
		{name: "Forget clears it", forget: true, mode: "ok", wantFound: true, wantRequests: 3},
		{name: "found is cached", mode: "404", wantFound: true, wantRequests: 3},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		sd.mode.Store(s.mode)
		if s.forget {
			r.Forget("urn:oid:" + cernerOID)
		}
		e, err := r.Lookup(ctx, cernerOID)
		if s.wantFound != (err == nil) {
			t.Errorf("%s: Lookup = %+v, %v", s.name, e, err)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: error %v, want ErrNotFound", s.name, err)
		}
		if got := sd.requests.Load(); got != s.wantRequests {
			t.Errorf("%s: %d requests, want %d", s.name, got, s.wantRequests)
		}
	}
}

func TestResolverNegativeCacheStorm(t *testing.T) {
	sd := newSwitchDirectory(t)
	sd.mode.Store("404")
	r := NewResolver(ResolverConfig{Fetcher: sd.client()})
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Lookup(context.Background(), "2.999.404"); !errors.Is(err, ErrNotFound) {
				t.Errorf("error %v", err)
			}
		}()
	}
	wg.Wait()
	// Concurrent lookups share requests and later ones hit the negative
	// cache: far fewer requests than lookups.
	if got := sd.requests.Load(); got < 1 || got > 10 {
		t.Errorf("%d directory requests for 200 lookups of an unknown OID", got)
	}
	before := sd.requests.Load()
	for range 50 {
		_, _ = r.Lookup(context.Background(), "urn:oid:2.999.404")
	}
	if got := sd.requests.Load(); got != before {
		t.Errorf("%d more requests within NegativeTTL", got-before)
	}
}

func TestResolverNegativeCacheDisabled(t *testing.T) {
	sd := newSwitchDirectory(t)
	sd.mode.Store("404")
	r := NewResolver(ResolverConfig{Fetcher: sd.client(), NegativeTTL: -1})
	for range 3 {
		_, _ = r.Lookup(context.Background(), cernerOID)
	}
	if got := sd.requests.Load(); got != 3 {
		t.Errorf("%d requests, want 3 with NegativeTTL < 0", got)
	}
}

func TestResolverInvalidOIDMakesNoRequest(t *testing.T) {
	sd := newSwitchDirectory(t)
	r := NewResolver(ResolverConfig{Fetcher: sd.client()})
	for _, oid := range []string{"", "urn:oid:", "1.2.x", "urn:oid: 1.2.3", "2." + strings.Repeat("1.", 499) + "1", "２.１"} {
		if _, err := r.Lookup(context.Background(), oid); !errors.Is(err, ErrInvalidOID) {
			t.Errorf("Lookup(%q) error %v, want ErrInvalidOID", oid, err)
		}
	}
	if got := sd.requests.Load(); got != 0 {
		t.Errorf("%d requests, want 0", got)
	}
}

func TestResolverStaticEntriesSayFHIRVersion(t *testing.T) {
	r := NewResolver(ResolverConfig{Static: map[string]*Organization{
		"1.2.3": {Endpoints: []Endpoint{{Transaction: "FHIR REST", Version: "4.0.1", Address: "https://f.test/r4"}, {ConnectionType: "hl7-fhir-rest", Address: "https://f.test/x"}}},
	}})
	e, err := r.Lookup(context.Background(), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{e.Organization().Endpoints[0].FHIRVersion, e.Organization().Endpoints[1].FHIRVersion}; got[0] != FHIRR4 || got[1] != "" {
		t.Errorf("FHIRVersion = %q", got)
	}
}

func TestStaleReasonIsOnePrintableLine(t *testing.T) {
	got := staleReason(errors.New("directory: GET x: boom\r\nInjected: header\x00" + strings.Repeat("é", 400)))
	if strings.ContainsAny(got, "\r\n\x00") || len(got) > maxStaleReason+3 || !strings.HasPrefix(got, "directory: GET x: boom  Injected: header ") {
		t.Errorf("staleReason = %q", got)
	}
}
