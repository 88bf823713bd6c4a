package scale_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/tenant"
)

// The synthetic documents are what cqgate's own parsers accept, with the
// FHIR R4 endpoint and the carequality-token where they should be.
func TestDocuments(t *testing.T) {
	for _, n := range []int{0, 7, 9999, 123456} {
		org, err := directory.ParseR4Organization(scale.Organization(n))
		if err != nil {
			t.Fatalf("Organization(%d): %v", n, err)
		}
		ep, ok := org.FHIREndpoint()
		switch {
		case org.OID != scale.OID(n) || !org.Active || !strings.HasSuffix(org.Name, fmt.Sprint(n)):
			t.Errorf("Organization(%d) = %+v", n, org)
		case len(org.Endpoints) != 3:
			t.Errorf("Organization(%d) has %d endpoints, want 3", n, len(org.Endpoints))
		case !ok || ep.Address != scale.FHIRBase(n) || ep.FHIRVersion != "R4":
			t.Errorf("Organization(%d): FHIR endpoint %+v, %v", n, ep, ok)
		}
		for _, resources := range []int{0, scale.MetadataResources, 1000} {
			uris, err := discovery.ParseCapabilityStatement(scale.CapabilityStatement(n, resources))
			if err != nil {
				t.Fatalf("CapabilityStatement(%d, %d): %v", n, resources, err)
			}
			if uris.CarequalityToken != scale.CarequalityTokenURL(n) || uris.Token != scale.TokenURL(n) {
				t.Errorf("CapabilityStatement(%d, %d): %+v", n, resources, uris)
			}
		}
	}
}

