package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/tenant"
)

func init() { gin.SetMode(gin.ReleaseMode) }

type stubTenants struct{ err error }

func (s stubTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	if s.err != nil {
		return nil, s.err
	}
	if oid == "1.2.666" {
		panic("boom: secret internals")
	}
	return &tenant.Tenant{OID: oid, Name: "Test"}, nil
}

func (s stubTenants) Describe(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return s.Resolve(ctx, oid)
}

func (s stubTenants) Scope(string) string { return "system/*.read" }

type recordingForwarder struct{ oid, path string }

func (f *recordingForwarder) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	f.oid, f.path = t.OID, p
	w.WriteHeader(http.StatusTeapot)
}

func newTestRouter(tenants Tenants, fwd Forwarder, logs *bytes.Buffer) http.Handler {
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	return New(Config{Tenants: tenants, Proxy: fwd, Logger: log, Ready: func(context.Context) error { return nil }})
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		method, target string
		tenants        Tenants
		wantStatus     int
		wantOID        string
		wantPath       string
		wantOutcome    string // issue code, when an OperationOutcome is expected
	}{
		{"GET", "/fhir/1.2.3/Patient/1", stubTenants{}, 418, "1.2.3", "/Patient/1", ""},
		{"GET", "/fhir/urn:oid:1.2.3/Patient?name=x", stubTenants{}, 418, "1.2.3", "/Patient", ""},
		{"POST", "/fhir/1.2.3/", stubTenants{}, 418, "1.2.3", "", ""},
		{"GET", "/fhir/1.2.3", stubTenants{}, 418, "1.2.3", "", ""},
		{"DELETE", "/fhir/1.2.3/Patient/1", stubTenants{}, 418, "1.2.3", "/Patient/1", ""},
		{"GET", "/fhir/1.2.x/Patient/1", stubTenants{}, 400, "", "", "value"},
		{"GET", "/fhir/1.2%2F3/Patient/1", stubTenants{}, 400, "", "", "value"},
		{"GET", "/fhir/urn%3Aoid%3A1.2.3/Patient/1", stubTenants{}, 418, "1.2.3", "/Patient/1", ""},
		{"GET", "/fhir/1.2.3/Patient/%2e%2e/secret", stubTenants{}, 400, "", "", "invalid"},
		{"GET", "/fhir/1.2.3/Patient/1", stubTenants{err: fmt.Errorf("x: %w", directory.ErrNotFound)}, 404, "", "", "not-found"},
		{"GET", "/fhir/1.2.666/Patient/1", stubTenants{}, 500, "", "", "exception"},
		{"GET", "/elsewhere", stubTenants{}, 404, "", "", "not-found"},
		{"POST", "/healthz", stubTenants{}, 405, "", "", "not-supported"},
		{"GET", "/healthz", stubTenants{}, 200, "", "", ""},
		{"GET", "/readyz", stubTenants{}, 200, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			fwd := &recordingForwarder{}
			var logs bytes.Buffer
			h := newTestRouter(tt.tenants, fwd, &logs)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if fwd.oid != tt.wantOID || fwd.path != tt.wantPath {
				t.Errorf("forwarded oid %q path %q, want %q %q", fwd.oid, fwd.path, tt.wantOID, tt.wantPath)
			}
			if rec.Header().Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the response")
			}
			if tt.wantOutcome != "" {
				var oo struct {
					ResourceType string
					Issue        []struct{ Code, Diagnostics string }
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != tt.wantOutcome {
					t.Fatalf("want OperationOutcome %s, got %s", tt.wantOutcome, rec.Body)
				}
				if strings.Contains(rec.Body.String(), "secret internals") {
					t.Error("panic text exposed to the caller")
				}
			}
		})
	}
}

// idForwarder records the request id each forwarded request carried.
type idForwarder struct{ ids []string }

func (f *idForwarder) Forward(w http.ResponseWriter, r *http.Request, _ *tenant.Tenant, _ string) {
	f.ids = append(f.ids, r.Header.Get("X-Request-Id"))
	w.WriteHeader(http.StatusOK)
}

