package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token URLs the sources of the precedence tests offer.
const (
	urlCQ    = "https://fhir.example.test/r4/Authorization/token"
	urlUDAP  = "https://udap.example.test/token"
	urlSMART = "https://auth.example.test/smart/token"
	urlToken = "https://auth.example.test/oauth2/token"
)

// precedenceServer serves every source, each with its own token URL.
func precedenceServer(t *testing.T, now time.Time) (*fakeFHIR, *testPKI) {
	t.Helper()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	f.set(docNameMetadata, 0, oauthURIs(`{"url": "token", "valueUri": "`+urlToken+`"}, {"url": "carequality-token", "valueUri": "`+urlCQ+`"}`))
	f.set(docNameUDAP, 0, udapDoc("https://udap.example.test/unsigned-token", pki.sign(t, udapClaims(f.base(), now, urlUDAP))))
	f.set(docNameSMART, 0, smartConfig(urlSMART, "RS384", "ES384"))
	return f, pki
}

func TestDiscovererTokenEndpoint(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cerner2019)
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: time.Hour})

	for _, base := range []string{f.base(), f.base() + "/", "  " + f.base() + "//"} {
		d.Forget(base)
		r, err := d.TokenEndpoint(context.Background(), base)
		if err != nil {
			t.Fatalf("TokenEndpoint(%q): %v", base, err)
		}
		want := Result{
			TokenURL:    cernerCQToken,
			Source:      SourceCarequalityToken,
			MetadataURL: f.base() + "/metadata",
			FetchedAt:   clock.Now(),
			Expires:     clock.Now().Add(time.Hour),
		}
		if r.TokenURL != want.TokenURL || r.Source != want.Source || r.MetadataURL != want.MetadataURL ||
			!r.FetchedAt.Equal(want.FetchedAt) || !r.Expires.Equal(want.Expires) || r.Stale {
			t.Errorf("%q: got %+v\nwant %+v", base, *r, want)
		}
		if len(r.Attempts) != 1 || r.Attempts[0].Outcome != OutcomeUsed || r.Attempts[0].URL != want.MetadataURL || r.Attempts[0].TokenURL != cernerCQToken {
			t.Errorf("Attempts = %+v, want one used attempt at the metadata URL", r.Attempts)
		}
	}
	// The carequality-token won first: no .well-known document was asked.
	if got := f.counts(); got[docNameUDAP] != 0 || got[docNameSMART] != 0 {
		t.Errorf("requests %v: .well-known documents fetched although carequality-token won", got)
	}
}

