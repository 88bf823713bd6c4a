package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// A trailing slash is never gin's 301 with an HTML body: outside /fhir/
// it is a 404 OperationOutcome naming the path without the slash; under
// /fhir/ the FHIR path, slash and all, is the partner's and is forwarded.
func TestTrailingSlash(t *testing.T) {
	tests := []struct {
		target     string
		wantStatus int
		wantPath   string // forwarded FHIR path
		wantHint   string // in the diagnostics
	}{
		{"/directory/Organization/1.2.3/", http.StatusNotFound, "", `ask for "/directory/Organization/1.2.3"`},
		{"/directory/Organization/", http.StatusNotFound, "", `ask for "/directory/Organization"`},
		{"/healthz/", http.StatusNotFound, "", `ask for "/healthz"`},
		{"/readyz//", http.StatusNotFound, "", `ask for "/readyz"`},
		{"/fhir/1.2.3/Patient/1/", http.StatusTeapot, "/Patient/1/", ""},
		{"/fhir/1.2.3/", http.StatusTeapot, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			fwd := &recordingForwarder{}
			h := newTestRouter(stubTenants{}, fwd, &bytes.Buffer{})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
			if rec.Code != tt.wantStatus || rec.Header().Get("Location") != "" {
				t.Fatalf("status %d Location %q, want %d and none: %s", rec.Code, rec.Header().Get("Location"), tt.wantStatus, rec.Body)
			}
			if fwd.path != tt.wantPath {
				t.Errorf("forwarded path %q, want %q", fwd.path, tt.wantPath)
			}
			if tt.wantHint == "" {
				return
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Code, Diagnostics string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != "not-found" {
				t.Fatalf("want a not-found OperationOutcome, got %s %s", rec.Header().Get("Content-Type"), rec.Body)
			}
			if !strings.Contains(oo.Issue[0].Diagnostics, tt.wantHint) {
				t.Errorf("diagnostics %q lack %q", oo.Issue[0].Diagnostics, tt.wantHint)
			}
		})
	}
}

// With SeparateAdmin the main router has no health, readiness or metrics
// and NewAdmin has them (and pprof only when asked), and nothing else.
func TestSeparateAdmin(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("cqgate_build_info 1\n")) })
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	cfg := Config{Tenants: stubTenants{}, Proxy: &recordingForwarder{}, Logger: log, Ready: func(context.Context) error { return nil },
		Metrics: metrics, MetricsPath: "/metrics", SeparateAdmin: true}
	main := New(cfg)
	admin := NewAdmin(cfg)
	cfg.Pprof = true
	adminPprof := NewAdmin(cfg)
	tests := []struct {
		name   string
		h      http.Handler
		target string
		want   int
	}{
		{"main", main, "/healthz", http.StatusNotFound},
		{"main", main, "/readyz", http.StatusNotFound},
		{"main", main, "/metrics", http.StatusNotFound},
		{"main", main, "/debug/pprof/", http.StatusNotFound},
		{"main", main, "/fhir/1.2.3/Patient/1", http.StatusTeapot},
		{"admin", admin, "/healthz", http.StatusOK},
		{"admin", admin, "/readyz", http.StatusOK},
		{"admin", admin, "/metrics", http.StatusOK},
		{"admin", admin, "/debug/pprof/", http.StatusNotFound},
		{"admin", admin, "/fhir/1.2.3/Patient/1", http.StatusNotFound},
		{"admin", admin, "/directory/Organization/1.2.3", http.StatusNotFound},
		{"admin+pprof", adminPprof, "/debug/pprof/", http.StatusOK},
		{"admin+pprof", adminPprof, "/debug/pprof/heap?debug=1", http.StatusOK},
		{"admin+pprof", adminPprof, "/debug/pprof/cmdline", http.StatusOK},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		tt.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
		if rec.Code != tt.want {
			t.Errorf("%s GET %s: %d, want %d: %.200s", tt.name, tt.target, rec.Code, tt.want, rec.Body)
		}
		if tt.want == http.StatusNotFound && !strings.Contains(rec.Body.String(), `"OperationOutcome"`) {
			t.Errorf("%s GET %s: 404 without an OperationOutcome: %s", tt.name, tt.target, rec.Body)
		}
	}
}