func TestRequestIDIsKeptOrMade(t *testing.T) {
	tr, err := tracing.New(context.Background(), tracing.Config{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	fwd := &idForwarder{}
	log := logrus.New()
	log.SetOutput(io.Discard)
	h := New(Config{Tenants: stubTenants{}, Proxy: fwd, Logger: log, Tracer: tr})
	made := map[string]bool{}
	for _, target := range []string{"/healthz", "/fhir/1.2.3/Patient/1"} {
		for _, tt := range []struct {
			given []string
			want  string
		}{
			{[]string{"abc-123"}, "abc-123"},
			{[]string{"bad id\r\n"}, ""},
			{[]string{"abc-123", "def-456"}, "abc-123"}, // the first
			{nil, ""},
			{nil, ""},
		} {
			fwd.ids = nil
			req := httptest.NewRequest("GET", target, nil)
			if tt.given != nil {
				req.Header["X-Request-Id"] = tt.given
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Values("X-Request-Id")
			switch {
			case len(got) != 1:
				t.Errorf("%s given %q: X-Request-Id %q, want one", target, tt.given, got)
				continue
			case tt.want != "" && got[0] != tt.want, tt.want == "" && !uuidV4.MatchString(got[0]):
				t.Errorf("%s given %q: X-Request-Id %q", target, tt.given, got)
			case tt.want == "" && made[got[0]]:
				t.Errorf("%s given %q: X-Request-Id %q made twice", target, tt.given, got[0])
			case strings.HasPrefix(target, "/fhir/") && (len(fwd.ids) != 1 || fwd.ids[0] != got[0]):
				t.Errorf("%s given %q: the tenant was sent X-Request-Id %q, the caller answered %q", target, tt.given, fwd.ids, got[0])
			}
			made[got[0]] = true
		}
	}
	for id := range made {
		if id != "abc-123" && !uuidV4.MatchString(id) {
			t.Errorf("request id %q changed after its request", id)
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNotReady(t *testing.T) {
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	h := New(Config{Tenants: stubTenants{}, Proxy: &recordingForwarder{}, Logger: log,
		Ready: func(context.Context) error { return errors.New("signing key not loaded yet") }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "signing key not loaded yet") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// At warn level successful requests log nothing (and build no fields);
// failed ones still log.
func TestAccessLogFollowsLevel(t *testing.T) {
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.WarnLevel)
	h := New(Config{Tenants: stubTenants{}, Proxy: &recordingForwarder{}, Logger: log})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil))
	if logs.Len() != 0 {
		t.Errorf("a 200 was logged at warn level: %s", logs.String())
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fhir/1.2.666/Patient/1", nil))
	if !strings.Contains(logs.String(), `msg=request`) || !strings.Contains(logs.String(), "status=500") {
		t.Errorf("a 500 was not logged: %s", logs.String())
	}
}

// At info level, an audited successful FHIR request leaves only its audit
// line; failures and unaudited requests still get an access log line.
func TestAccessLogLeavesSuccessesToTheAudit(t *testing.T) {
	tests := []struct {
		name    string
		audit   bool
		target  string
		fwdCode int
		want    bool
	}{
		{"audited success", true, "/fhir/1.2.3/Patient/1", http.StatusOK, false},
		{"audited not modified", true, "/fhir/1.2.3/Patient/1", http.StatusNotModified, false},
		{"audited client error", true, "/fhir/1.2.3/Patient/1", http.StatusNotFound, true},
		{"audited refusal before forwarding", true, "/fhir/bad-oid/Patient/1", 0, true},
		{"unaudited success", false, "/fhir/1.2.3/Patient/1", http.StatusOK, true},
		{"health check", true, "/healthz", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs, trail bytes.Buffer
			log := logrus.New()
			log.SetOutput(&logs)
			log.SetLevel(logrus.InfoLevel)
			cfg := Config{Tenants: stubTenants{}, Proxy: &statusForwarder{code: tt.fwdCode}, Logger: log}
			if tt.audit {
				cfg.Audit = audit.New(&trail)
			}
			New(cfg).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tt.target, nil))
			if got := strings.Contains(logs.String(), "msg=request"); got != tt.want {
				t.Errorf("access log line written: %v, want %v\n%s", got, tt.want, logs.String())
			}
			if tt.audit && strings.HasPrefix(tt.target, "/fhir/") && trail.Len() == 0 {
				t.Error("no audit line")
			}
		})
	}
}

type statusForwarder struct{ code int }

func (f *statusForwarder) Forward(w http.ResponseWriter, _ *http.Request, _ *tenant.Tenant, _ string) {
	w.WriteHeader(f.code)
}

// abortingForwarder sends a header and part of a body, then aborts the
// response, as the proxy does when a tenant's body breaks off.
type abortingForwarder struct{}

func (abortingForwarder) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"resourceType":"Patient"}`+"\n")
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

// TestRecovererLetsAnAbortThrough: an aborted response reaches the
// server (which cuts the connection: the caller sees a broken body, not
// a complete one) and is not logged as a crash.
func TestRecovererLetsAnAbortThrough(t *testing.T) {
	logs := &lockedBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	srv := httptest.NewServer(New(Config{Tenants: stubTenants{}, Proxy: abortingForwarder{}, Logger: log}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/Patient")
	if err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("the caller read %q as a complete body", body)
	}
	resp.Body.Close()
	srv.Close() // the handler has returned: its log lines are written
	if s := logs.String(); strings.Contains(s, "panic") {
		t.Errorf("the abort was logged as a crash: %s", s)
	}
}

// panickingForwarder panics before it answers.
type panickingForwarder struct{}

func (panickingForwarder) Forward(http.ResponseWriter, *http.Request, *tenant.Tenant, string) {
	panic("boom: secret internals")
}

// spanAttributes are the attributes of the one span rec ended.
func spanAttributes(t *testing.T, rec *tracetest.SpanRecorder) map[attribute.Key]attribute.Value {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range spans[0].Attributes() {
		attrs[kv.Key] = kv.Value
	}
	return attrs
}

// A FHIR request that panics (in a step, or in the proxy) is answered
// 500 with an exception OperationOutcome by the recoverer's rules, and
// its audit line, metrics and span say so: not the 200 the writer held
// when the request's record was made.
func TestPanicIsRecordedAsThe500Answered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oid    string
		fwd    Forwarder
		tenant string // the metrics' org label
	}{
		{"in a step", "1.2.666", &recordingForwarder{}, ""},
		{"in the proxy", "1.2.3", panickingForwarder{}, "1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var trail, logs bytes.Buffer
			log := logrus.New()
			log.SetOutput(&logs)
			obs := &recordingObserver{}
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(spans))
			h := New(Config{Tenants: stubTenants{}, Proxy: tc.fwd, Logger: log, Audit: audit.New(&trail), Observer: obs, Tracer: tracing.NewWithProvider(tp)})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/fhir/"+tc.oid+"/Patient/1", nil))
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"exception"`) || strings.Contains(rec.Body.String(), "boom") {
				t.Fatalf("answered %d %s", rec.Code, rec.Body)
			}
			var line map[string]any
			if err := json.Unmarshal(trail.Bytes(), &line); err != nil {
				t.Fatalf("audit %q: %v", trail.String(), err)
			}
			if line["status"] != float64(500) || line["error"] != "exception" {
				t.Errorf("audited status %v, error %v for a 500 exception: %s", line["status"], line["error"], trail.String())
			}
			if len(obs.got) != 1 || obs.got[0].status != 500 || obs.got[0].oid != tc.tenant {
				t.Errorf("metrics observed %+v, want one 500 for %q", obs.got, tc.tenant)
			}
			if got := spanAttributes(t, spans)[tracing.OutcomeKey]; got.AsString() != "exception" {
				t.Errorf("span cqgate.outcome %q, want exception", got.AsString())
			}
			if !strings.Contains(logs.String(), "api: panic serving request") {
				t.Errorf("the panic was not logged: %s", logs.String())
			}
		})
	}
}