func TestDiscoverEachForm(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	cqRegister := "https://fhir-ehr.stagingcerner.com/beta/" + tenant + "/Authorization/register"
	tests := []struct {
		name         string
		source       Source
		docs         map[string]string // fakeFHIR document -> body (others 404)
		udapToken    string            // when set, serve signed UDAP metadata with this token URL
		wantURL      string
		wantReg      string
		wantAlgs     []string
		wantMethods  []string
		wantUDAP     bool
		wantMetadata bool
	}{
		{
			name:         "carequality-token sub-extension",
			source:       SourceCarequalityToken,
			docs:         map[string]string{docNameMetadata: cerner2019},
			wantURL:      cernerCQToken,
			wantMetadata: true,
		},
		{
			name:   "Cerner carequality-oauth-uris extension",
			source: SourceCarequalityToken,
			docs: map[string]string{docNameMetadata: `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [{"url": "token", "valueUri": "` + cernerToken + `"}]},
				{"url": "https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris", "extension": [
					{"url": "token", "valueUri": "` + cernerCQToken + `"}, {"url": "register", "valueUri": "` + cqRegister + `"}]}
			]}}]}`},
			wantURL:      cernerCQToken,
			wantReg:      cqRegister,
			wantMetadata: true,
		},
		{
			name:        "udap",
			source:      SourceUDAP,
			docs:        map[string]string{docNameMetadata: `{"resourceType": "CapabilityStatement"}`},
			udapToken:   urlUDAP,
			wantURL:     urlUDAP,
			wantReg:     "https://udap.example.test/register",
			wantAlgs:    []string{"RS256", "ES384"},
			wantMethods: []string{"private_key_jwt"},
			wantUDAP:    true,
		},
		{
			name:   "smart-configuration",
			source: SourceSMARTConfiguration,
			docs: map[string]string{
				docNameMetadata: `{"resourceType": "CapabilityStatement"}`,
				docNameSMART:    smartConfig(urlSMART, "RS384", "ES384"),
			},
			wantURL:     urlSMART,
			wantReg:     "https://auth.example.test/smart/register",
			wantAlgs:    []string{"RS384", "ES384"},
			wantMethods: []string{"private_key_jwt"},
		},
		{
			name:   "token",
			source: SourceToken,
			docs: map[string]string{docNameMetadata: oauthURIs(`{"url": "token", "valueUri": "` + urlToken + `"},
				{"url": "register", "valueUri": "https://auth.example.test/register"}`)},
			wantURL:      urlToken,
			wantReg:      "https://auth.example.test/register",
			wantMetadata: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			for name, body := range tt.docs {
				f.set(name, 0, body)
			}
			var anchors = newPKI(t, now, false, false, f.base())
			if tt.udapToken != "" {
				f.set(docNameUDAP, 0, udapDoc("https://udap.example.test/unsigned", anchors.sign(t, udapClaims(f.base(), now, tt.udapToken))))
			}
			d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TrustAnchors: anchors.pool})

			for _, order := range [][]Source{{tt.source}, nil} {
				d.Forget(f.base())
				r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: order})
				if err != nil {
					t.Fatalf("order %v: %v", order, err)
				}
				if r.TokenURL != tt.wantURL || r.Source != tt.source || r.RegistrationEndpoint != tt.wantReg ||
					!slices.Equal(r.SigningAlgorithms, tt.wantAlgs) || !slices.Equal(r.AuthMethods, tt.wantMethods) || r.UDAP != tt.wantUDAP {
					t.Errorf("order %v: got %+v", order, *r)
				}
				if (r.MetadataURL != "") != tt.wantMetadata && order != nil {
					t.Errorf("MetadataURL = %q", r.MetadataURL)
				}
				last := r.Attempts[len(r.Attempts)-1]
				if last.Source != tt.source || last.Outcome != OutcomeUsed || last.TokenURL != tt.wantURL || !last.FetchedAt.Equal(now) {
					t.Errorf("order %v: last attempt %+v", order, last)
				}
				for _, a := range r.Attempts[:len(r.Attempts)-1] {
					if a.Outcome == OutcomeUsed || a.Err != nil {
						t.Errorf("order %v: earlier attempt %+v, want no token URL or not supported", order, a)
					}
				}
			}
		})
	}
}

