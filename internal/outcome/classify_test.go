package outcome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

type marked struct{}

func (marked) Error() string      { return "upstream broke" }
func (marked) Kind() failure.Kind { return failure.Transport }

// marked2 is an upstream failure wrapping another error, as
// proxy.UpstreamError is.
type marked2 struct{ err error }

func (m *marked2) Error() string      { return "upstream: " + m.err.Error() }
func (m *marked2) Unwrap() error      { return m.err }
func (m *marked2) Kind() failure.Kind { return failure.Transport }

func TestFromError(t *testing.T) {
	oauth := &assertion.RetrieveError{TokenURL: "https://auth.example/token", StatusCode: 400, ErrorCode: "invalid_scope",
		ErrorDescription: "no such scope", ErrorURI: "https://auth.example/e/1", RequestID: "rid-1"}
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   IssueType
		wantText   string
	}{
		{"invalid OID", fmt.Errorf("x: %w", directory.ErrInvalidOID), 400, Value, "invalid OID"},
		{"not found", fmt.Errorf("x: %w", directory.ErrNotFound), 404, NotFound, "not found"},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), 504, Timeout, "deadline"},
		{"net timeout", &directory.Error{URL: "https://dir/Organization/1.2", Err: timeoutErr{}}, 504, Timeout, "i/o timeout"},
		{"timeout inside a 502 wrapper is still 504", failure.Errorf(failure.UpstreamFailed, "w: %w", timeoutErr{}), 504, Timeout, "timeout"},
		{"oauth error", fmt.Errorf("proxy: %w", oauth), 502, Exception, "invalid_scope"},
		{"explicit", failure.Errorf(failure.UpstreamUnsupported, "no FHIR endpoint"), 502, NotSupported, "no FHIR endpoint"},
		{"directory status", &directory.Error{URL: "https://dir/x", StatusCode: 500}, 502, Exception, "HTTP 500"},
		{"discovery status", &discovery.Error{URL: "https://fhir/metadata", StatusCode: 503}, 502, Exception, "metadata"},
		{"marked upstream", fmt.Errorf("p: %w", marked{}), 502, Exception, "upstream broke"},
		{"algorithm that cannot fit the key", fmt.Errorf("s: %w", &assertion.AlgorithmError{Algorithm: "ES256", KeyType: "RSA"}), 500, Exception, `signing algorithm "ES256" cannot be used with a RSA key`},
		{"no key yet", fmt.Errorf("s: %w", assertion.ErrNoKey), 503, Transient, "s: assertion: no signing key loaded; see /readyz"},
		{"body too large while streaming", &marked2{fmt.Errorf("proxy: %w", &http.MaxBytesError{Limit: 65536})}, 413, TooCostly, "65536 bytes allowed (server.max_body_bytes)"},
		{"egress refusal at connect time", fmt.Errorf("p: %w", &egress.RefusedError{Address: "127.0.0.1:443", Reason: "a loopback address"}), 403, Security, "a loopback address"},
		{"egress refusal inside an explicit 502", failure.Errorf(failure.UpstreamFailed, "tenant: discovering: %w", &discovery.Error{URL: "https://fhir/metadata", Err: &egress.RefusedError{Address: "10.0.0.1:443", Reason: "a private-network address"}}), 403, Security, "private-network"},
		{"unknown stays generic", errors.New("secret internal detail"), 500, Exception, "internal error"},
		{"a throttled exchange inside a failed FHIR call", &marked2{fmt.Errorf("p: %w", &assertion.ThrottledError{RetryAt: time.Now().Add(time.Minute)})}, 503, Transient, "minimum interval"},
		{"no key inside a registration failure stays 502", failure.Errorf(failure.UpstreamFailed, "tenant: UDAP registration: %w", assertion.ErrNoKey), 502, Exception, "UDAP registration"},
		{"algorithm inside a failed FHIR call", &marked2{&assertion.AlgorithmError{Algorithm: "ES256", KeyType: "RSA"}}, 500, Exception, "cqgate is misconfigured for this organization"},
		{"too many token contexts", fmt.Errorf("p: %w", &assertion.ContextLimitError{Resource: "https://fhir", Limit: 8}), 429, Throttled, "8 token contexts"},
		{"not found beats the wrapper", failure.Errorf(failure.UpstreamFailed, "tenant: %w", directory.ErrNotFound), 404, NotFound, "tenant: directory: organization not found"},
		{"gone beats the not-found it is wrapped in", failure.Errorf(failure.NotFound, "%w", fmt.Errorf("%w at noon", failure.New(failure.Gone, "proxy: the download link has expired"))), 410, NotFound, "expired at noon"},
		{"declared internal shows its message", failure.New(failure.Internal, "api: authenticating failed; see the log"), 500, Exception, "api: authenticating failed"},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), 502, Transient, "request cancelled before the upstream answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, oo := FromError(tt.err)
			if status != tt.wantStatus || oo.Issue[0].Code != tt.wantCode || !strings.Contains(oo.Issue[0].Diagnostics, tt.wantText) {
				t.Fatalf("FromError = %d %+v", status, oo.Issue[0])
			}
			if strings.Contains(oo.Issue[0].Diagnostics, "secret internal detail") {
				t.Error("unclassified error text exposed")
			}
		})
	}
}

func TestWriteErrorKeepsOAuthFields(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, &assertion.RetrieveError{TokenURL: "https://auth.example/token", StatusCode: 401, ErrorCode: "invalid_client",
		ErrorDescription: "bad signature", ErrorURI: "https://auth.example/errors/x", RequestID: "abc-123"})
	if rec.Code != 502 || rec.Header().Get("Content-Type") != ContentType || rec.Header().Get("X-Upstream-Request-Id") != "abc-123" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var oo OperationOutcome
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil {
		t.Fatal(err)
	}
	is := oo.Issue[0]
	if is.Details.Coding[0].Code != "invalid_client" || is.Details.Text != "bad signature" {
		t.Errorf("details = %+v", is.Details)
	}
	got := map[string]string{}
	for _, e := range is.Extension[0].Extension {
		got[e.URL] = e.ValueCode + e.ValueString + e.ValueURI
	}
	want := map[string]string{"error": "invalid_client", "error_description": "bad signature", "error_uri": "https://auth.example/errors/x",
		"x-request-id": "abc-123", "token-url": "https://auth.example/token", "http-status": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("extension %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestEveryKindHasAnAnswer: a kind added to internal/failure without its
// status and issue type here would answer with status 0.
func TestEveryKindHasAnAnswer(t *testing.T) {
	n := 0
	for k := failure.Internal; !strings.HasPrefix(k.String(), "kind("); k++ {
		n++
		if int(k) >= len(answers) || answers[k].status < 400 || answers[k].code == "" {
			t.Errorf("kind %v has no answer", k)
		}
	}
	if n != len(answers) {
		t.Errorf("%d kinds, %d answers", n, len(answers))
	}
}
