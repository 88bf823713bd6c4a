package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/tenant"
)

// fakeCredentials hands out numbered tokens and counts exchanges.
type fakeCredentials struct {
	mu        sync.Mutex
	current   string
	exchanges int
	err       error
}

func (f *fakeCredentials) Token(ctx context.Context, t *tenant.Tenant) (*assertion.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.current == "" {
		f.exchanges++
		f.current = fmt.Sprintf("tok-%d", f.exchanges)
	}
	return &assertion.Token{AccessToken: f.current, TokenType: "Bearer"}, nil
}

func (f *fakeCredentials) Refused(t *tenant.Tenant, stale *assertion.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == stale.AccessToken {
		f.current = ""
	}
}

type seen struct {
	Method, Path, RawQuery, Auth, Accept, Cookie, RequestID string
	BodyHash                                                [32]byte
}

// upstream is a FHIR server that accepts only the token named by valid.
type upstream struct {
	*httptest.Server
	valid atomic.Value // string
	mu    sync.Mutex
	seen  []seen
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.valid.Store("tok-1")
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"),
			r.Header.Get("Accept"), r.Header.Get("Cookie"), r.Header.Get("X-Request-Id"), sha256.Sum256(body)})
		u.mu.Unlock()
		w.Header().Set("X-Request-Id", "upstream-rid")
		w.Header().Set("Set-Cookie", "session=tenant-secret")
		if r.Header.Get("Authorization") != "Bearer "+u.valid.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"1"}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.seen...)
}

func testTenant(t *testing.T, base string) *tenant.Tenant {
	t.Helper()
	d := &fakeDirectory{base: base}
	// The test servers are on loopback, as a sandbox is.
	r := &tenant.Resolver{Directory: d, Discovery: d, Orgs: map[string]tenant.Settings{"1.2.3": {AllowPrivate: true}}}
	tn, err := r.Resolve(context.Background(), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func newProxy(creds Credentials, maxReplay int64) *Proxy {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return New(Config{Credentials: creds, Logger: log, MaxReplayBody: maxReplay})
}

func TestForwardRewritesRequest(t *testing.T) {
	up := newUpstream(t)
	tn := testTenant(t, up.URL+"/r4/tenant-1")
	p := newProxy(&fakeCredentials{}, 1<<20)

	req := httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1?name=peters&_count=2", nil)
	req.Header.Set("Authorization", "Bearer caller-secret")
	req.Header.Set("Cookie", "caller=secret")
	req.Header.Set("X-Request-Id", "caller-rid")
	rec := httptest.NewRecorder()
	p.Forward(rec, req, tn, "/Patient/1")

	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("want 1 upstream request, got %d", len(got))
	}
	s := got[0]
	if s.Path != "/r4/tenant-1/Patient/1" || s.RawQuery != "name=peters&_count=2" {
		t.Errorf("forwarded to %s?%s", s.Path, s.RawQuery)
	}
	if s.Auth != "Bearer tok-1" {
		t.Errorf("Authorization = %q, want the tenant token, never the caller's", s.Auth)
	}
	if s.Cookie != "" {
		t.Errorf("caller's Cookie reached the tenant: %q", s.Cookie)
	}
	if s.Accept != FHIRJSON {
		t.Errorf("Accept = %q, want %q", s.Accept, FHIRJSON)
	}
	if s.RequestID != "caller-rid" {
		t.Errorf("X-Request-Id = %q, want the caller's", s.RequestID)
	}
	if v := rec.Header().Values("X-Request-Id"); len(v) != 1 || v[0] != "caller-rid" {
		t.Errorf("response X-Request-Id = %q", v)
	}
	if v := rec.Header().Get(UpstreamRequestIDHeader); v != "upstream-rid" {
		t.Errorf("X-Upstream-Request-Id = %q", v)
	}
	if v := rec.Header().Get("Set-Cookie"); v != "" {
		t.Errorf("tenant Set-Cookie passed to caller: %q", v)
	}
}

func TestForwardAccept(t *testing.T) {
	tests := []struct{ given, want string }{
		{"", FHIRJSON},
		{"*/*", FHIRJSON},
		{"*/*;q=0.8, */*", FHIRJSON},
		{"application/fhir+xml", "application/fhir+xml"},
		{"application/json, */*;q=0.1", "application/json, */*;q=0.1"},
	}
	for _, tt := range tests {
		up := newUpstream(t)
		p := newProxy(&fakeCredentials{}, 0)
		req := httptest.NewRequest("GET", "/x", nil)
		if tt.given != "" {
			req.Header.Set("Accept", tt.given)
		}
		p.Forward(httptest.NewRecorder(), req, testTenant(t, up.URL), "/metadata")
		if got := up.requests()[0].Accept; got != tt.want {
			t.Errorf("caller Accept %q: tenant got %q, want %q", tt.given, got, tt.want)
		}
	}
}

func TestRetryOn401(t *testing.T) {
	body := bytes.Repeat([]byte(`{"resourceType":"Patient"}`), 100)
	tests := []struct {
		name        string
		maxReplay   int64
		contentLen  int64 // -1: unknown (chunked)
		wantStatus  int
		wantUpCalls int
		wantExch    int
	}{
		{"small body replayed", 1 << 20, int64(len(body)), 200, 2, 2},
		{"small chunked body replayed", 1 << 20, -1, 200, 2, 2},
		{"large body streamed, not retried", 100, int64(len(body)), 401, 1, 1},
		{"large chunked body streamed, not retried", 100, -1, 401, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			up.valid.Store("tok-2") // the first token will be refused
			creds := &fakeCredentials{}
			p := newProxy(creds, tt.maxReplay)
			req := httptest.NewRequest("POST", "/fhir/1.2.3/Patient", io.NopCloser(bytes.NewReader(body)))
			req.ContentLength = tt.contentLen
			rec := httptest.NewRecorder()
			p.Forward(rec, req, testTenant(t, up.URL), "/Patient")

			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			got := up.requests()
			if len(got) != tt.wantUpCalls || creds.exchanges != tt.wantExch {
				t.Fatalf("upstream calls %d (want %d), exchanges %d (want %d)", len(got), tt.wantUpCalls, creds.exchanges, tt.wantExch)
			}
			for i, s := range got {
				if s.BodyHash != sha256.Sum256(body) {
					t.Errorf("attempt %d: body not forwarded byte for byte", i+1)
				}
			}
		})
	}
}