func TestDiscoverPrecedence(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	noCQ := oauthURIs(`{"url": "token", "valueUri": "` + urlToken + `"}`)
	tests := []struct {
		name         string
		order        []Source
		change       func(f *fakeFHIR)
		wantSource   Source
		wantURL      string
		wantOutcomes []string
		wantAlgs     []string
		wantUDAP     bool
	}{
		{
			name:         "default order: carequality-token first",
			wantSource:   SourceCarequalityToken,
			wantURL:      urlCQ,
			wantOutcomes: []string{"used"},
		},
		{
			name:         "default order: udap when there is no carequality-token",
			change:       func(f *fakeFHIR) { f.set(docNameMetadata, 0, noCQ) },
			wantSource:   SourceUDAP,
			wantURL:      urlUDAP,
			wantOutcomes: []string{"no token URL", "used"},
			wantAlgs:     []string{"RS256", "ES384"},
			wantUDAP:     true,
		},
		{
			name: "default order: smart-configuration when udap is not supported",
			change: func(f *fakeFHIR) {
				f.set(docNameMetadata, 0, noCQ)
				f.set(docNameUDAP, http.StatusNotFound, `{"error": "not found"}`)
			},
			wantSource:   SourceSMARTConfiguration,
			wantURL:      urlSMART,
			wantOutcomes: []string{"no token URL", "not supported (404)", "used"},
			wantAlgs:     []string{"RS384", "ES384"},
		},
		{
			name: "default order: token last",
			change: func(f *fakeFHIR) {
				f.set(docNameMetadata, 0, noCQ)
				f.set(docNameUDAP, http.StatusNotFound, "")
				f.set(docNameSMART, http.StatusNotFound, "")
			},
			wantSource:   SourceToken,
			wantURL:      urlToken,
			wantOutcomes: []string{"no token URL", "not supported (404)", "not supported (404)", "used"},
		},
		{
			name: "default order: a failing source is recorded and the next one tried",
			change: func(f *fakeFHIR) {
				f.set(docNameMetadata, http.StatusServiceUnavailable, "down for maintenance")
				f.set(docNameUDAP, http.StatusInternalServerError, "")
			},
			wantSource: SourceSMARTConfiguration,
			wantURL:    urlSMART,
			wantOutcomes: []string{
				"failed: HTTP 503: Service Unavailable: down for maintenance",
				"failed: HTTP 500: Internal Server Error",
				"used",
			},
			wantAlgs: []string{"RS384", "ES384"},
		},
		{
			name:         "custom order: smart-configuration, token",
			order:        []Source{SourceSMARTConfiguration, SourceToken},
			wantSource:   SourceSMARTConfiguration,
			wantURL:      urlSMART,
			wantOutcomes: []string{"used"},
			wantAlgs:     []string{"RS384", "ES384"},
		},
		{
			name:         "custom order: token before carequality-token",
			order:        []Source{SourceToken, SourceCarequalityToken},
			wantSource:   SourceToken,
			wantURL:      urlToken,
			wantOutcomes: []string{"used"},
		},
		{
			name:  "custom order: algorithms from an earlier source without a token URL",
			order: []Source{SourceSMARTConfiguration, SourceToken},
			change: func(f *fakeFHIR) {
				f.set(docNameSMART, 0, `{"token_endpoint_auth_signing_alg_values_supported": ["ES384"], "capabilities": []}`)
			},
			wantSource:   SourceToken,
			wantURL:      urlToken,
			wantOutcomes: []string{"no token URL", "used"},
			wantAlgs:     []string{"ES384"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, pki := precedenceServer(t, now)
			if tt.change != nil {
				tt.change(f)
			}
			d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TrustAnchors: pki.pool})
			r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: tt.order})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, a := range r.Attempts {
				outcomes = append(outcomes, a.Outcome)
			}
			if r.Source != tt.wantSource || r.TokenURL != tt.wantURL || !slices.Equal(outcomes, tt.wantOutcomes) ||
				!slices.Equal(r.SigningAlgorithms, tt.wantAlgs) || r.UDAP != tt.wantUDAP {
				t.Errorf("got source %s, URL %s, outcomes %q, algorithms %v, UDAP %v\nwant %s, %s, %q, %v, %v",
					r.Source, r.TokenURL, outcomes, r.SigningAlgorithms, r.UDAP,
					tt.wantSource, tt.wantURL, tt.wantOutcomes, tt.wantAlgs, tt.wantUDAP)
			}
			// /metadata is read once even when two sources use it.
			if n := f.count(docNameMetadata); n > 1 {
				t.Errorf("%d requests for /metadata, want at most 1", n)
			}
		})
	}
}