// serveAborted serves one FHIR request through h, a router whose proxy
// aborts the response mid-body, as a server does: the caller's body
// breaks off, and the handler has returned when it returns.
func serveAborted(t *testing.T, h http.Handler) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/Patient")
	if err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("the caller read %q as a complete body", body)
	}
	resp.Body.Close()
	srv.Close()
}

// A response aborted mid-body (the partner's body broke off, or the
// caller went away) gets its access log line, at warn and marked
// aborted, audited or not: the status it carries was not what the
// caller got.
func TestAbortedResponseIsAccessLogged(t *testing.T) {
	for _, audited := range []bool{false, true} {
		t.Run(fmt.Sprintf("audited=%v", audited), func(t *testing.T) {
			logs := &lockedBuffer{}
			log := logrus.New()
			log.SetOutput(logs)
			cfg := Config{Tenants: stubTenants{}, Proxy: abortingForwarder{}, Logger: log}
			if audited {
				cfg.Audit = audit.New(io.Discard)
			}
			serveAborted(t, New(cfg))
			line := regexp.MustCompile(`(?m)^.*msg=request.*$`).FindString(logs.String())
			for _, want := range []string{"level=warning", "aborted=true", "status=200", "oid=1.2.3", "request_id="} {
				if !strings.Contains(line, want) {
					t.Errorf("access log line %q lacks %s (log %q)", line, want, logs.String())
				}
			}
		})
	}
}

