package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/outcome"
)

// Serve applies server.max_inflight to FHIR requests: with the only turn
// taken and no queue, the next FHIR request is answered 503 with an
// OperationOutcome and Retry-After, counted in
// cqgate_inflight_rejected_total, while /healthz is still served.
func TestServeCapsFHIRRequestsInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "served")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Server
	cfg.MaxInflight, cfg.InflightQueue = 1, 0
	ctx, cancel := context.WithCancel(context.Background())
	log := logrus.New()
	log.SetOutput(io.Discard)
	served := make(chan error, 1)
	m := metrics.New()
	go func() { served <- Serve(ctx, ln, mux, cfg, log, CountRefusals(m)) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}

	first := make(chan string, 1)
	go func() {
		resp, err := client.Get(base + "/fhir/1.2.3/Patient/1")
		if err != nil {
			first <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		first <- string(b)
	}()
	<-started

	resp, err := client.Get(base + "/fhir/1.2.3/Patient/2")
	if err != nil {
		t.Fatal(err)
	}
	var oo outcome.OperationOutcome
	_ = json.NewDecoder(resp.Body).Decode(&oo)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != outcome.Transient {
		t.Errorf("second FHIR request: %d, Retry-After %q, %+v", resp.StatusCode, resp.Header.Get("Retry-After"), oo)
	}
	if n := rejected(t, m, "queue_full"); n != 1 {
		t.Errorf("cqgate_inflight_rejected_total{reason=\"queue_full\"} = %v after one refusal, want 1", n)
	}
	resp, err = client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz at the cap: %d", resp.StatusCode)
	}
	close(release)
	if got := <-first; got != "served" {
		t.Errorf("first FHIR request: %q", got)
	}
}

// rejected is cqgate_inflight_rejected_total{reason=reason} in m.
func rejected(t *testing.T, m *metrics.Metrics, reason string) float64 {
	t.Helper()
	return counterValue(t, m, "cqgate_inflight_rejected_total", "reason", reason)
}

// counterValue is the counter name in m, the series whose label has
// value (any series when label is "").
func counterValue(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if label == "" {
				return s.GetCounter().GetValue()
			}
			for _, l := range s.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