func TestDiscoverCernerOverride(t *testing.T) {
	f := newFakeFHIR(t)
	cqRegister := "https://fhir-ehr.stagingcerner.com/beta/" + tenant + "/Authorization/register"
	// Cerner's standard answer lists its generic authorization server; with
	// the override header, the Carequality URLs in the same places.
	f.set(docNameMetadata, 0, oauthURIs(`{"url": "token", "valueUri": "`+cernerToken+`"}`))
	f.set(docNameMetadataOverride, 0, oauthURIs(`{"url": "token", "valueUri": "`+cernerCQToken+`"}, {"url": "register", "valueUri": "`+cqRegister+`"}`))
	d := New(Config{HTTPClient: f.Client()})

	steps := []struct {
		override   bool
		wantURL    string
		wantSource Source
		wantReg    string
		wantCounts map[string]int
	}{
		{false, cernerToken, SourceToken, "", map[string]int{docNameMetadata: 1, docNameUDAP: 1, docNameSMART: 1}},
		{true, cernerCQToken, SourceCarequalityToken, cqRegister, map[string]int{docNameMetadata: 1, docNameMetadataOverride: 1, docNameUDAP: 1, docNameSMART: 1}},
		// Both are cached, apart.
		{false, cernerToken, SourceToken, "", map[string]int{docNameMetadata: 1, docNameMetadataOverride: 1, docNameUDAP: 1, docNameSMART: 1}},
		{true, cernerCQToken, SourceCarequalityToken, cqRegister, map[string]int{docNameMetadata: 1, docNameMetadataOverride: 1, docNameUDAP: 1, docNameSMART: 1}},
	}
	for i, s := range steps {
		r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), CernerOverride: s.override})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if r.TokenURL != s.wantURL || r.Source != s.wantSource || r.RegistrationEndpoint != s.wantReg {
			t.Errorf("step %d (override %v): got %s from %s, registration %q; want %s from %s, %q",
				i, s.override, r.TokenURL, r.Source, r.RegistrationEndpoint, s.wantURL, s.wantSource, s.wantReg)
		}
		if got := f.counts(); !mapsEqual(got, s.wantCounts) {
			t.Errorf("step %d: requests %v, want %v", i, got, s.wantCounts)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestDiscovererCacheTTL(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cerner2019)
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), TTL: 10 * time.Minute, RefreshAhead: -1, Clock: clock.Now})
	base := f.base()
	start := clock.Now()

	steps := []struct {
		name          string
		base          string
		advance       time.Duration
		forget        bool
		wantRequests  int
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
		if got := f.count(docNameMetadata); got != s.wantRequests {
			t.Errorf("%s: %d requests, want %d", s.name, got, s.wantRequests)
		}
		if want := start.Add(s.wantFetchedAt); !r.FetchedAt.Equal(want) || r.TokenURL != cernerCQToken || r.Stale {
			t.Errorf("%s: got %+v, want FetchedAt %v", s.name, *r, want)
		}
	}
}

func TestDiscovererConcurrentLookupsShareOneRequest(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cerner2019)
	gate := f.gate(docNameMetadata)
	d := New(Config{HTTPClient: f.Client()})

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := d.TokenEndpoint(context.Background(), f.base())
			if err == nil && r.TokenURL != cernerCQToken {
				err = fmt.Errorf("token URL %q", r.TokenURL)
			}
			errs <- err
		}()
	}
	<-f.started // the shared request is in flight
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.count(docNameMetadata); got != 1 {
		t.Errorf("%d requests for %d concurrent lookups, want 1", got, n)
	}
}