// The Handler answers the directory and metadata of every synthetic
// organization, through the loopback server and in memory, and 404
// otherwise.
func TestHandler(t *testing.T) {
	srv := scale.NewServer()
	defer srv.Close()
	inMemory := &http.Client{Transport: scale.HandlerTransport(srv.Handler), Timeout: 10 * time.Second}
	for name, c := range map[string]*http.Client{"loopback": srv.Client(), "in memory": inMemory} {
		for _, tc := range []struct {
			url    string
			status int
			want   string
		}{
			{scale.DirectoryURL + "/Organization/" + scale.OID(42), http.StatusOK, `"id":"2.999.42"`},
			{scale.FHIRBase(42) + "/metadata", http.StatusOK, scale.CarequalityTokenURL(42)},
			{scale.FHIRBase(42) + "/.well-known/udap", http.StatusNotFound, ""},
			{scale.DirectoryURL + "/Organization/2.999.042", http.StatusNotFound, ""},
			{scale.DirectoryURL + "/Organization/1.2.3", http.StatusNotFound, ""},
			{"https://fhir-ehr.scale.example/r4/0000002a-5ca1-4e00-8000-00000000002b/metadata", http.StatusNotFound, ""},
		} {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatalf("%s: GET %s: %v", name, tc.url, err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: GET %s: %d %.200s", name, tc.url, resp.StatusCode, body)
			}
		}
	}
	if err := srv.Quiesce(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	dir, meta, other := srv.Counts()
	if dir != 2 || meta != 2 || other != 8 {
		t.Errorf("counts: %d directory, %d metadata, %d other; want 2, 2, 8", dir, meta, other)
	}
}

// caches are cqgate's directory, discovery and tenant caches, wired as
// gateway.New wires them, in front of a scale.Server.
type caches struct {
	dir    *directory.Resolver
	disc   *discovery.Discoverer
	tenant *tenant.Resolver
	reuse  *tenant.Reuser
}

func newCaches(srv *scale.Server) *caches {
	c := &caches{
		dir: directory.NewResolver(directory.ResolverConfig{
			Fetcher: &directory.R4Client{BaseURL: scale.DirectoryURL, APIKey: "scale-directory-key", HTTPClient: srv.Client()},
		}),
		disc: discovery.New(discovery.Config{HTTPClient: srv.Client()}),
	}
	c.tenant = &tenant.Resolver{
		Directory: c.dir,
		Discovery: c.disc,
		Defaults:  tenant.Settings{ClientID: "gateway.scale.example", Scope: tenant.CanonicalScope("system/Patient.read system/Observation.read")}, // as the gateway's settings write it
	}
	// proxy.reuse_resolved is 1s by default; an hour keeps every
	// organization reused for the measurement, as it is while its
	// requests keep coming.
	c.reuse = tenant.Reuse(c.tenant, time.Hour, nil)
	return c
}

// what fills one kind of cache for organization n.
type what struct {
	name string
	fill func(ctx context.Context, c *caches, n int) error
}

func checkTenant(t *tenant.Tenant, err error, n int) error {
	if err == nil && t.TokenURL != scale.CarequalityTokenURL(n) {
		err = fmt.Errorf("%s: token URL %s", t.OID, t.TokenURL)
	}
	return err
}

var whats = []what{
	{"directory.Resolver", func(ctx context.Context, c *caches, n int) error {
		_, err := c.dir.Lookup(ctx, scale.OID(n))
		return err
	}},
	{"discovery.Discoverer", func(ctx context.Context, c *caches, n int) error {
		_, err := c.disc.Discover(ctx, discovery.Request{FHIRBase: scale.FHIRBase(n)})
		return err
	}},
	{"tenant.Resolver (directory + discovery)", func(ctx context.Context, c *caches, n int) error {
		t, err := c.tenant.Resolve(ctx, scale.OID(n))
		return checkTenant(t, err, n)
	}},
	{"tenant.Reuser over it (as FHIR requests resolve)", func(ctx context.Context, c *caches, n int) error {
		t, err := c.reuse.Resolve(ctx, scale.OID(n))
		return checkTenant(t, err, n)
	}},
}

// heapPerOrg fills fresh caches with orgs organizations the way w does
// and returns the live heap they hold per organization.
func heapPerOrg(tb testing.TB, w what, orgs int) float64 {
	tb.Helper()
	srv := scale.NewServer()
	defer srv.Close()
	c := newCaches(srv)
	perOrg, err := srv.FillCaches(context.Background(), orgs, func(ctx context.Context, n int) error { return w.fill(ctx, c, n) })
	if err != nil {
		tb.Fatal(err)
	}
	if p := os.Getenv("CQGATE_SCALE_HEAPPROFILE"); p != "" && orgs >= 10000 && w.name == whats[len(whats)-1].name {
		writeHeapProfile(tb, p)
	}
	runtime.KeepAlive(c)
	return perOrg
}

func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("heap profile (in use after filling) written to %s; read it with go tool pprof -sample_index=inuse_space -top %s", path, path)
}

// scaleRequested reports whether the scale study should run: with
// CQGATE_SCALE=1 or when benchmarks were asked for.
func scaleRequested() bool {
	if os.Getenv("CQGATE_SCALE") != "" {
		return true
	}
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// TestScaleMemory: the live heap each cached organization costs, in
// cqgate's directory cache, its discovery cache and the tenant resolver
// on top of both, at 1,000 and 10,000 organizations (the target is at
// most 2 KB per organization). It fills the real caches through the real
// directory and discovery clients from a loopback server, so it runs
// only with CQGATE_SCALE=1 or -bench. With CQGATE_SCALE_HEAPPROFILE=file
// it also writes the heap profile after filling the Reuser (and so
// everything behind it) with 10,000 organizations, every allocation
// sampled.
func TestScaleMemory(t *testing.T) {
	if !scaleRequested() {
		t.Skip("the scale study fills 44,000 organizations over loopback; set CQGATE_SCALE=1 (or run with -bench) to run it")
	}
	if os.Getenv("CQGATE_SCALE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "live heap per cached organization (each row on fresh caches):\n%-50s %12s %12s\n", "filled through", "1,000 orgs", "10,000 orgs")
	for _, w := range whats {
		small, large := heapPerOrg(t, w, 1000), heapPerOrg(t, w, 10000)
		fmt.Fprintf(&b, "%-50s %10.0f B %10.0f B\n", w.name, small, large)
	}
	t.Log(b.String())
}
