package gatewaybench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/load"
	"github.com/cqgate/cqgate/bench/internal/setup"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
)

const (
	warmOID   = "2.999.7.1"
	coldOID   = "2.999.7.2"
	patientID = "1316024"
	clientID  = "bench.cqgate.test"
	apiKey    = "bench-directory-key"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// env is an upstream stub and a gateway in front of it.
type env struct {
	stub     *fhirstub.Server
	upstream *httptest.Server
	gateway  *httptest.Server
}

// gatewayLabels mark the gateway's goroutines in CPU profiles.
var gatewayLabels = pprof.Labels("role", "gateway")

func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{stub: fhirstub.New(fhirstub.Config{APIKey: apiKey, Delay: 5 * time.Millisecond})}
	e.upstream = httptest.NewServer(e.stub)
	tb.Cleanup(e.upstream.Close)

	dir := tb.TempDir()
	certFile, keyFile, err := setup.WriteSelfSigned(dir, clientID)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Parse([]byte(setup.CqgateYAML("127.0.0.1:0", e.upstream.URL+"/directory", certFile, keyFile, clientID, []string{warmOID, coldOID})))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Directory.APIKey = apiKey
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	// As cmd/cqgate does: JSON logs at the configured level (warn, so
	// the per-request access log at info is not formatted).
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	level, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		tb.Fatal(err)
	}
	log.SetLevel(level)

	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	var g *gateway.Gateway
	// Goroutines inherit their creator's labels: building and starting
	// the gateway under the label marks everything it runs.
	pprof.Do(ctx, gatewayLabels, func(ctx context.Context) {
		g, err = gateway.New(ctx, cfg, gateway.Options{Logger: log})
		if err != nil {
			return
		}
		e.gateway = httptest.NewUnstartedServer(g.Handler)
		e.gateway.Start()
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.gateway.Close)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := g.WaitReady(wctx); err != nil {
		tb.Fatal(err)
	}
	return e
}

func (e *env) gatewayURL(oid string) string {
	return e.gateway.URL + "/fhir/" + oid + "/Patient/" + patientID
}

func (e *env) directURL(oid string) string {
	return e.upstream.URL + "/o/" + oid + "/fhir/Patient/" + patientID
}

func get(tb testing.TB, rawURL string, header http.Header) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// The harness measures a working gateway: it answers through the
// benchmark upstream, and concurrent first requests for a new
// organization cost one directory lookup, one metadata fetch and one
// token exchange.
func TestHarnessServesThroughTheGateway(t *testing.T) {
	e := newEnv(t)
	code, body := get(t, e.gatewayURL(warmOID), nil)
	if code != http.StatusOK {
		t.Fatalf("GET through the gateway: %d %s", code, body)
	}
	res, err := load.Burst(context.Background(), load.BurstConfig{URL: e.gatewayURL(coldOID), N: 32, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[http.StatusOK] != 32 {
		t.Fatalf("burst answers %v, %d errors (%s)", res.Status, res.Errors, res.FirstError)
	}
	st := e.stub.Stats()
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"directory lookups", st.Directory[coldOID], 1},
		{"metadata fetches", st.Metadata[coldOID], 1},
		{"token exchanges", st.Token[coldOID], 1},
		{"Patient reads answered", st.PatientOK, 33},
		{"Patient reads refused", st.PatientUnauthorized, 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
}

// benchLoad GETs rawURL from b.N iterations spread over 32 goroutines
// per CPU, each on its own keep-alive connection.
func benchLoad(b *testing.B, rawURL string, header http.Header) {
	req, err := load.NewRequest(rawURL, header)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := load.NewConn(req)
		defer c.Close()
		for pb.Next() {
			code, err := c.Do(time.Now().Add(30 * time.Second))
			if err == nil && code != http.StatusOK {
				err = &statusError{code}
			}
			if err != nil {
				fail(err)
				return
			}
		}
	})
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// BenchmarkGateway: requests through cqgate with warm caches.
func BenchmarkGateway(b *testing.B) {
	e := newEnv(b)
	if code, body := get(b, e.gatewayURL(warmOID), nil); code != http.StatusOK {
		b.Fatalf("warm-up: %d %s", code, body)
	}
	benchLoad(b, e.gatewayURL(warmOID), nil)
}

// BenchmarkBareProxy: the same requests through the bare reverse proxy
// baseline (with a buffer pool, as cqgate has), labelled role=bare.
func BenchmarkBareProxy(b *testing.B) {
	e := newEnv(b)
	tok, err := fhirstub.FetchToken(context.Background(), nil, e.upstream.URL, warmOID)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(e.upstream.URL)
	px := httptest.NewUnstartedServer(setup.BareProxy(u, "Bearer "+tok, true))
	pprof.Do(context.Background(), pprof.Labels("role", "bare"), func(context.Context) { px.Start() })
	defer px.Close()
	benchLoad(b, px.URL+"/o/"+warmOID+"/fhir/Patient/"+patientID, nil)
}

// BenchmarkDirect: the same requests straight to the upstream.
func BenchmarkDirect(b *testing.B) {
	e := newEnv(b)
	tok, err := fhirstub.FetchToken(context.Background(), nil, e.upstream.URL, warmOID)
	if err != nil {
		b.Fatal(err)
	}
	benchLoad(b, e.directURL(warmOID), http.Header{"Authorization": {"Bearer " + tok}})
}
