package gatewaybench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/setup"
	"github.com/cqgate/cqgate/bench/scale"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
)

// stubHost is where the in-memory gateway believes the benchmark
// upstream lives; no socket is ever opened to it.
const stubHost = "127.0.0.1:9"

// inMemory is a gateway built by gateway.New, as cmd/cqgate builds it,
// whose every outbound call (directory, metadata, token, FHIR) is
// answered by the benchmark upstream's handler in memory, and a request
// to serve again and again into a reusable ResponseWriter.
type inMemory struct {
	handler http.Handler
	client  *http.Client // to the stub, in memory
	tmpl    *http.Request
	req     *http.Request
	header  http.Header
	w       *discardWriter
}

func newInMemory(tb testing.TB) *inMemory {
	tb.Helper()
	stub := fhirstub.New(fhirstub.Config{APIKey: apiKey})
	transport := scale.HandlerTransport(stub)
	m := &inMemory{client: &http.Client{Transport: transport, Timeout: 30 * time.Second}, w: &discardWriter{h: http.Header{}}}

	dir := tb.TempDir()
	certFile, keyFile, err := setup.WriteSelfSigned(dir, clientID)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Parse([]byte(setup.CqgateYAML("127.0.0.1:0", "http://"+stubHost+"/directory", certFile, keyFile, clientID, []string{warmOID})))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Directory.APIKey = apiKey
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
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
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log, Transport: transport, DirectoryTransport: transport})
	if err != nil {
		tb.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := g.WaitReady(wctx); err != nil {
		tb.Fatal(err)
	}
	m.handler = g.Handler

	m.tmpl, err = http.NewRequest(http.MethodGet, "/fhir/"+warmOID+"/Patient/"+patientID, nil)
	if err != nil {
		tb.Fatal(err)
	}
	// A server's request context can be cancelled (ReverseProxy relies
	// on that, not on CloseNotify); made once, as net/http's own
	// per-request work is not what is measured here.
	m.tmpl = m.tmpl.WithContext(ctx)
	m.tmpl.RemoteAddr = "127.0.0.1:40000"
	m.tmpl.Host = "127.0.0.1:8080" // as a server sets it; cqgate builds its own URLs on it
	m.tmpl.RequestURI = m.tmpl.URL.RequestURI()
	m.tmpl.Body = http.NoBody
	m.header = http.Header{"Accept": {"application/fhir+json"}, "User-Agent": {"bench-client/1.0"}}
	m.req = &http.Request{Header: http.Header{}}
	m.serve() // warms the directory, discovery and token caches
	if err := m.check(); err != nil {
		tb.Fatal(err)
	}
	return m
}

func (m *inMemory) serve() {
	h := m.req.Header
	*m.req = *m.tmpl
	clear(h)
	for k, v := range m.header {
		h[k] = v
	}
	m.req.Header = h
	m.w.reset()
	m.handler.ServeHTTP(m.w, m.req)
}

func (m *inMemory) check() error {
	if m.w.status != http.StatusOK || m.w.n < 1000 {
		return fmt.Errorf("status %d, %d bytes: %q", m.w.status, m.w.n, m.w.first.String())
	}
	return nil
}

// BenchmarkHandler serves GET /fhir/{oid}/Patient/{id} with the whole
// gateway handler as gateway.New assembles it (the configuration
// bench/run.sh gives cqgate: log level warn, metrics on, audit off, a PEM
// key), warm caches, and no sockets: the benchmark upstream's handler
// answers every outbound call in memory. The request and the
// ResponseWriter are reused, so net/http's server side is not measured
// either. stub-only is the in-memory upstream's own cost for the same
// Patient read, to subtract.
func BenchmarkHandler(b *testing.B) {
	m := newInMemory(b)
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		n, cpu0 := 0, processCPU()
		for b.Loop() {
			m.serve()
			n++
		}
		// CPU time, not wall time: on a shared machine a request waits
		// for a core, and that is not its cost.
		b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(max(n, 1)), "cpu-ns/op")
		b.StopTimer()
		if err := m.check(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("stub-only", func(b *testing.B) {
		tok, err := fhirstub.FetchToken(context.Background(), m.client, "http://"+stubHost, warmOID)
		if err != nil {
			b.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodGet, "http://"+stubHost+"/o/"+warmOID+"/fhir/Patient/"+patientID, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/fhir+json")
		b.ReportAllocs()
		for b.Loop() {
			resp, err := m.client.Transport.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatal(resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// The in-memory gateway answers through the benchmark upstream.
func TestInMemoryHandlerServes(t *testing.T) {
	m := newInMemory(t)
	for range 3 {
		m.serve()
		if err := m.check(); err != nil {
			t.Fatal(err)
		}
	}
}

// discardWriter is a reusable ResponseWriter that counts the body and
// keeps the first bytes of an error answer.
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

// processCPU is the CPU time the process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