// An aborted response's span is described as any request's (README:
// organization OID, method, route pattern, status) and failed as
// aborted.
func TestAbortedResponseSpanIsDescribed(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(spans))
	log := logrus.New()
	log.SetOutput(io.Discard)
	serveAborted(t, New(Config{Tenants: stubTenants{}, Proxy: abortingForwarder{}, Logger: log, Tracer: tracing.NewWithProvider(tp)}))
	attrs := spanAttributes(t, spans)
	want := map[attribute.Key]attribute.Value{
		"http.request.method":       attribute.StringValue("GET"),
		"http.route":                attribute.StringValue("/fhir/:oid/*path"),
		"http.response.status_code": attribute.IntValue(200),
		tracing.OrganizationKey:     attribute.StringValue("1.2.3"),
		tracing.ResourceTypeKey:     attribute.StringValue("Patient"),
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("span %s = %v, want %v", k, attrs[k].Emit(), v.Emit())
		}
	}
	if st := spans.Ended()[0].Status(); st.Code != codes.Error || st.Description != "aborted" {
		t.Errorf("span status %v, want an error: aborted", st)
	}
}

// lockedBuffer is a log sink a server's goroutines and a test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// midBodyPanicForwarder starts an answer and then fails with an ordinary
// panic, mid-body.
type midBodyPanicForwarder struct{}

func (midBodyPanicForwarder) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"resourceType":"Patient"}`+"\n")
	http.NewResponseController(w).Flush()
	panic("boom: secret internals")
}

// An answer cut off mid-body, by an abort or by a panic after the status
// was sent, reaches the caller as a broken body (never a complete one),
// and its audit line says so: the status sent, "aborted": true, and for
// a panic the exception.
func TestCutAnswersAreAbortedAndAuditedSo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fwd       Forwarder
		wantError any
	}{
		{"abort", abortingForwarder{}, nil},
		{"panic after the status", midBodyPanicForwarder{}, "exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trail := &lockedBuffer{}
			log := logrus.New()
			log.SetOutput(io.Discard)
			serveAborted(t, New(Config{Tenants: stubTenants{}, Proxy: tc.fwd, Logger: log, Audit: audit.New(trail)}))
			var line map[string]any
			if err := json.Unmarshal([]byte(trail.String()), &line); err != nil {
				t.Fatalf("audit %q: %v", trail.String(), err)
			}
			if line["status"] != float64(200) || line["aborted"] != true || line["error"] != tc.wantError {
				t.Errorf("audited status %v, aborted %v, error %v: %s", line["status"], line["aborted"], line["error"], trail.String())
			}
		})
	}
}
