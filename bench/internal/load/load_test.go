package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i + 1)
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", []time.Duration{7}, 99.9, 7},
		{"median of 100", hundred, 50, 50},
		{"p99 of 100", hundred, 99, 99},
		{"p99.9 of 100 is the max", hundred, 99.9, 100},
		{"p100", hundred, 100, 100},
		{"p99.9 of 1000", thousand, 99.9, 999},
		{"p75 of 1000", thousand, 75, 750},
		{"tiny p", hundred, 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("Percentile(p=%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize([]time.Duration{4, 1, 3, 2})
	want := Latency{P50: 2, P75: 3, P90: 4, P99: 4, P999: 4, Max: 4, Mean: 2}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
}

func TestRunCountsStatusesAndSendsHeaders(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" || r.URL.RequestURI() != "/fhir/x?y=1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(strings.Repeat("p", 2048)))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		URL:         srv.URL + "/fhir/x?y=1",
		Header:      http.Header{"Authorization": {"Bearer t"}},
		Connections: 4,
		Duration:    200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Status[http.StatusBadRequest] != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Status[200] == 0 || res.Status[401] == 0 || res.Non2xx() != res.Status[401] {
		t.Errorf("statuses %v, non-2xx %d", res.Status, res.Non2xx())
	}
	if res.Errors != 0 {
		t.Errorf("%d errors: %s", res.Errors, res.FirstError)
	}
	if res.RPS() <= 0 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P999 || res.Latency.P999 < res.Latency.P50 {
		t.Errorf("rps %v latency %+v", res.RPS(), res.Latency)
	}
}

func TestRunReconnectsAfterConnectionClose(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL + "/", Connections: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[200] < 2 || res.Errors != 0 || conns.Load() < res.Status[200] {
		t.Errorf("responses %v errors %d (%s) over %d connections", res.Status, res.Errors, res.FirstError, conns.Load())
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"not loopback", Config{URL: "http://192.0.2.1/", Connections: 1, Duration: time.Second}},
		{"https", Config{URL: "https://127.0.0.1/", Connections: 1, Duration: time.Second}},
		{"no connections", Config{URL: "http://127.0.0.1/", Duration: time.Second}},
		{"too many connections", Config{URL: "http://127.0.0.1/", Connections: MaxConnections + 1, Duration: time.Second}},
		{"too long", Config{URL: "http://127.0.0.1/", Connections: 1, Duration: MaxDuration + 1}},
		{"header injection", Config{URL: "http://127.0.0.1/", Header: http.Header{"X": {"a\r\nB: c"}}, Connections: 1, Duration: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestRunReportsRefusedConnections(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // nothing listens there now
	res, err := Run(context.Background(), Config{URL: u + "/", Connections: 2, Duration: 50 * time.Millisecond})
	if err == nil || res == nil || res.Errors == 0 || res.FirstError == "" {
		t.Fatalf("err %v, result %+v", err, res)
	}
}

// The burst's requests really are concurrent: the server answers none
// until all have arrived.
func TestBurstReleasesAllRequestsTogether(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			w.WriteHeader(http.StatusGatewayTimeout)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Burst(context.Background(), BurstConfig{URL: srv.URL + "/x", N: n, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[200] != n || res.Errors != 0 {
		t.Fatalf("statuses %v, errors %d (%s)", res.Status, res.Errors, res.FirstError)
	}
	if !(res.First > 0 && res.First <= res.Median && res.Median <= res.Last) {
		t.Errorf("latencies first %v median %v last %v", res.First, res.Median, res.Last)
	}
}

func TestBurstFailsWhenNothingListens(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	if _, err := Burst(context.Background(), BurstConfig{URL: u + "/", N: 3, Timeout: 5 * time.Second}); err == nil {
		t.Error("a burst against a closed port succeeded")
	}
}

// At a fixed rate the run sends about rate × duration requests, however
// fast the server is.
func TestRunAtFixedRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL + "/", Connections: 4, Duration: 500 * time.Millisecond, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests are due; the schedule, not the server, sets the count.
	if res.Requests != 100 || n.Load() != 100 {
		t.Errorf("%d requests answered, server saw %d, want 100 (%+v)", res.Requests, n.Load(), res)
	}
}

func TestRunSpreadsRequestsOverURLs(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
	}))
	defer srv.Close()
	tests := []struct {
		name        string
		urls        int
		connections int
	}{
		{"more URLs than connections", 50, 4},
		{"fewer URLs than connections", 3, 8},
		{"one URL", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			clear(hits)
			mu.Unlock()
			urls := make([]string, tt.urls)
			for i := range urls {
				urls[i] = srv.URL + "/org/" + strconv.Itoa(i)
			}
			// A fixed rate makes every connection send the same number
			// of requests, so the walks cover the list evenly.
			res, err := Run(context.Background(), Config{
				URLs: urls, Header: http.Header{"Authorization": {"Bearer t"}},
				Connections: tt.connections, Duration: 500 * time.Millisecond, Rate: float64(40 * tt.urls),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status[http.StatusOK] != res.Requests || res.Requests < int64(10*tt.urls) {
				t.Fatalf("statuses %v over %d requests, want at least %d, all 200", res.Status, res.Requests, 10*tt.urls)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(hits) != tt.urls {
				t.Fatalf("%d of %d URLs were requested", len(hits), tt.urls)
			}
			mean := float64(res.Requests) / float64(tt.urls)
			for path, n := range hits {
				if float64(n) < mean/2 || float64(n) > mean*2 {
					t.Errorf("%s got %d requests, mean %.1f: not spread evenly", path, n, mean)
				}
			}
		})
	}
}

func TestRunRefusesURLsOnDifferentHosts(t *testing.T) {
	_, err := Run(context.Background(), Config{
		URLs:        []string{"http://127.0.0.1:1/a", "http://127.0.0.1:2/b"},
		Connections: 1, Duration: time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "is not on 127.0.0.1:1") {
		t.Fatalf("err = %v, want the second URL refused", err)
	}
}

// A Conn sends only requests for its own address, connected or not.
func TestConnSendRefusesAnotherAddress(t *testing.T) {
	a, err := NewRequest("http://127.0.0.1:1/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRequest("http://127.0.0.1:2/b", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(a)
	defer c.Close()
	if _, err := c.Send(b, time.Now().Add(time.Second)); err == nil || !strings.Contains(err.Error(), "is not on this connection's 127.0.0.1:1") {
		t.Fatalf("err = %v, want the other address refused", err)
	}
}