func TestDiscovererCallersCannotMutateTheCache(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameSMART, 0, smartConfig(urlSMART, "RS384"))
	d := New(Config{HTTPClient: f.Client()})
	req := Request{FHIRBase: f.base(), Order: []Source{SourceSMARTConfiguration}}
	r1, err := d.Discover(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r1.TokenURL, r1.SigningAlgorithms[0], r1.Attempts[0].Outcome = "x", "none", "x"
	r2, err := d.Discover(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r2.TokenURL != urlSMART || r2.SigningAlgorithms[0] != "RS384" || r2.Attempts[0].Outcome != OutcomeUsed {
		t.Errorf("a caller's changes reached the cache: %+v", *r2)
	}
}

func TestDiscovererErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		metadata string
		hang     bool
		maxBody  int64
		timeout  time.Duration
		check    func(t *testing.T, err error)
		// cached says the CapabilityStatement is an answer, cached as
		// such, rather than a failure to read again.
		cached bool
	}{
		{
			name:     "500",
			status:   http.StatusInternalServerError,
			metadata: "upstream\x00 exploded\n",
			check:    wantStatus(http.StatusInternalServerError, "Internal Server Error: upstream exploded"),
		},
		{
			name:   "406",
			status: http.StatusNotAcceptable,
			check:  wantStatus(http.StatusNotAcceptable, "Not Acceptable"),
		},
		{
			name:     "metadata 404 is a failure, not an answer",
			status:   http.StatusNotFound,
			metadata: "no such tenant",
			check:    wantStatus(http.StatusNotFound, "Not Found: no such tenant"),
		},
		{
			name:     "relative token URL",
			metadata: oauthURIs(`{"url": "token", "valueUri": "/Authorization/token"}`),
			check:    wantBadAnswer(`token URL "/Authorization/token" is not an absolute http(s) URL`),
		},
		{
			name:     "non-http token URL",
			metadata: oauthURIs(`{"url": "token", "valueUri": "urn:example:token"}`),
			check:    wantBadAnswer("not an absolute http(s) URL"),
		},
		{
			name:     "no token at all",
			metadata: oauthURIs(`{"url": "authorize", "valueUri": "https://auth.example.test/authorize"}`),
			check:    wantText("token (GET http", "/metadata): no token URL: oauth-uris lists no token"),
			cached:   true,
		},
		{
			name:     "no oauth-uris extension",
			metadata: `{"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}`,
			check:    wantText("carequality-token (GET http", "no token URL: the CapabilityStatement has no oauth-uris extension"),
			cached:   true,
		},
		{
			name:     "HTML",
			metadata: "<html>login</html>",
			check:    wantBadAnswer(`parse CapabilityStatement: not a JSON object (starts with "<html>login</htm")`),
		},
		{
			name:     "body too large",
			metadata: cerner2019 + strings.Repeat(" ", 4096),
			maxBody:  4096,
			check:    wantBadAnswer("response body exceeds 4096 bytes"),
		},
		{
			name:    "client timeout",
			hang:    true,
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
			f := newFakeFHIR(t)
			f.set(docNameMetadata, tt.status, tt.metadata)
			if tt.hang {
				f.gate(docNameMetadata)
			}
			hc := f.Client()
			hc.Timeout = tt.timeout
			d := New(Config{HTTPClient: hc, MaxBodyBytes: tt.maxBody})

			for range 2 {
				r, err := d.TokenEndpoint(context.Background(), f.base())
				if err == nil {
					t.Fatalf("TokenEndpoint = %+v, want error", r)
				}
				var nt *NoTokenURLError
				if !errors.As(err, &nt) || len(nt.Attempts) != 4 || nt.FHIRBase != f.base() || !nt.Upstream() {
					t.Fatalf("error %v: want a *NoTokenURLError with 4 attempts", err)
				}
				tt.check(t, err)
			}
			// Failures are not cached; the .well-known 404s are, and so is
			// a CapabilityStatement that simply lists no token URL.
			want := map[string]int{docNameMetadata: 2, docNameUDAP: 1, docNameSMART: 1}
			if tt.cached {
				want[docNameMetadata] = 1
			}
			if got := f.counts(); !mapsEqual(got, want) {
				t.Errorf("requests %v for 2 failing lookups, want %v", got, want)
			}
		})
	}
}

