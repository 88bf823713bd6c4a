package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/egress"
)

// FHIR servers that offer HTTP/2 get it.
func TestTransportSpeaksHTTP2WhenOffered(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 5 * time.Second})
	// The transport's own TLS settings (its session cache), trusting the
	// test server.
	tr.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i, wantResumed := range []bool{false, true} {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
			t.Fatalf("spoke %s (server saw %s), want HTTP/2", resp.Proto, body)
		}
		if resp.TLS.DidResume != wantResumed {
			t.Errorf("connection %d resumed a session: %v, want %v", i+1, resp.TLS.DidResume, wantResumed)
		}
		// The next request needs a new connection.
		tr.CloseIdleConnections()
	}
}

// A burst waits for connections rather than opening one per request, and
// the connections are kept for the next burst.
func TestTransportCapsConnectionsPerHost(t *testing.T) {
	const maxConns, burst = 3, 12
	var opened atomic.Int64
	release := make(chan struct{})
	var inside sync.WaitGroup
	inside.Add(maxConns)
	var entered atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) <= maxConns {
			inside.Done()
			<-release
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 10 * time.Second, MaxConnsPerHost: maxConns, MaxIdleConnsPerHost: maxConns})
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := func() error {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	errs := make(chan error, burst)
	for range burst {
		go func() { errs <- get() }()
	}
	// The first maxConns requests hold their connections; the rest must
	// wait for them instead of dialling.
	waitOrFail(t, &inside)
	if n := opened.Load(); n != maxConns {
		t.Errorf("%d connections open while %d requests wait, want %d", n, burst-maxConns, maxConns)
	}
	close(release)
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for range burst {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := opened.Load(); n != maxConns {
		t.Errorf("%d connections opened in all, want %d reused", n, maxConns)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("requests never reached the server")
	}
}

// A response that stalls halfway fails after the read-idle timeout; one
// that trickles, each gap shorter than it, arrives whole.
func TestTransportReadIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flush := func() { http.NewResponseController(w).Flush() }
		switch r.URL.Path {
		case "/stall":
			io.WriteString(w, `{"resourceType":"Patient",`)
			flush()
			<-release
		case "/trickle":
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				flush()
				time.Sleep(idle / 3)
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the stalled handler
	tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 5 * time.Second, ReadIdleTimeout: idle})
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	get := func(path string) (string, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	done := make(chan error, 1)
	go func() { _, err := get("/stall"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("stalled body: %v, want a read deadline error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled body was waited for without end")
	}
	if body, err := get("/trickle"); err != nil || body != "part 0;part 1;part 2;part 3;part 4;" {
		t.Errorf("trickling body: %q, %v", body, err)
	}
}

// A connection opened for an organization allowed private addresses is
// never reused for one that is not: the guard is checked when a
// connection is dialled, so a shared pool would let the second
// organization's requests through to the private address on the first
// one's connection.
func TestGuardedTransportKeepsPrivateConnectionsApart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	rt := NewGuardedTransport(TransportOptions{ResponseHeaderTimeout: 5 * time.Second})
	defer closeIdle(rt)
	get := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return err
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := get(egress.AllowPrivate(context.Background())); err != nil {
		t.Fatalf("an organization allowed private addresses: %v", err)
	}
	// The loopback connection is idle in a pool now.
	if err := get(context.Background()); err == nil {
		t.Fatal("an organization not allowed private addresses reached loopback on a pooled connection")
	}
	if err := get(egress.AllowPrivate(context.Background())); err != nil {
		t.Fatalf("the allowed organization again: %v", err)
	}
	// Picked by the organization (as the proxy does), without a
	// context value: the same two pools.
	for _, tt := range []struct {
		allowPrivate bool
		wantErr      bool
	}{{true, false}, {false, true}, {true, false}} {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rt.For(tt.allowPrivate).RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if (err != nil) != tt.wantErr {
			t.Errorf("For(%v): %v, want an error: %v", tt.allowPrivate, err, tt.wantErr)
		}
	}
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// deadlineCounter is a connection that counts its read deadlines and
// reads nothing.
type deadlineCounter struct {
	net.Conn
	set  int
	last time.Time
}

func (c *deadlineCounter) SetReadDeadline(t time.Time) error { c.set, c.last = c.set+1, t; return nil }
func (c *deadlineCounter) Read(p []byte) (int, error)        { return len(p), nil }

// idleConn sets a read deadline at least idle ahead of every Read, but
// not for every Read: once per half timeout of traffic.
func TestIdleConnMovesItsDeadlineOncePerHalfTimeout(t *testing.T) {
	const idle = time.Hour
	inner := &deadlineCounter{}
	c := &idleConn{Conn: inner, idle: idle}
	var buf [8]byte
	for range 1000 {
		start := time.Now()
		if _, err := c.Read(buf[:]); err != nil {
			t.Fatal(err)
		}
		if ahead := inner.last.Sub(start); ahead < idle || ahead > idle+idle/2+time.Second {
			t.Fatalf("read deadline %v ahead, want between %v and %v", ahead, idle, idle+idle/2)
		}
	}
	if inner.set != 1 {
		t.Errorf("%d read deadlines set for 1,000 reads within a second, want 1", inner.set)
	}
}

// MaxIdleConns caps the keep-alive connections kept for all hosts
// together: with more hosts in use than it keeps connections for, every
// request opens one; without the cap each host's connection is reused.
// ConnStats counts both, and the closes.
func TestTransportIdleConnectionsAcrossHosts(t *testing.T) {
	const hosts, rounds = 3, 4
	var urls []string
	for range hosts {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	for _, tt := range []struct {
		name       string
		maxIdle    int
		wantOpened int64
	}{
		{"fewer idle than hosts", hosts - 1, hosts * rounds},
		{"no cap", -1, hosts},
		{"default", 0, hosts},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stats := new(ConnStats)
			tr := NewTransport(TransportOptions{ResponseHeaderTimeout: 5 * time.Second, MaxIdleConns: tt.maxIdle, Conns: stats})
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for range rounds {
				for _, u := range urls { // round robin: the host used longest ago is the one whose connection went
					resp, err := client.Get(u)
					if err != nil {
						t.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			if got := stats.Opened(); got != tt.wantOpened {
				t.Errorf("opened %d connections for %d requests to %d hosts, want %d", got, hosts*rounds, hosts, tt.wantOpened)
			}
			tr.CloseIdleConnections()
			if got := stats.Open(); got != 0 {
				t.Errorf("%d connections still counted open after closing the idle ones", got)
			}
		})
	}
}

func TestMaxIdleConnsConfigZeroMeansNoCap(t *testing.T) {
	for configured, want := range map[int]int{0: -1, 1: 1, 512: 512} {
		if got := maxIdleConns(configured); got != want {
			t.Errorf("proxy.max_idle_conns %d: transport option %d, want %d", configured, got, want)
		}
	}
}

// The gateway counts the connections it opens to FHIR servers: two
// requests to one partner share one keep-alive connection.
func TestGatewayCountsFHIRConnections(t *testing.T) {
	lt := newLoopbackTenant(t)
	g := lt.gateway(t, nil)
	for i := range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient/1", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		g.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	if n := counterValue(t, g.Metrics, "cqgate_fhir_connections_opened_total", "", ""); n != 1 {
		t.Errorf("cqgate_fhir_connections_opened_total = %v after two requests to one partner, want 1", n)
	}
	if n := gaugeValue(t, g, "cqgate_fhir_connections_open", nil); n != 1 {
		t.Errorf("cqgate_fhir_connections_open = %v, want 1 (the idle keep-alive connection)", n)
	}
}