func TestTokenErrorBecomesOperationOutcome(t *testing.T) {
	up := newUpstream(t)
	creds := &fakeCredentials{err: &assertion.RetrieveError{
		TokenURL: "https://auth.example/token", StatusCode: 401, ErrorCode: "invalid_client",
		ErrorDescription: "unknown client", ErrorURI: "https://auth.example/errors/1", RequestID: "tok-rid-9",
	}}
	p := newProxy(creds, 0)
	rec := httptest.NewRecorder()
	p.Forward(rec, httptest.NewRequest("GET", "/x", nil), testTenant(t, up.URL), "/Patient/1")
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d", rec.Code)
	}
	if len(up.requests()) != 0 {
		t.Fatal("the FHIR server was called without a token")
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Code        string
			Diagnostics string
			Details     struct{ Coding []struct{ Code string } }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", rec.Body)
	}
	for _, want := range []string{"invalid_client", "unknown client", "https://auth.example/errors/1", "tok-rid-9"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("outcome lacks %q: %s", want, rec.Body)
		}
	}
	if rec.Header().Get("X-Upstream-Request-Id") != "tok-rid-9" {
		t.Errorf("X-Upstream-Request-Id = %q", rec.Header().Get("X-Upstream-Request-Id"))
	}
}

// TestFailuresAreDescribed: a failure the proxy answers itself is
// described as the router's own failures are (outcome.WriteErrorFor):
// the OperationOutcome's issue code goes into the request's audit
// record (its error) and onto its span (cqgate.outcome).
func TestFailuresAreDescribed(t *testing.T) {
	up := newUpstream(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	refused := &fakeCredentials{err: &assertion.RetrieveError{TokenURL: "https://auth.example/token", StatusCode: 400, ErrorCode: "invalid_client"}}
	notGranted := func(*tenant.Tenant, *assertion.Token, *http.Request, string) error {
		return failure.New(failure.Forbidden, "proxy: the granted scope does not cover the request")
	}
	for _, tc := range []struct {
		name       string
		base       string
		creds      *fakeCredentials
		checkGrant func(*tenant.Tenant, *assertion.Token, *http.Request, string) error
		path       string
		status     int
	}{
		{"the token endpoint refuses", up.URL, refused, nil, "/Patient/1", http.StatusBadGateway},
		{"the partner is unreachable", gone.URL, &fakeCredentials{}, nil, "/Patient/1", http.StatusBadGateway},
		{"the granted scope does not cover the request", up.URL, &fakeCredentials{}, notGranted, "/Patient/1", http.StatusForbidden},
		{"a sealed link that does not open", up.URL, &fakeCredentials{}, nil, "/" + DownloadSegment + "/not-a-link", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(sr))
			log := logrus.New()
			log.SetOutput(io.Discard)
			p := New(Config{Credentials: tc.creds, Logger: log, CheckGrant: tc.checkGrant})
			var noted audit.Record
			r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3"+tc.path, nil)
			ctx, span := tracing.NewWithProvider(tp).StartRequest(r)
			rec := httptest.NewRecorder()
			p.Forward(rec, r.WithContext(audit.NewContext(ctx, &noted)), testTenant(t, tc.base), tc.path)
			span.End()
			var oo struct{ Issue []struct{ Code string } }
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); rec.Code != tc.status || err != nil || len(oo.Issue) == 0 {
				t.Fatalf("answered %d %s, want %d with an OperationOutcome", rec.Code, rec.Body, tc.status)
			}
			code := oo.Issue[0].Code
			if noted.Error != code {
				t.Errorf("audit record error %q, want the answer's issue code %q", noted.Error, code)
			}
			var outcome string
			for _, kv := range sr.Ended()[0].Attributes() {
				if kv.Key == tracing.OutcomeKey {
					outcome = kv.Value.AsString()
				}
			}
			if outcome != code {
				t.Errorf("span cqgate.outcome %q, want the answer's issue code %q", outcome, code)
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name string
		base string
		tr   http.RoundTripper
		want int
	}{
		{"timeout is 504", slow.URL, &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond}, http.StatusGatewayTimeout},
		{"connection refused is 502", closed.URL, nil, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := logrus.New()
			log.SetOutput(io.Discard)
			p := New(Config{Credentials: &fakeCredentials{}, Logger: log, Transport: tt.tr})
			rec := httptest.NewRecorder()
			p.Forward(rec, httptest.NewRequest("GET", "/x?name=SECRET-PHI", nil), testTenant(t, tt.base), "/Patient")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), "OperationOutcome") || strings.Contains(rec.Body.String(), "SECRET-PHI") {
				t.Errorf("bad outcome (must not echo the query): %s", rec.Body)
			}
		})
	}
}

