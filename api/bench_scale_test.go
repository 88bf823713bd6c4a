package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// BenchmarkHotPathOrgs is BenchmarkHotPath's whole request (router,
// tenant resolution, warm token cache, proxy, an in-memory upstream) for
// a random organization among orgs warm ones: directory, discovery,
// reused tenant and access token cached for every one. The cost per
// request should not grow with the number of organizations (issue 18:
// orgs=10000 within 10 % of orgs=10). Run the two interleaved, e.g.
//
//	go test -run '^$' -bench 'HotPathOrgs' -count 6 -benchmem ./api
//
// reuse=1s resolves through a tenant.Reuser with proxy.reuse_resolved's
// default, as gateway.New wires it; reuse=off resolves every request
// through the directory and discovery caches. The organizations are
// picked in a fixed pseudo-random order (scale.Picks). cpu-ns/op is the
// process's CPU time (user and system, GC included) per request, which
// other load on the machine does not inflate as it does ns/op. B/org is the live
// heap the caches hold per organization after filling, token cache
// included (from 1,000 organizations on); served-B/org what serving
// each organization once adds to it (the proxy's response rewriter and
// the metrics series, up to metrics' cap on organizations).
func BenchmarkHotPathOrgs(b *testing.B) {
	for _, reuse := range []bool{true, false} {
		for _, orgs := range []int{10, 10000} {
			name := fmt.Sprintf("reuse=1s/orgs=%d", orgs)
			if !reuse {
				name = fmt.Sprintf("reuse=off/orgs=%d", orgs)
			}
			b.Run(name, func(b *testing.B) {
				sp := newScalePath(b, orgs, reuse)
				picks := scale.Picks(orgs, 1<<14)
				mask := len(picks) - 1
				b.ReportAllocs()
				i := 0
				gc0, cpu0 := gcCPU(), processCPU()
				for b.Loop() {
					sp.serve(picks[i&mask])
					i++
				}
				cpu, gc := processCPU()-cpu0, gcCPU()-gc0
				b.StopTimer()
				// The GC's share (runtime/metrics' estimate), which
				// grows with the live heap the caches hold.
				b.ReportMetric(gc*1e9/float64(max(i, 1)), "gc-cpu-ns/op")
				// CPU time, not wall time: on a shared machine a request
				// waits for a core, and that is not its cost.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(i, 1)), "cpu-ns/op")
				if err := sp.check(); err != nil {
					b.Fatal(err)
				}
				if orgs >= 1000 {
					b.ReportMetric(sp.perOrg, "B/org")
					b.ReportMetric(sp.servedPerOrg, "served-B/org")
				}
				runtime.KeepAlive(sp)
			})
		}
	}
}

// TestHotPathOrgsServes checks that the scale benchmark's setup answers
// every organization it picks, with its own token, from its own upstream
// path.
func TestHotPathOrgsServes(t *testing.T) {
	sp := newScalePath(t, 50, true)
	for _, n := range scale.Picks(50, 64) {
		sp.serve(n)
		if err := sp.check(); err != nil {
			t.Fatalf("organization %d: %v", n, err)
		}
	}
}

// scalePath is the api handler over warm caches for orgs organizations.
type scalePath struct {
	handler http.Handler
	// tmpl is the request every serve copies, with its URL and
	// RequestURI set to organization n's GET .../Patient/{id}: a path
	// written afresh each time, as a server reads it from the
	// connection, not one of orgs strings kept here (whose reading would
	// be the harness's cost of many organizations, not cqgate's).
	tmpl   http.Request
	url    url.URL
	path   []byte
	header http.Header
	req    *http.Request
	w      *discardWriter
	perOrg float64
	// servedPerOrg is the live heap serving each organization once
	// added, per organization.
	servedPerOrg float64
}

