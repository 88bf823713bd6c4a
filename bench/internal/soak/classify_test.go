package soak

import (
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func attempt(o fhirstub.Outcome, oid string, d time.Duration) fhirstub.Attempt {
	return fhirstub.Attempt{Outcome: o, OID: oid, At: at(d)}
}

func TestClassify(t *testing.T) {
	const a, b = "2.999.7.1", "2.999.7.2"
	records := map[string][]fhirstub.Attempt{
		"503":          {attempt(fhirstub.OutcomeInjected503, a, 0)},
		"reset":        {attempt(fhirstub.OutcomeInjectedReset, a, 0)},
		"reset-ok":     {attempt(fhirstub.OutcomeInjectedReset, a, 0), attempt(fhirstub.OutcomeOK, a, 0)},
		"401":          {attempt(fhirstub.OutcomeInjected401, a, 10*time.Second)},
		"401-ok":       {attempt(fhirstub.OutcomeInjected401, b, 60*time.Second), attempt(fhirstub.OutcomeOK, b, 60*time.Second)},
		"401-503":      {attempt(fhirstub.OutcomeInjected401, b, 90*time.Second), attempt(fhirstub.OutcomeInjected503, b, 90*time.Second)},
		"expired":      {attempt(fhirstub.OutcomeExpiredToken, a, 0)},
		"expired-ok":   {attempt(fhirstub.OutcomeExpiredToken, a, 0), attempt(fhirstub.OutcomeOK, a, 0)},
		"unknown":      {attempt(fhirstub.OutcomeUnknownToken, a, 0)},
		"503-then-ok":  {attempt(fhirstub.OutcomeInjected503, a, 0), attempt(fhirstub.OutcomeOK, a, 0)},
		"reset-reset2": {attempt(fhirstub.OutcomeInjectedReset, a, 0), attempt(fhirstub.OutcomeInjectedReset, a, 0)},
	}
	c := NewClassifier(records, 5*time.Second)
	tests := []struct {
		name   string
		r      Response
		want   Class
		reason string // a substring of the reason
	}{
		{"plain 200", Response{ID: "x", Status: 200}, OK, "200"},
		{"200 after a 401 retry", Response{ID: "401-ok", Status: 200}, OK, "injected-401, ok"},
		{"200 after a transport retry", Response{ID: "reset-ok", Status: 200}, OK, "injected-reset, ok"},
		{"injected 503 passed through", Response{ID: "503", Status: 503, Injected: "503"}, Expected, "503 passed through"},
		{"injected 503 without the marker", Response{ID: "503", Status: 503}, Unexpected, "after injected-503"},
		{"injected 503 turned into 502", Response{ID: "503", Status: 502}, Unexpected, "HTTP 502 after injected-503"},
		{"reset gives 502", Response{ID: "reset", Status: 502}, Expected, "connection reset"},
		{"two resets give 502", Response{ID: "reset-reset2", Status: 502}, Expected, "connection reset"},
		{"reset gives 504", Response{ID: "reset", Status: 504}, Unexpected, "HTTP 504"},
		{"401 passed through", Response{ID: "401", Status: 401, Injected: "401"}, Expected, "401 passed through"},
		{"401 then throttled", Response{ID: "401", Status: 503, RetryAfter: "3"}, Expected, "503 Retry-After (injected 401"},
		{"401 then 503 without Retry-After", Response{ID: "401", Status: 503}, Unexpected, "HTTP 503"},
		{"401 then 500", Response{ID: "401", Status: 500}, Unexpected, "HTTP 500"},
		{"401 retried into an injected 503", Response{ID: "401-503", Status: 503, Injected: "503"}, Expected, "503 passed through"},
		{"throttled within min_interval of a refusal", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Done: at(14 * time.Second)}, Expected, "no upstream attempt"},
		{"throttled at the refusal's instant", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Done: at(10 * time.Second)}, Expected, "no upstream attempt"},
		{"throttled at the bound (min_interval + slack)", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Done: at(16 * time.Second)}, Expected, "no upstream attempt"},
		{"throttled past the bound", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Done: at(16*time.Second + time.Millisecond)}, Unexpected, "no failed upstream attempt"},
		{"throttled before any refusal", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Done: at(9 * time.Second)}, Unexpected, "no failed upstream attempt"},
		{"throttled for another organization", Response{ID: "y", OID: "2.999.7.3", Status: 503, RetryAfter: "2", Done: at(11 * time.Second)}, Unexpected, "no failed upstream attempt"},
		{"503 with the marker but no record", Response{ID: "y", OID: a, Status: 503, RetryAfter: "2", Injected: "503", Done: at(11 * time.Second)}, Unexpected, "no failed upstream attempt"},
		{"502 with no failed attempt", Response{ID: "y", OID: a, Status: 502}, Unexpected, "no failed upstream attempt"},
		{"500 after the upstream recovered", Response{ID: "503-then-ok", Status: 500}, Unexpected, "last answer was 200"},
		{"401 after an expired token", Response{ID: "expired", Status: 401}, Unexpected, "after expired-token"},
		{"200 after an expired token", Response{ID: "expired-ok", Status: 200}, OK, "expired-token, ok"},
		{"401 after an unknown token", Response{ID: "unknown", Status: 401}, Unexpected, "after unknown-token"},
		{"transport error", Response{ID: "x", Err: "connection refused"}, Unexpected, "no answer: connection refused"},
		{"driver behind", Response{ID: "x", Err: ErrBehind.Error()}, Unexpected, "no answer"},
		{"200 with a broken body", Response{ID: "x", Status: 200, Err: "reading the body: unexpected EOF"}, Unexpected, "no answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := c.Classify(tt.r)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("Classify = %v %q, want %v with %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestTally(t *testing.T) {
	records := map[string][]fhirstub.Attempt{
		"soak-1": {attempt(fhirstub.OutcomeInjected503, "o", 0)},
		"soak-2": {attempt(fhirstub.OutcomeInjectedReset, "o", 0), attempt(fhirstub.OutcomeOK, "o", 0)},
		"soak-3": {attempt(fhirstub.OutcomeInjected401, "o", 0), attempt(fhirstub.OutcomeOK, "o", 0)},
		"warm-1": {attempt(fhirstub.OutcomeInjected401, "o", 0), attempt(fhirstub.OutcomeOK, "o", 0)},
		"soak-4": {attempt(fhirstub.OutcomeInjected503, "o", 0)},
	}
	c := NewClassifier(records, time.Second)
	tl := NewTally()
	tl.AddOK(100)
	tl.Add(c, Response{ID: "soak-1", Status: 503, Injected: "503"})
	tl.Add(c, Response{ID: "soak-4", Status: 500})
	tl.Add(c, Response{ID: "soak-5", Err: "EOF"})
	if tl.Total != 103 || tl.ByClass[OK] != 100 || tl.ByClass[Expected] != 1 || tl.ByClass[Unexpected] != 2 {
		t.Errorf("tally %+v", tl)
	}
	if tl.Status[200] != 100 || tl.Status[503] != 1 || tl.Status[500] != 1 || tl.Status[0] != 1 {
		t.Errorf("statuses %v", tl.Status)
	}
	if len(tl.Examples) != 2 || tl.ByReason[Unexpected]["no answer (transport error or timeout)"] != 1 {
		t.Errorf("examples %v, reasons %v", tl.Examples, tl.ByReason[Unexpected])
	}
	if got := Recovered(records, "soak"); got != 2 {
		t.Errorf("Recovered(soak) = %d, want 2", got)
	}
	if got := Recovered(records, "warm"); got != 1 {
		t.Errorf("Recovered(warm) = %d, want 1", got)
	}
	for i := 0; i < 2*MaxExamples; i++ {
		tl.Add(c, Response{ID: "z", Status: 500})
	}
	if len(tl.Examples) != MaxExamples {
		t.Errorf("%d examples kept, want %d", len(tl.Examples), MaxExamples)
	}
}
