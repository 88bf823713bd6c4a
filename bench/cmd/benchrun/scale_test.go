package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// warm asks for every URL once and, when one is not answered 200,
// reports that one (not the cancellations it causes) and stops.
func TestWarm(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if strings.HasSuffix(r.URL.Path, "/bad") {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	urls := make([]string, 100)
	for i := range urls {
		urls[i] = srv.URL + "/org/" + strconv.Itoa(i)
	}
	if err := warm(context.Background(), urls); err != nil || n.Load() != 100 {
		t.Fatalf("err %v after %d requests, want none after 100", err, n.Load())
	}
	urls[50] = srv.URL + "/org/bad"
	err := warm(context.Background(), urls)
	if err == nil || !strings.Contains(err.Error(), "/org/bad: 502 Bad Gateway") || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want the failing URL alone", err)
	}
}

func TestMetricValue(t *testing.T) {
	const text = `# HELP cqgate_fhir_connections_opened_total Connections opened.
# TYPE cqgate_fhir_connections_opened_total counter
cqgate_fhir_connections_opened_total 1234
cqgate_fhir_connections_open 7
`
	if v, err := metricValue(strings.NewReader(text), "cqgate_fhir_connections_opened_total"); err != nil || v != 1234 {
		t.Errorf("got %d, %v; want 1234", v, err)
	}
	if v, err := metricValue(strings.NewReader(text), "cqgate_fhir_connections_open"); err != nil || v != 7 {
		t.Errorf("a name that prefixes another: got %d, %v; want 7", v, err)
	}
	if _, err := metricValue(strings.NewReader(text), "cqgate_missing_total"); err == nil {
		t.Error("a missing metric gave no error")
	}
	if _, err := fhirConnsOpened(context.Background(), ""); err == nil {
		t.Error("no metrics URL gave no error")
	}
}