func newScalePath(tb testing.TB, orgs int, reuse bool) *scalePath {
	tb.Helper()
	tr, err := tracing.New(context.Background(), tracing.Config{Getenv: func(string) string { return "" }})
	if err != nil {
		tb.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.WarnLevel)

	remote := &http.Client{Transport: scale.HandlerTransport(&scale.Handler{}), Timeout: 10 * time.Second}
	resolver := &tenant.Resolver{
		Directory: directory.NewResolver(directory.ResolverConfig{
			Fetcher: &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "bench-directory-key", HTTPClient: remote},
		}),
		Discovery: discovery.New(discovery.Config{HTTPClient: remote}),
		Defaults:  tenant.Settings{ClientID: "gateway.bench.example", Scope: "system/Patient.read system/Observation.read"},
	}
	var tenants api.Tenants = resolver
	var reuser *tenant.Reuser
	if reuse {
		reuser = tenant.Reuse(resolver, time.Second, nil)
		tenants = scaleTenants{Resolver: resolver, reuse: reuser}
	}
	cache := assertion.NewCache(assertion.CacheConfig{})
	m := metrics.New()
	creds := proxy.NewTokens(cache, map[string]*assertion.Exchanger{scaleIdentity: {}}, m)

	// Warm every organization: directory, discovery, the reused tenant
	// and its access token. The heap that leaves is what cqgate keeps per
	// warm organization.
	ctx := context.Background()
	warm := func(n int) error {
		t, err := tenants.Resolve(ctx, scale.OID(n))
		if err != nil {
			return err
		}
		_, err = cache.Token(ctx, t.TokenKey(), scaleToken{})
		return err
	}
	if err := warm(orgs); err != nil { // lazily built state, outside the range
		tb.Fatal(err)
	}
	grew, err := scale.HeapGrowth(func() error {
		for n := range orgs {
			if err := warm(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sp := &scalePath{perOrg: float64(grew) / float64(orgs), w: &discardWriter{h: http.Header{}}}

	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{callerauth.AnonymousCaller: {Organizations: []string{"2.999.*"}, Scopes: []string{"system/*.read"}}})
	if err != nil {
		tb.Fatal(err)
	}
	sp.handler = api.New(api.Config{
		Tenants: tenants,
		Proxy: proxy.New(proxy.Config{Transport: tr.Transport(scaleUpstream{}, "cqgate.upstream", tracing.CallFHIR, tracing.InPlace()),
			Credentials: creds, Logger: log, MaxReplayBody: 1 << 20, Observer: m}),
		Tracer:       tr,
		Logger:       log,
		Observer:     m,
		MaxBodyBytes: 10 << 20,
		Policy:       policy,
	})
	sp.header = http.Header{"Accept": {"application/fhir+json"}, "User-Agent": {"bench-client/1.0"}}
	// As a server hands requests over (see BenchmarkHotPath): contexts
	// made once, outside the timed loop.
	rctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	tmpl, err := http.NewRequestWithContext(rctx, http.MethodGet, "/fhir/"+scale.OID(0)+"/Patient/"+scalePatientID, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.RemoteAddr, tmpl.Host, tmpl.Body = "127.0.0.1:40000", "127.0.0.1:8080", http.NoBody
	sp.tmpl = *tmpl
	sp.req = &http.Request{Header: http.Header{}}
	// Warm also means served once: what the proxy keeps per
	// organization (its response rewriter, kept on the reused tenant)
	// exists, and costs servedPerOrg more.
	served, err := scale.HeapGrowth(func() error {
		for n := range orgs {
			sp.serve(n)
			if err := sp.check(); err != nil {
				return fmt.Errorf("organization %d: %w", n, err)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sp.servedPerOrg = float64(served) / float64(orgs)
	if reuser != nil && reuser.Len() < orgs {
		tb.Fatalf("%d tenants reused, want %d", reuser.Len(), orgs)
	}
	return sp
}

// serve serves organization n's request once.
func (sp *scalePath) serve(n int) {
	// The request line as a server reads it: a new string (one
	// allocation), parsed into the URL.
	sp.path = strconv.AppendInt(append(append(sp.path[:0], "/fhir/"...), scale.OIDPrefix...), int64(n), 10)
	sp.path = append(sp.path, "/Patient/"+scalePatientID...)
	path := string(sp.path)
	sp.url = url.URL{Path: path}
	h := sp.req.Header
	*sp.req = sp.tmpl
	sp.req.URL, sp.req.RequestURI = &sp.url, path
	clear(h)
	for k, v := range sp.header {
		h[k] = v
	}
	sp.req.Header = h
	sp.w.reset()
	sp.handler.ServeHTTP(sp.w, sp.req)
}

func (sp *scalePath) check() error {
	if sp.w.status != http.StatusOK || sp.w.n != len(scalePatient) {
		return fmt.Errorf("status %d, %d bytes (%q)", sp.w.status, sp.w.n, sp.w.first.String())
	}
	return nil
}

// scaleTenants is what gateway.New hands the router: FHIR requests
// resolve through the Reuser.
type scaleTenants struct {
	*tenant.Resolver
	reuse *tenant.Reuser
}

func (t scaleTenants) Resolve(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return t.reuse.Resolve(ctx, oid)
}

// scaleToken is the access token of every organization: the token URL
// differs per organization, so each has a cache entry of its own.
type scaleToken struct{}

func (scaleToken) Token(context.Context) (*assertion.Token, error) {
	return &assertion.Token{AccessToken: scaleAccessToken, TokenType: "Bearer", Scope: "system/Patient.read system/Observation.read",
		ExpiresIn: time.Hour, Expiry: time.Now().Add(time.Hour)}, nil
}

// scaleUpstream is every organization's FHIR server: GET
// {FHIRBase(n)}/Patient/{id} with the bearer token answers a Patient.
type scaleUpstream struct{}

var (
	scalePatient = bytes.Repeat([]byte("x"), 2048)
	scaleCT      = []string{"application/fhir+json;charset=utf-8"}
	scaleCL      = []string{strconv.Itoa(len(scalePatient))}
)

func (scaleUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	status, body := http.StatusOK, scalePatient
	switch {
	case req.Header.Get("Authorization") != "Bearer "+scaleAccessToken:
		status, body = http.StatusUnauthorized, nil
	case req.Method != http.MethodGet || req.URL.Host != "fhir-ehr.scale.example" ||
		!strings.HasPrefix(req.URL.Path, "/r4/") || !strings.HasSuffix(req.URL.Path, "/Patient/"+scalePatientID):
		status, body = http.StatusNotFound, nil
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": scaleCT, "Content-Length": scaleCL},
		ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body)), Request: req,
	}, nil
}

const (
	scaleAccessToken = "bench-scale-access-token"
	scalePatientID   = "1316024"
	scaleIdentity    = "default"
)

// gcCPU is the CPU time the garbage collector has used, in seconds, as
// runtime/metrics estimates it.
func gcCPU() float64 {
	s := []rtmetrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64()
}

// processCPU is the CPU time the process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