// upstreamSamples records ObserveUpstream, and how much of the answer's
// body the caller had got by then.
type upstreamSamples struct {
	rec     *httptest.ResponseRecorder
	orgs    []string
	bodyLen []int
}

func (u *upstreamSamples) ObserveUpstream(org string, _ time.Duration) {
	u.orgs = append(u.orgs, org)
	u.bodyLen = append(u.bodyLen, u.rec.Body.Len())
}

// TestUpstreamLatencyEndsAtTheHeader: a partner's latency
// (Config.Observer, cqgate_upstream_duration_seconds) is observed once
// its response header is in, before any of the body is passed on; a
// request that got no answer is not observed.
func TestUpstreamLatencyEndsAtTheHeader(t *testing.T) {
	up := newUpstream(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name    string
		base    string
		samples int
	}{
		{"answered", up.URL, 1},
		{"unreachable", gone.URL, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := logrus.New()
			log.SetOutput(io.Discard)
			rec := httptest.NewRecorder()
			obs := &upstreamSamples{rec: rec}
			p := New(Config{Credentials: &fakeCredentials{}, Logger: log, Observer: obs})
			p.Forward(rec, httptest.NewRequest(http.MethodGet, "/x", nil), testTenant(t, tc.base), "/Patient/1")
			if len(obs.orgs) != tc.samples {
				t.Fatalf("%d samples, want %d", len(obs.orgs), tc.samples)
			}
			if tc.samples > 0 && (obs.orgs[0] != "1.2.3" || obs.bodyLen[0] != 0 || rec.Body.Len() == 0) {
				t.Errorf("observed for %q with %d bytes of the body passed on (of %d)", obs.orgs[0], obs.bodyLen[0], rec.Body.Len())
			}
		})
	}
}

// fakeDirectory resolves every OID to one FHIR base with a configured
// token URL.
type fakeDirectory struct{ base string }

func (f *fakeDirectory) Lookup(ctx context.Context, oid string) (*directory.Entry, error) {
	return directory.NewEntry(&directory.Organization{
		OID: oid, Name: "Test", Active: true,
		Endpoints: []directory.Endpoint{{Address: f.base, ConnectionType: "hl7-fhir-rest", Transaction: "FHIR REST", Status: "active"}},
	}, "static"), nil
}

