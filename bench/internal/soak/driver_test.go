package soak

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
)

// collect is an OnResponse that keeps everything.
type collect struct {
	mu  sync.Mutex
	all []Response
}

func (c *collect) add(r Response) {
	c.mu.Lock()
	c.all = append(c.all, r)
	c.mu.Unlock()
}

// The schedule is fixed: a 200 ms drive at 200/s has 40 due requests,
// whatever the machine, each with its own id, the organizations in turn,
// and every answer's marks are kept.
func TestDriveSendsTheScheduleAndKeepsTheMarks(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // id → path
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(fhirstub.RequestIDHeader)
		mu.Lock()
		seen[id] = r.URL.Path
		mu.Unlock()
		switch {
		case strings.HasSuffix(id, "-3"):
			w.Header().Set(fhirstub.InjectedHeader, "503")
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"injected failure"}]}`))
		case strings.HasSuffix(id, "-5"):
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Repeat("x", 500)))
		default:
			_, _ = w.Write([]byte(`{"resourceType":"Patient"}`))
		}
	}))
	defer srv.Close()
	var c collect
	res, err := Drive(context.Background(), DriveConfig{
		BaseURL: srv.URL, OIDs: []string{"1.2.1", "1.2.2"}, PatientID: "7", Rate: 200, Duration: 200 * time.Millisecond,
		IDPrefix: "t", OnResponse: c.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent+res.Behind != 40 || len(c.all) != 40 || len(seen) != int(res.Sent) {
		t.Fatalf("sent %d, behind %d, answers %d, seen %d; want 40 in all", res.Sent, res.Behind, len(c.all), len(seen))
	}
	for _, r := range c.all {
		if r.Err != "" {
			if r.Err == ErrBehind.Error() {
				continue // a very slow machine
			}
			t.Errorf("%s: %s", r.ID, r.Err)
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(r.ID, "t-"))
		if err != nil {
			t.Fatalf("id %q", r.ID)
		}
		wantOID := []string{"1.2.1", "1.2.2"}[n%2]
		if r.OID != wantOID || seen[r.ID] != "/fhir/"+wantOID+"/Patient/7" {
			t.Errorf("%s: OID %s, path %s", r.ID, r.OID, seen[r.ID])
		}
		if r.Done.Before(r.Sent) {
			t.Errorf("%s: done before sent", r.ID)
		}
		switch r.ID {
		case "t-3":
			if r.Status != 503 || r.Injected != "503" || r.Diagnostics != "injected failure" {
				t.Errorf("t-3: %+v", r)
			}
		case "t-5":
			if r.Status != 503 || r.RetryAfter != "4" || len(r.Diagnostics) != maxDiagnostics+len("…") {
				t.Errorf("t-5: %+v", r)
			}
		default:
			if r.Status != 200 || r.Diagnostics != "" {
				t.Errorf("%s: %+v", r.ID, r)
			}
		}
	}
}

// A target that stops answering fills MaxInFlight, after which due
// requests are reported as not sent rather than queued without bound.
func TestDriveReportsFallingBehind(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	var c collect
	done := make(chan DriveResult, 1)
	go func() {
		res, _ := Drive(context.Background(), DriveConfig{
			BaseURL: srv.URL, OIDs: []string{"1"}, Rate: 100, Duration: 100 * time.Millisecond,
			MaxInFlight: 2, OnResponse: c.add,
		})
		done <- res
	}()
	// Wait until something is reported behind, then let the stuck ones go.
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.all)
		c.mu.Unlock()
		if n >= 8 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("no request reported behind")
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	res := <-done
	if res.Sent != 2 || res.Behind != 8 {
		t.Errorf("sent %d, behind %d; want 2 and 8", res.Sent, res.Behind)
	}
	behind := 0
	for _, r := range c.all {
		if r.Err == ErrBehind.Error() {
			behind++
		}
	}
	if behind != 8 {
		t.Errorf("%d answers say behind, want 8", behind)
	}
}

func TestDriveRefusesBadConfig(t *testing.T) {
	ok := func(Response) {}
	tests := []struct {
		name string
		cfg  DriveConfig
	}{
		{"not loopback", DriveConfig{BaseURL: "http://192.0.2.1:80", OIDs: []string{"1"}, Rate: 1, Duration: time.Second, OnResponse: ok}},
		{"https", DriveConfig{BaseURL: "https://127.0.0.1:1", OIDs: []string{"1"}, Rate: 1, Duration: time.Second, OnResponse: ok}},
		{"no OIDs", DriveConfig{BaseURL: "http://127.0.0.1:1", Rate: 1, Duration: time.Second, OnResponse: ok}},
		{"no rate", DriveConfig{BaseURL: "http://127.0.0.1:1", OIDs: []string{"1"}, Duration: time.Second, OnResponse: ok}},
		{"rate too high", DriveConfig{BaseURL: "http://127.0.0.1:1", OIDs: []string{"1"}, Rate: MaxRate + 1, Duration: time.Second, OnResponse: ok}},
		{"too long", DriveConfig{BaseURL: "http://127.0.0.1:1", OIDs: []string{"1"}, Rate: 1, Duration: MaxDuration + 1, OnResponse: ok}},
		{"no callback", DriveConfig{BaseURL: "http://127.0.0.1:1", OIDs: []string{"1"}, Rate: 1, Duration: time.Second}},
	}
	for _, tt := range tests {
		if _, err := Drive(context.Background(), tt.cfg); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// A cancelled drive stops sending and returns.
func TestDriveStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var c collect
	done := make(chan error, 1)
	go func() {
		_, err := Drive(ctx, DriveConfig{BaseURL: srv.URL, OIDs: []string{"1"}, Rate: 10, Duration: time.Hour, OnResponse: c.add})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("no error from a cancelled drive")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drive did not return after its context ended")
	}
}