func TestNoTokenURLErrorText(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, http.StatusServiceUnavailable, "")
	f.set(docNameSMART, 0, `{"capabilities": ["client-confidential-asymmetric"]}`)
	d := New(Config{HTTPClient: f.Client()})
	_, err := d.TokenEndpoint(context.Background(), f.base())
	want := "discovery: no token URL for " + f.base() + ":" +
		" carequality-token (GET " + f.base() + "/metadata): failed: HTTP 503: Service Unavailable;" +
		" udap (GET " + f.base() + "/.well-known/udap): not supported (404);" +
		" smart-configuration (GET " + f.base() + "/.well-known/smart-configuration): no token URL: the document has no token_endpoint;" +
		" token (GET " + f.base() + "/metadata): failed: HTTP 503: Service Unavailable"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	var de *Error
	if !errors.As(err, &de) || de.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("errors.As(*Error) = %v", de)
	}
}

func TestResultJSON(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, http.StatusBadGateway, "")
	f.set(docNameSMART, 0, smartConfig(urlSMART, "RS384"))
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: time.Hour})
	r, err := d.TokenEndpoint(context.Background(), f.base())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	attempts, _ := got["attempts"].([]any)
	if got["token_url"] != urlSMART || got["source"] != "smart-configuration" || len(attempts) != 3 ||
		got["expires"] != "2025-01-02T04:04:05Z" || got["udap"] != false {
		t.Errorf("JSON %s", b)
	}
	first, _ := attempts[0].(map[string]any)
	if first["source"] != "carequality-token" || first["outcome"] != "failed: HTTP 502: Bad Gateway" || first["url"] != f.base()+"/metadata" {
		t.Errorf("first attempt JSON %v", first)
	}
	if _, ok := first["fetched_at"]; ok {
		t.Errorf("a failed fetch has a fetched_at: %v", first)
	}
}

