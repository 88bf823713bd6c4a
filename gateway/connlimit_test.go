package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/metrics"
)

// Listen applies server.max_connections: with both connections held open
// by keep-alive callers, a third caller is still answered, because the
// connection idle the longest is closed for it and counted in
// cqgate_connections_closed_for_room_total{state="idle"}; the callers whose connection was
// closed are answered again on a new one.
func TestServeAtMaxConnectionsClosesTheLongestIdle(t *testing.T) {
	m := metrics.New()
	base := serveCapped(t, 2, m, 0)
	callers := make([]*http.Client, 3)
	for i := range callers {
		callers[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		defer callers[i].CloseIdleConnections()
	}
	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get(base)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "ok" {
			t.Fatalf("answer %d %q", resp.StatusCode, b)
		}
	}
	get(callers[0])
	get(callers[1])
	time.Sleep(50 * time.Millisecond) // both connections idle
	get(callers[2])
	get(callers[0]) // its connection was closed: the client dials again
	if n := gaugeValue(t, &Gateway{Metrics: m}, "cqgate_connections_open", nil); n < 1 || n > 2 {
		t.Errorf("cqgate_connections_open = %v, want 1 or 2 (at most the cap)", n)
	}
	if n := counterValue(t, m, "cqgate_connections_closed_for_room_total", "state", "idle"); n < 1 {
		t.Errorf("cqgate_connections_closed_for_room_total{state=\"idle\"} = %v, want at least 1", n)
	}
}

// serveCapped runs Serve on loopback with max_inflight and
// max_connections both max, counting into m, until the test ends; the
// handler answers "ok" after delay. It returns a FHIR URL on it.
func serveCapped(t *testing.T, max int, m *metrics.Metrics, delay time.Duration) string {
	t.Helper()
	cfg := config.Default().Server
	cfg.MaxInflight, cfg.MaxConnections = max, max
	ln, limit, err := Listen("127.0.0.1:0", cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if limit == nil {
		t.Fatal("Listen with max_connections gave no ServeOption")
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		_, _ = io.WriteString(w, "ok")
	})
	go func() { served <- Serve(ctx, ln, h, cfg, log, limit) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/fhir/1.2.3/Patient/1"
}

func TestListenWithoutACapIsPlain(t *testing.T) {
	cfg := config.Default().Server
	cfg.MaxConnections = 0
	ln, limit, err := Listen("127.0.0.1:0", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if limit != nil {
		t.Error("Listen with max_connections 0 gave a ServeOption")
	}
}

// Many keep-alive callers above the cap: their idle connections are
// closed for each other over and over, and every GET still gets its
// answer, because an HTTP client retries an idempotent request on a
// reused connection that the server closed.
func TestServeManyKeepAliveCallersAboveMaxConnections(t *testing.T) {
	m := metrics.New()
	url := serveCapped(t, 8, m, 200*time.Microsecond)
	const callers, each = 32, 25
	errs := make(chan error, callers*each)
	var wg sync.WaitGroup
	for range callers {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := c.Get(url)
				if err != nil {
					errs <- err
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != "ok" {
					errs <- fmt.Errorf("answer %d %q", resp.StatusCode, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 3 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d requests failed", n, callers*each)
	}
	if c := counterValue(t, m, "cqgate_connections_closed_for_room_total", "state", "idle"); c == 0 {
		t.Error("no idle connection was closed for room: the test did not reach the cap")
	}
	if open := gaugeValue(t, &Gateway{Metrics: m}, "cqgate_connections_open", nil); open > 8 {
		t.Errorf("cqgate_connections_open = %v, above the cap", open)
	}
}
