package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/internal/ratelimit"
)

type stubLimiter struct {
	err   error
	asked []string
}

func (l *stubLimiter) Wait(_ context.Context, oid string) error {
	l.asked = append(l.asked, oid)
	return l.err
}

// A request over the organization's rate limit is answered 429 with
// Retry-After and never forwarded; one under it goes on.
func TestRateLimitedRequests(t *testing.T) {
	tests := []struct {
		name           string
		err            error
		wantStatus     int
		wantRetry      string
		wantForwarded  bool
		wantIssue      outcome.IssueType
		wantLimiterOID string
	}{
		{"under the limit", nil, http.StatusTeapot, "", true, "", "1.2.3"},
		{"over the limit", &ratelimit.LimitedError{OID: "1.2.3", Limit: ratelimit.Limit{RequestsPerSecond: 5, Burst: 1}, Wait: 1200 * time.Millisecond},
			http.StatusTooManyRequests, "2", false, outcome.Throttled, "1.2.3"},
		{"caller gave up while waiting", context.Canceled, http.StatusBadGateway, "", false, outcome.Transient, "1.2.3"},
		{"something else", errors.New("limiter broke"), http.StatusInternalServerError, "", false, outcome.Exception, "1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := &stubLimiter{err: tt.err}
			fwd := &recordingForwarder{}
			log := logrus.New()
			log.SetOutput(new(discard))
			h := New(Config{Tenants: stubTenants{}, Proxy: fwd, Logger: log, Limiter: lim,
				Ready: func(context.Context) error { return nil }})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fhir/urn:oid:1.2.3/Patient/1", nil))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetry)
			}
			if (fwd.oid != "") != tt.wantForwarded {
				t.Errorf("forwarded to %q, want forwarded %v", fwd.oid, tt.wantForwarded)
			}
			if len(lim.asked) != 1 || lim.asked[0] != tt.wantLimiterOID {
				t.Errorf("limiter asked for %v, want the canonical OID once", lim.asked)
			}
			if tt.wantIssue != "" {
				var oo outcome.OperationOutcome
				if err := json.Unmarshal(w.Body.Bytes(), &oo); err != nil || len(oo.Issue) != 1 || oo.Issue[0].Code != tt.wantIssue {
					t.Errorf("body %s, want one %s issue", w.Body, tt.wantIssue)
				}
			}
		})
	}
}

// Requests refused before resolution (malformed OID) do not take a turn.
func TestRateLimitAfterValidation(t *testing.T) {
	lim := &stubLimiter{}
	log := logrus.New()
	log.SetOutput(new(discard))
	h := New(Config{Tenants: stubTenants{}, Proxy: &recordingForwarder{}, Logger: log, Limiter: lim})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fhir/not-an-oid/Patient/1", nil))
	if w.Code != http.StatusBadRequest || len(lim.asked) != 0 {
		t.Fatalf("status %d, limiter asked %v; want 400 and no turn taken", w.Code, lim.asked)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