func TestDiscovererContextDeadline(t *testing.T) {
	f := newFakeFHIR(t)
	f.gate(docNameMetadata)
	d := New(Config{HTTPClient: f.Client()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := d.TokenEndpoint(ctx, f.base())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "discovery: token endpoint of "+f.base()) {
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

func TestDiscovererBadRequest(t *testing.T) {
	tests := []struct {
		name   string
		req    Request
		wantIn string
	}{
		{"empty", Request{FHIRBase: ""}, "not an absolute http(s) URL"},
		{"relative", Request{FHIRBase: "/r4/" + tenant}, "not an absolute http(s) URL"},
		{"no scheme", Request{FHIRBase: "fhir.example.test/r4"}, "not an absolute http(s) URL"},
		{"ftp", Request{FHIRBase: "ftp://fhir.example.test/r4"}, "not an absolute http(s) URL"},
		{"query", Request{FHIRBase: "https://fhir.example.test/r4?_format=json"}, "query or fragment"},
		{"fragment", Request{FHIRBase: "https://fhir.example.test/r4#x"}, "query or fragment"},
		{"user info", Request{FHIRBase: "https://u:p@fhir.example.test/r4"}, "user info"},
		{"unknown source", Request{FHIRBase: "https://fhir.example.test/r4", Order: []Source{"openid-configuration"}}, `unknown source "openid-configuration"`},
		{"repeated source", Request{FHIRBase: "https://fhir.example.test/r4", Order: []Source{SourceToken, SourceUDAP, SourceToken}}, "source token appears twice"},
	}
	d := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.Discover(context.Background(), tt.req)
			if err == nil {
				t.Fatalf("Discover = %+v, want error", r)
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

func TestParseOrder(t *testing.T) {
	got, err := ParseOrder([]string{" UDAP", "token", "smart-configuration"})
	if err != nil || !slices.Equal(got, []Source{SourceUDAP, SourceToken, SourceSMARTConfiguration}) {
		t.Errorf("ParseOrder = %v, %v", got, err)
	}
	if got, err := ParseOrder(nil); got != nil || err != nil {
		t.Errorf("ParseOrder(nil) = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"token", "Token"}, {"udap", "jwks"}, {""}} {
		if _, err := ParseOrder(bad); err == nil || !strings.HasPrefix(err.Error(), "discovery: ") {
			t.Errorf("ParseOrder(%q) error = %v", bad, err)
		}
	}
	if d := DefaultOrder(); !slices.Equal(d, []Source{SourceCarequalityToken, SourceUDAP, SourceSMARTConfiguration, SourceToken}) {
		t.Errorf("DefaultOrder() = %v", d)
	}
	DefaultOrder()[0] = "x"
	if DefaultOrder()[0] != SourceCarequalityToken {
		t.Error("DefaultOrder shares its slice")
	}
}

func TestConfigOrderInvalid(t *testing.T) {
	d := New(Config{Order: []Source{SourceToken, "jwks"}})
	_, err := d.TokenEndpoint(context.Background(), "https://fhir.example.test/r4")
	if err == nil || !strings.Contains(err.Error(), `discovery: unknown source "jwks" in order`) || !strings.HasSuffix(err.Error(), "(Config.Order)") {
		t.Errorf("error %v, want the invalid Config.Order", err)
	}
}

func TestConfigOrderIsTheDefault(t *testing.T) {
	f, pki := precedenceServer(t, newFakeClock().Now())
	d := New(Config{HTTPClient: f.Client(), Clock: newFakeClock().Now, TrustAnchors: pki.pool, Order: []Source{SourceSMARTConfiguration, SourceCarequalityToken}})
	r, err := d.TokenEndpoint(context.Background(), f.base())
	if err != nil || r.Source != SourceSMARTConfiguration {
		t.Fatalf("TokenEndpoint = %+v, %v; want the smart-configuration URL", r, err)
	}
}

func TestDocumentURLs(t *testing.T) {
	tests := []struct{ base, metadata, udap string }{
		{"https://fhir.example.test", "https://fhir.example.test/metadata", "https://fhir.example.test/.well-known/udap"},
		{"https://fhir.example.test/", "https://fhir.example.test/metadata", "https://fhir.example.test/.well-known/udap"},
		{"https://fhir.example.test/r4/" + tenant, "https://fhir.example.test/r4/" + tenant + "/metadata", "https://fhir.example.test/r4/" + tenant + "/.well-known/udap"},
		{"https://fhir.example.test/r4/" + tenant + "//", "https://fhir.example.test/r4/" + tenant + "/metadata", "https://fhir.example.test/r4/" + tenant + "/.well-known/udap"},
		{" https://fhir.example.test:8443/dstu2/x/ ", "https://fhir.example.test:8443/dstu2/x/metadata", "https://fhir.example.test:8443/dstu2/x/.well-known/udap"},
	}
	for _, tt := range tests {
		_, u, err := parseBase(tt.base)
		if err != nil {
			t.Fatalf("parseBase(%q): %v", tt.base, err)
		}
		if got := docURL(u, docMetadata, ""); got != tt.metadata {
			t.Errorf("metadata URL of %q = %q, want %q", tt.base, got, tt.metadata)
		}
		if got := docURL(u, docUDAP, ""); got != tt.udap {
			t.Errorf("UDAP URL of %q = %q, want %q", tt.base, got, tt.udap)
		}
		if got, want := docURL(u, docSMART, ""), strings.TrimSuffix(tt.udap, "udap")+"smart-configuration"; got != want {
			t.Errorf("smart-configuration URL of %q = %q, want %q", tt.base, got, want)
		}
	}
}

func wantStatus(code int, text string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.StatusCode != code {
			t.Fatalf("error %v: want *Error with StatusCode %d", err, code)
		}
		if !strings.HasPrefix(de.Error(), "discovery: GET http") || !strings.Contains(de.Error(), text) || !strings.Contains(err.Error(), text) {
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

func wantText(texts ...string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		for _, text := range texts {
			if !strings.HasPrefix(err.Error(), "discovery: ") || !strings.Contains(err.Error(), text) {
				t.Errorf("error %q, want prefix and %q", err, text)
			}
		}
	}
}
