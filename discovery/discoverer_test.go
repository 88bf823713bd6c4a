package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

const basePath = "/r4/" + tenant

// fhirServer serves a CapabilityStatement at basePath/metadata, counting
// requests and recording request-shape problems. While gate is non-nil,
// requests wait for it to be closed.
type fhirServer struct {
	*httptest.Server
	requests atomic.Int64
	started  chan struct{} // receives once per request (buffered)

	mu       sync.Mutex
	problems []string
}

func newFHIRServer(t *testing.T, body string, gate <-chan struct{}) *fhirServer {
	t.Helper()
	fs := &fhirServer{started: make(chan struct{}, 100)}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.requests.Add(1)
		fs.started <- struct{}{}
		fs.mu.Lock()
		if r.Method != http.MethodGet || r.URL.Path != basePath+"/metadata" {
			fs.problems = append(fs.problems, fmt.Sprintf("request %s %s, want GET %s/metadata", r.Method, r.URL.Path, basePath))
		}
		if got := r.Header.Get("Accept"); got != "application/fhir+json" {
			fs.problems = append(fs.problems, fmt.Sprintf("Accept = %q, want application/fhir+json", got))
		}
		fs.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(func() {
		fs.Close()
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, p := range fs.problems {
			t.Error(p)
		}
	})
	return fs
}

func TestDiscovererTokenEndpoint(t *testing.T) {
	fs := newFHIRServer(t, cerner2019, nil)
	clock := newFakeClock()
	d := New(Config{HTTPClient: fs.Client(), Clock: clock.Now})

	tests := []struct{ name, base string }{
		{"base without trailing slash", fs.URL + basePath},
		{"base with trailing slash", fs.URL + basePath + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.Forget(tt.base)
			r, err := d.TokenEndpoint(context.Background(), tt.base)
			if err != nil {
				t.Fatalf("TokenEndpoint: %v", err)
			}
			want := Result{
				TokenURL:    cernerCQToken,
				Source:      SourceCarequalityToken,
				MetadataURL: fs.URL + basePath + "/metadata",
				FetchedAt:   clock.Now(),
			}
			if r.TokenURL != want.TokenURL || r.Source != want.Source || r.MetadataURL != want.MetadataURL || !r.FetchedAt.Equal(want.FetchedAt) {
				t.Errorf("got %+v\nwant %+v", *r, want)
			}
			if r.URIs.Token != cernerToken {
				t.Errorf("URIs.Token = %q, want %q", r.URIs.Token, cernerToken)
			}
		})
	}
}

func TestDiscovererCacheTTL(t *testing.T) {
	fs := newFHIRServer(t, cerner2019, nil)
	clock := newFakeClock()
	d := New(Config{HTTPClient: fs.Client(), TTL: 10 * time.Minute, Clock: clock.Now})
	base := fs.URL + basePath
	start := clock.Now()

	steps := []struct {
		name          string
		base          string
		advance       time.Duration
		forget        bool
		wantRequests  int64
		wantFetchedAt time.Duration // since the fake clock's start
	}{
		{name: "first lookup fetches", base: base, wantRequests: 1},
		{name: "within TTL is a cache hit", base: base, advance: 9 * time.Minute, wantRequests: 1},
		{name: "trailing slash shares the entry", base: base + "/", wantRequests: 1},
		{name: "at TTL the entry has expired", base: base, advance: time.Minute, wantRequests: 2, wantFetchedAt: 10 * time.Minute},
		{name: "cached again", base: base, advance: time.Second, wantRequests: 2, wantFetchedAt: 10 * time.Minute},
		{name: "Forget drops the entry", base: base, forget: true, wantRequests: 3, wantFetchedAt: 10*time.Minute + time.Second},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		if s.forget {
			d.Forget(s.base + "/")
		}
		r, err := d.TokenEndpoint(context.Background(), s.base)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := fs.requests.Load(); got != s.wantRequests {
			t.Errorf("%s: %d requests, want %d", s.name, got, s.wantRequests)
		}
		if want := start.Add(s.wantFetchedAt); !r.FetchedAt.Equal(want) || r.TokenURL != cernerCQToken {
			t.Errorf("%s: got %+v, want FetchedAt %v", s.name, *r, want)
		}
	}
}

func TestDiscovererConcurrentLookupsShareOneRequest(t *testing.T) {
	gate := make(chan struct{})
	fs := newFHIRServer(t, cerner2019, gate)
	d := New(Config{HTTPClient: fs.Client()})

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := d.TokenEndpoint(context.Background(), fs.URL+basePath)
			if err == nil && r.TokenURL != cernerCQToken {
				err = fmt.Errorf("token URL %q", r.TokenURL)
			}
			errs <- err
		}()
	}
	<-fs.started // the shared request is in flight
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := fs.requests.Load(); got != 1 {
		t.Errorf("%d requests for %d concurrent lookups, want 1", got, n)
	}
}

func TestDiscovererErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		maxBody int64
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "upstream\x00 exploded\n", http.StatusInternalServerError)
			},
			check: wantStatus(http.StatusInternalServerError, "Internal Server Error: upstream exploded"),
		},
		{
			name: "406",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotAcceptable)
			},
			check: wantStatus(http.StatusNotAcceptable, "Not Acceptable"),
		},
		{
			name:    "relative token URL",
			handler: serve(oauthURIs(`{"url": "token", "valueUri": "/Authorization/token"}`)),
			check:   wantBadAnswer(`token URL "/Authorization/token" is not an absolute http(s) URL`),
		},
		{
			name:    "garbage carequality-token URL",
			handler: serve(oauthURIs(`{"url": "token", "valueUri": "https://auth.example.test/token"}, {"url": "carequality-token", "valueUri": "not a url\u0007"}`)),
			check:   wantBadAnswer(`carequality-token URL "not a url\a" is not an absolute http(s) URL`),
		},
		{
			name:    "non-http token URL",
			handler: serve(oauthURIs(`{"url": "token", "valueUri": "urn:example:token"}`)),
			check:   wantBadAnswer("not an absolute http(s) URL"),
		},
		{
			name:    "no token at all",
			handler: serve(oauthURIs(`{"url": "authorize", "valueUri": "https://auth.example.test/authorize"}`)),
			check:   wantBadAnswer("neither carequality-token nor token"),
		},
		{
			name:    "no oauth-uris extension",
			handler: serve(`{"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}`),
			check:   wantBadAnswer("parse CapabilityStatement: no "),
		},
		{
			name:    "HTML",
			handler: serve("<html>login</html>"),
			check:   wantBadAnswer("not a JSON object"),
		},
		{
			name:    "body too large",
			handler: serve(cerner2019 + strings.Repeat(" ", 4096)),
			maxBody: 4096,
			check:   wantBadAnswer("exceeds 4096 bytes"),
		},
		{
			name:    "client timeout",
			handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			timeout: 50 * time.Millisecond,
			check: func(t *testing.T, err error) {
				var de *Error
				var ne net.Error
				if !errors.As(err, &de) || de.StatusCode != 0 || !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("error %v: want *Error holding a net.Error that times out", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tt.handler(w, r)
			}))
			defer srv.Close()
			hc := srv.Client()
			hc.Timeout = tt.timeout
			d := New(Config{HTTPClient: hc, MaxBodyBytes: tt.maxBody})

			for i := 0; i < 2; i++ {
				r, err := d.TokenEndpoint(context.Background(), srv.URL+basePath)
				if err == nil {
					t.Fatalf("TokenEndpoint = %+v, want error", r)
				}
				tt.check(t, err)
			}
			if got := calls.Load(); got != 2 {
				t.Errorf("%d requests for 2 failing lookups, want 2 (errors must not be cached)", got)
			}
		})
	}
}

func TestDiscovererContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release) // the shared fetch outlives ctx; let it end
	d := New(Config{HTTPClient: srv.Client()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := d.TokenEndpoint(ctx, srv.URL+basePath)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
}

func TestDiscovererTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL + basePath
	srv.Close()
	_, err := New(Config{}).TokenEndpoint(context.Background(), base)
	var de *Error
	if !errors.As(err, &de) || de.StatusCode != 0 || de.URL != base+"/metadata" {
		t.Fatalf("error %v: want *Error for %s/metadata with StatusCode 0", err, base)
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Errorf("error %v: transport cause not reachable", err)
	}
}

func TestDiscovererBadBase(t *testing.T) {
	tests := []struct{ name, base, wantIn string }{
		{"empty", "", "not an absolute http(s) URL"},
		{"relative", "/r4/" + tenant, "not an absolute http(s) URL"},
		{"no scheme", "fhir.example.test/r4", "not an absolute http(s) URL"},
		{"ftp", "ftp://fhir.example.test/r4", "not an absolute http(s) URL"},
		{"query", "https://fhir.example.test/r4?_format=json", "query or fragment"},
		{"fragment", "https://fhir.example.test/r4#x", "query or fragment"},
		{"user info", "https://u:p@fhir.example.test/r4", "user info"},
	}
	d := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.TokenEndpoint(context.Background(), tt.base)
			if err == nil {
				t.Fatalf("TokenEndpoint = %+v, want error", r)
			}
			if !strings.HasPrefix(err.Error(), "discovery: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix and %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("error %q leaks user info", err)
			}
		})
	}
}

func TestMetadataURLJoin(t *testing.T) {
	tests := []struct{ base, want string }{
		{"https://fhir.example.test", "https://fhir.example.test/metadata"},
		{"https://fhir.example.test/", "https://fhir.example.test/metadata"},
		{"https://fhir.example.test/r4/" + tenant, "https://fhir.example.test/r4/" + tenant + "/metadata"},
		{"https://fhir.example.test/r4/" + tenant + "//", "https://fhir.example.test/r4/" + tenant + "/metadata"},
		{" https://fhir.example.test:8443/dstu2/x/ ", "https://fhir.example.test:8443/dstu2/x/metadata"},
	}
	for _, tt := range tests {
		_, got, err := metadataURL(tt.base)
		if err != nil || got != tt.want {
			t.Errorf("metadataURL(%q) = %q, %v; want %q", tt.base, got, err, tt.want)
		}
	}
}

func oauthURIs(subExtensions string) string {
	return `{"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": {"extension": [
		{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [` + subExtensions + `]}
	]}}]}`
}

func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }
}

func wantStatus(code int, text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != code {
			t.Fatalf("error %v: want *Error with StatusCode %d", err, code)
		}
		if !strings.HasPrefix(err.Error(), "discovery: GET http") || !strings.Contains(err.Error(), text) {
			t.Errorf("error %q, want the URL and %q", err, text)
		}
	}
}

// wantBadAnswer expects the *Error for an unusable 200 answer.
func wantBadAnswer(text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != http.StatusOK || !de.Upstream() {
			t.Errorf("error %v: want an upstream *Error with StatusCode 200", err)
		}
		wantText(text)(t, err)
	}
}

func wantText(text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !strings.HasPrefix(err.Error(), "discovery: ") || !strings.Contains(err.Error(), text) {
			t.Errorf("error %q, want prefix and %q", err, text)
		}
	}
}

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}
