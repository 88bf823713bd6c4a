package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/api"
	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// BenchmarkHotPath serves GET /fhir/{oid}/Patient/{id} with everything
// warm and nothing on the network: the real router (api.New: access log,
// recoverer, authentication, policy, path and OID checks, metrics), the
// real tenant resolution (tenant.Reuser over tenant.Resolver over the
// directory and discovery caches, filled once from memory), the real
// token cache (assertion.Cache, warm) and the real proxy (proxy.New),
// whose upstream transport is a stub that answers a 2 KB Patient from
// memory. The credentials are the real proxy.Tokens gateway.New builds
// (the tenant's token context as cache key, an exchanger that is never
// called on a warm cache, metrics counted through an observer that also
// counts exchanges); only the Tenants adapter is a stand-in.
//
// auth=none and auth=api_key (one key, X-API-Key) resolve through a
// tenant.Reuser with proxy.reuse_resolved's default of 1s, as gateway.New
// wires it; auth=none,reuse=off resolves every request through the
// tenant.Resolver, with no Reuser: what a tenant nothing vouches for
// costs at proxy.reuse_resolved: 0 (the gateway reuses every tenant its
// cached entries vouch for, whatever that setting says), response
// rewriter included, since it is kept on the reused tenant. The logger is at warn, as bench/run.sh runs cqgate;
// audit is off. The request and the ResponseWriter are reused, so the
// numbers are cqgate's own work per request, without net/http's server
// side: what a profile of this benchmark shows is what cqgate (with gin
// and its forwarder on net/http) allocates. upstream-stub-only is the stub's
// own cost, to subtract. The whole gateway as gateway.New assembles it is
// bench/gatewaybench's BenchmarkHandler.
func BenchmarkHotPath(b *testing.B) {
	for _, bc := range []struct {
		name  string
		auth  string
		reuse bool
	}{
		{"auth=none", callerauth.MethodNone, true},
		{"auth=api_key", callerauth.MethodAPIKey, true},
		{"auth=none,reuse=off", callerauth.MethodNone, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hp := newHotPath(b, bc.auth, bc.reuse)
			b.ReportAllocs()
			n, cpu0 := 0, processCPU()
			for b.Loop() {
				hp.serve()
				n++
			}
			// CPU time, not wall time (see BenchmarkHotPathOrgs).
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(max(n, 1)), "cpu-ns/op")
			b.StopTimer()
			if err := hp.check(); err != nil {
				b.Fatal(err)
			}
			if n := hp.exchanges.Load(); n != 0 {
				b.Fatalf("%d token exchanges on a warm cache", n)
			}
		})
	}
	b.Run("upstream-stub-only", func(b *testing.B) {
		up := newUpstream()
		req, err := http.NewRequest(http.MethodGet, scale.FHIRBase(hotOrg)+"/Patient/"+patientID, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+accessToken)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := up.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// TestHotPathServes checks the benchmark's setup answers what it should
// (so that BenchmarkHotPath measures a working path).
func TestHotPathServes(t *testing.T) {
	for _, auth := range []string{callerauth.MethodNone, callerauth.MethodAPIKey} {
		hp := newHotPath(t, auth, true)
		for range 3 {
			hp.serve()
			if err := hp.check(); err != nil {
				t.Fatalf("%s: %v", auth, err)
			}
		}
	}
}

func init() { gin.SetMode(gin.ReleaseMode) }

const (
	hotOrg      = 1
	patientID   = "1316024"
	accessToken = "bench-access-token-c2lnbmF0dXJl"
	callerKey   = "bench-caller-key-0123456789abcdef"
	identity    = "default"
)

// hotPath is a router with warm caches and a request to serve again and
// again.
type hotPath struct {
	handler   http.Handler
	tmpl      *http.Request
	header    http.Header // the request's headers as the caller sent them
	req       *http.Request
	w         *discardWriter
	exchanges atomic.Int64
}

func newHotPath(tb testing.TB, auth string, reuse bool, opts ...hotOption) *hotPath {
	tb.Helper()
	var o hotOptions
	for _, opt := range opts {
		opt(&o)
	}
	tr := o.tracing
	if tr == nil {
		// As gateway.New wires it without an exporter: propagation only.
		var err error
		if tr, err = tracing.New(context.Background(), tracing.Config{Getenv: func(string) string { return "" }}); err != nil {
			tb.Fatal(err)
		}
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(logrus.WarnLevel) // as bench/run.sh runs cqgate

	// The directory and the FHIR server's /metadata, answered from
	// memory; the caches are filled by the first request.
	remote := &http.Client{Transport: scale.HandlerTransport(&scale.Handler{}), Timeout: 10 * time.Second}
	resolver := &tenant.Resolver{
		Directory: directory.NewResolver(directory.ResolverConfig{
			Fetcher: &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "bench-directory-key", HTTPClient: remote},
		}),
		Discovery: discovery.New(discovery.Config{HTTPClient: remote}),
		Defaults:  tenant.Settings{ClientID: "gateway.bench.example", Scope: "system/Patient.read system/Observation.read"},
	}
	var tenants api.Tenants = resolver
	if reuse {
		// proxy.reuse_resolved's default.
		tenants = reusedTenants{Resolver: resolver, reuse: tenant.Reuse(resolver, time.Second, nil)}
	}

	m := metrics.New()
	hp := &hotPath{w: &discardWriter{h: http.Header{}}}
	cache := assertion.NewCache(assertion.CacheConfig{})
	creds := proxy.NewTokens(cache, map[string]*assertion.Exchanger{identity: {}}, countingObserver{Metrics: m, exchanges: &hp.exchanges})
	t, err := resolver.Resolve(context.Background(), scale.OID(hotOrg))
	if err != nil {
		tb.Fatal(err)
	}
	// Warm: the access token in the cache under t's token context.
	if _, err := cache.Token(context.Background(), t.TokenKey(), staticSource{}); err != nil {
		tb.Fatal(err)
	}

	cfg := api.Config{
		Tenants: tenants,
		Proxy: proxy.New(proxy.Config{Transport: tr.Transport(newUpstream(), "cqgate.upstream", tracing.CallFHIR, tracing.InPlace()),
			Credentials: creds, Logger: log, MaxReplayBody: 1 << 20, Observer: m}),
		Tracer:       tr,
		Logger:       log,
		Observer:     m,
		MaxBodyBytes: 10 << 20,
	}
	caller := callerauth.AnonymousCaller
	hp.header = http.Header{
		"Accept":     {"application/fhir+json"},
		"User-Agent": {"bench-client/1.0"},
	}
	if auth == callerauth.MethodAPIKey {
		caller = "bench-client"
		keys, err := callerauth.NewAPIKeys(map[string]string{caller: callerauth.HashKey(callerKey)}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Auth = keys
		hp.header.Set(callerauth.HeaderAPIKey, callerKey)
	}
	for k, v := range o.header {
		hp.header[k] = v
	}
	cfg.Policy, err = callerauth.NewPolicy(map[string]callerauth.Rule{caller: {Organizations: []string{"2.999.*"}, Scopes: []string{"system/*.read"}}})
	if err != nil {
		tb.Fatal(err)
	}
	hp.handler = api.New(cfg)

	hp.tmpl, err = http.NewRequest(http.MethodGet, "/fhir/"+scale.OID(hotOrg)+"/Patient/"+patientID, nil)
	if err != nil {
		tb.Fatal(err)
	}
	// A server's request context can be cancelled (the proxy's
	// outbound request carries it); made once here, as
	// net/http's own per-request work is not what is measured.
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	hp.tmpl = hp.tmpl.WithContext(ctx)
	hp.tmpl.RemoteAddr = "127.0.0.1:40000"
	hp.tmpl.Host = "127.0.0.1:8080"
	hp.tmpl.RequestURI = hp.tmpl.URL.RequestURI()
	hp.tmpl.Body = http.NoBody
	hp.req = new(http.Request)
	hp.req.Header = http.Header{}
	hp.serve()
	if err := hp.check(); err != nil {
		tb.Fatal(err)
	}
	return hp
}

// serve serves the request once, as a server would hand it over: the
// same request value and headers every time (the handler may change
// both), the writer emptied.
func (hp *hotPath) serve() {
	h := hp.req.Header
	*hp.req = *hp.tmpl
	clear(h)
	for k, v := range hp.header {
		h[k] = v
	}
	hp.req.Header = h
	hp.w.reset()
	hp.handler.ServeHTTP(hp.w, hp.req)
}

// check says what is wrong with the last answer.
func (hp *hotPath) check() error {
	switch {
	case hp.w.status != http.StatusOK:
		return fmt.Errorf("status %d, body %q", hp.w.status, hp.w.first.String())
	case hp.w.n != len(patientJSON):
		return fmt.Errorf("body of %d bytes, want %d", hp.w.n, len(patientJSON))
	case hp.w.h.Get(proxy.RequestIDHeader) == "":
		return errors.New("no X-Request-Id on the answer")
	}
	return nil
}

// discardWriter is a reusable ResponseWriter that counts the body and
// keeps its first bytes for error messages.
type discardWriter struct {
	h      http.Header
	status int
	n      int
	first  bytes.Buffer
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.status != http.StatusOK && w.first.Len() < 512 {
		w.first.Write(p[:min(len(p), 512-w.first.Len())])
	}
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
	w.first.Reset()
}

// reusedTenants is what gateway.New hands the router: FHIR requests
// resolve through the Reuser, everything else through the Resolver.
type reusedTenants struct {
	*tenant.Resolver
	reuse *tenant.Reuser
}

func (t reusedTenants) Resolve(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return t.reuse.Resolve(ctx, oid)
}

// countingObserver counts token exchanges (none on a warm cache) on top
// of the metrics.
type countingObserver struct {
	*metrics.Metrics
	exchanges *atomic.Int64
}

func (o countingObserver) TokenExchange(e metrics.ExchangeOutcome) {
	o.exchanges.Add(1)
	o.Metrics.TokenExchange(e)
}

type staticSource struct{}

func (staticSource) Token(context.Context) (*assertion.Token, error) {
	return &assertion.Token{AccessToken: accessToken, TokenType: "Bearer", Scope: "system/Patient.read system/Observation.read",
		ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}, nil
}

// upstream is the tenant's FHIR server: it answers GET {base}/Patient/{id}
// with the bearer token with a 2 KB Patient, from memory.
type upstream struct {
	path string
	ct   []string
	cl   []string
}

func newUpstream() *upstream {
	base := scale.FHIRBase(hotOrg)
	return &upstream{
		path: base[strings.Index(base, "/r4/"):] + "/Patient/" + patientID,
		ct:   []string{"application/fhir+json;charset=utf-8"},
		cl:   []string{strconv.Itoa(len(patientJSON))},
	}
}

func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	status, body := http.StatusOK, patientJSON
	switch {
	case req.Header.Get("Authorization") != "Bearer "+accessToken:
		status, body = http.StatusUnauthorized, nil
	case req.Method != http.MethodGet || req.URL.Path != u.path || req.URL.Host != "fhir-ehr.scale.example":
		status, body = http.StatusNotFound, nil
	}
	return &http.Response{
		StatusCode:    status,
		Status:        http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": u.ct, "Content-Length": u.cl},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(bytes.NewReader(body)),
		Request:       req,
	}, nil
}

// patientJSON is a 2 KB FHIR R4 Patient, about what a Cerner read returns.
var patientJSON = []byte(`{"resourceType":"Patient","id":"1316024","meta":{"versionId":"12","lastUpdated":"2024-03-05T18:22:41.000Z"},` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><b>Patient</b></p><p><b>Name</b>: PETERS, TIMMY</p><p><b>DOB</b>: Sep 13, 2012</p><p><b>Birth Sex</b>: Male</p><p><b>Administrative Gender</b>: Male</p><p><b>Marital Status</b>: Never Married</p></div>"},` +
	`"extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3","display":"White"}},{"url":"text","valueString":"White"}]},` +
	`{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2186-5","display":"Not Hispanic or Latino"}},{"url":"text","valueString":"Not Hispanic or Latino"}]},` +
	`{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"M"}],` +
	`"identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical record number"}],"text":"MRN"},"system":"urn:oid:2.16.840.1.113883.6.1000","value":"10002701","period":{"start":"2020-02-11T16:02:21.000Z"}},` +
	`{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"AN","display":"Account number"}],"text":"Federated Person Principle"},"system":"urn:oid:2.16.840.1.113883.3.13.6","value":"URN:CERNER:IDENTITY-FEDERATION:REALM:687F29DD-69DD-4DE5-ACB1-FD8A2241EF3A:PRINCIPAL:3UM7Z6A7DGUK2F5"}],` +
	`"active":true,"name":[{"use":"official","text":"PETERS, TIMMY","family":"PETERS","given":["TIMMY"],"period":{"start":"2012-09-17T15:03:09.000Z"}}],` +
	`"telecom":[{"system":"phone","value":"8168229121","use":"home","period":{"start":"2012-09-17T15:03:09.000Z"}},{"system":"email","value":"timmy.peters@example.com","use":"home"}],` +
	`"gender":"male","birthDate":"2012-09-13",` +
	`"address":[{"use":"home","text":"1234 Main St\nKansas City, MO 64108\nUS","line":["1234 Main St"],"city":"Kansas City","district":"Jackson","state":"MO","postalCode":"64108","country":"US","period":{"start":"2012-09-17T15:03:09.000Z"}}],` +
	`"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S","display":"Never Married"}],"text":"Single"},` +
	`"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en","display":"English"}],"text":"English"},"preferred":true}],` +
	`"generalPractitioner":[{"reference":"Practitioner/4122622","display":"Cerner Test, Physician - Hospitalist Cerner"}]}`)