func (f *fakeDirectory) Discover(ctx context.Context, req discovery.Request) (*discovery.Result, error) {
	base := req.FHIRBase
	u, _ := url.Parse(base)
	return &discovery.Result{TokenURL: u.Scheme + "://" + u.Host + "/token", Source: "carequality-token"}, nil
}

func TestCallerOnlyHeadersStayHere(t *testing.T) {
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	tn := testTenant(t, up.URL+"/r4")
	req := httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1", nil)
	for _, h := range []string{"X-API-Key", "X-Cqgate-Scope", "X-Purpose-Of-Use", "Cookie", "Proxy-Authorization", "Forwarded", "X-Forwarded-For", "X-Real-IP", "Baggage"} {
		req.Header.Set(h, "caller-value")
	}
	req.Header.Set("Authorization", "Bearer caller-key")
	req.Header.Set("Prefer", "return=minimal")
	newProxy(&fakeCredentials{}, 1024).Forward(httptest.NewRecorder(), req, tn, "/Patient/1")
	for name, vals := range got {
		for _, v := range vals {
			if strings.Contains(v, "caller-") {
				t.Errorf("caller header %s: %s reached the tenant", name, v)
			}
		}
	}
	if got.Get("Prefer") != "return=minimal" || got.Get("Authorization") != "Bearer tok-1" {
		t.Errorf("tenant got %v", got)
	}
}

// callerOnly knows every name of callerOnlyHeaders, and no other.
func TestCallerOnlyIsTheList(t *testing.T) {
	for _, name := range callerOnlyHeaders {
		if !callerOnly(name) {
			t.Errorf("callerOnly(%q) = false", name)
		}
	}
	for _, name := range []string{"Accept", "X-Request-Id", "Traceparent", "authorization", "X-Api-Keys", ""} {
		if callerOnly(name) {
			t.Errorf("callerOnly(%q) = true", name)
		}
	}
}

// rewrite deletes callerOnlyHeaders from the header map directly, which
// only works for canonical names.
func TestCallerOnlyHeadersAreCanonical(t *testing.T) {
	for _, name := range append(callerOnlyHeaders, RequestIDHeader, "Accept") {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q)", name, c)
		}
	}
}

// poolRecorder answers 200 and notes that it sent a request, and
// whether the request's context allowed private addresses.
type poolRecorder struct {
	sent, allowed bool
}

func (p *poolRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.sent, p.allowed = true, egress.PrivateAllowed(r.Context())
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// A tenant allowed private addresses is sent through Config.Private
// when there is one, and no other tenant ever is; without one, its
// requests carry a context that allows them.
func TestForwardPicksTheTenantsEgressPool(t *testing.T) {
	tenantFor := func(allowPrivate bool) *tenant.Tenant {
		d := &fakeDirectory{base: "https://fhir.example/r4"}
		r := &tenant.Resolver{Directory: d, Discovery: d, Orgs: map[string]tenant.Settings{"1.2.3": {AllowPrivate: allowPrivate}}}
		tn, err := r.Resolve(context.Background(), "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		return tn
	}
	for _, tt := range []struct {
		name                   string
		allowPrivate, withPool bool
		wantPrivate            bool // sent through Config.Private
		wantAllowedCtx         bool // under a context that allows private addresses
	}{
		{"allowed, with a pool of its own", true, true, true, false},
		{"allowed, one transport", true, false, false, true},
		{"not allowed, with a private pool", false, true, false, false},
		{"not allowed, one transport", false, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			public, private := &poolRecorder{}, &poolRecorder{}
			cfg := Config{Credentials: &fakeCredentials{}, Logger: logrus.New(), Transport: public}
			if tt.withPool {
				cfg.Private = private
			}
			p := New(cfg)
			rec := httptest.NewRecorder()
			p.Forward(rec, httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1", nil), tenantFor(tt.allowPrivate), "/Patient/1")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			used := public
			if tt.wantPrivate {
				used = private
			}
			if !used.sent || public.sent && private.sent {
				t.Fatalf("public sent %v, private sent %v; want only the private pool: %v", public.sent, private.sent, tt.wantPrivate)
			}
			if used.allowed != tt.wantAllowedCtx {
				t.Errorf("context allows private addresses: %v, want %v", used.allowed, tt.wantAllowedCtx)
			}
		})
	}
}
