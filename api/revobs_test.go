package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/tenant"
)

// rev-obs: a panic the recoverer turns into a 500 must be audited and
// counted as the 500 the caller got, not as a 200.
func TestRevObsPanicAuditedAs500(t *testing.T) {
	var trail, logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	obs := &recordingObserver{}
	h := New(Config{Tenants: stubTenants{}, Proxy: &recordingForwarder{}, Logger: log, Audit: audit.New(&trail), Observer: obs})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/fhir/1.2.666/Patient/1", nil))
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	var line map[string]any
	if err := json.Unmarshal(trail.Bytes(), &line); err != nil {
		t.Fatalf("audit %q: %v", trail.String(), err)
	}
	if line["status"] != float64(500) {
		t.Errorf("audit status %v for a 500 answer: %s", line["status"], trail.String())
	}
	if line["error"] == nil {
		t.Errorf("audit line of a 500 has no error code: %s", trail.String())
	}
	if len(obs.got) != 1 || obs.got[0].status != 500 {
		t.Errorf("metrics observed %+v, want one 500", obs.got)
	}
}

// upstreamObserver records ObserveUpstream.
type upstreamObserver struct {
	recordingObserver
	mu       sync.Mutex
	upstream []time.Duration
}

func (o *upstreamObserver) ObserveUpstream(_ string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.upstream = append(o.upstream, d)
}

// rev-obs: cqgate_upstream_duration_seconds is "Time until a partner's
// FHIR server answered with response headers" (its Help,
// internal/metrics/metrics.go), shown as "Partner latency" on the
// dashboard. The router times the whole Forward, body streaming
// included: a slow caller or a large download is counted as partner
// latency.
func TestRevObsUpstreamDurationStopsAtTheHeader(t *testing.T) {
	obs := &upstreamObserver{}
	fwd := ForwarderFunc(func(w http.ResponseWriter, r *http.Request, tn *tenant.Tenant, p string) {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.WriteHeader(http.StatusOK) // the partner's header, at once
		http.NewResponseController(w).Flush()
		time.Sleep(300 * time.Millisecond) // then a long body
		_, _ = io.WriteString(w, `{"resourceType":"Patient"}`+"\n")
	})
	h := New(Config{Tenants: stubTenants{}, Proxy: fwd, Observer: obs})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fhir/1.2.3/Patient", nil))
	if len(obs.upstream) != 1 {
		t.Fatalf("observed %v", obs.upstream)
	}
	if d := obs.upstream[0]; d > 150*time.Millisecond {
		t.Errorf("upstream duration %v for a partner that answered its header at once (the body took 300ms)", d)
	}
}

// abortingBulkForwarder is the proxy on a bulk file download that breaks
// off mid-body (the partner's body ends early, or the caller goes away):
// it noted the download in the request's audit record, then aborts.
type abortingBulkForwarder struct{}

func (abortingBulkForwarder) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	bk := &audit.Bulk{Event: audit.BulkDownload, FileType: "Patient"}
	if rec := audit.FromContext(r.Context()); rec != nil {
		rec.Bulk = bk
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.WriteHeader(http.StatusOK)
	n, _ := io.WriteString(w, `{"resourceType":"Patient"}`+"\n")
	bk.Bytes += int64(n)
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

// rev-obs: README "The audit line of a bulk request carries a bulk
// object: ... on each file download {"event":"download","type":…,"bytes":…}".
// A download cut mid-body is audited without it: api.forward copies the
// proxy's bulk event only after Forward returns, which it never does.
func TestRevObsCutDownloadIsAuditedAsADownload(t *testing.T) {
	var trail lockedBuffer
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(Config{Tenants: stubTenants{}, Proxy: abortingBulkForwarder{}, Logger: log, Audit: audit.New(&trail)}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/bulkfile/abc")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Close()
	var line map[string]any
	if err := json.Unmarshal([]byte(trail.String()), &line); err != nil {
		t.Fatalf("audit %q: %v", trail.String(), err)
	}
	bulk, _ := line["bulk"].(map[string]any)
	if bulk == nil || bulk["event"] != "download" || bulk["bytes"] != float64(27) {
		t.Errorf("audit line of a cut download has bulk %v: %s", line["bulk"], trail.String())
	}
}

// rev-obs: the access log is outermost "so that a recovered panic is
// logged too" (router.go engine); a response aborted mid-body (the
// partner's body broke off, or the caller went away) leaves no access
// log line at all, not even without an audit trail.
func TestRevObsAbortedResponseIsAccessLogged(t *testing.T) {
	logs := &lockedBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	srv := httptest.NewServer(New(Config{Tenants: stubTenants{}, Proxy: abortingForwarder{}, Logger: log}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/Patient")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Close()
	if !bytes.Contains([]byte(logs.String()), []byte("msg=request")) {
		t.Errorf("no access log line for an aborted response: %q", logs.String())
	}
}

// rev-obs: README "Spans: cqgate.request per FHIR or directory request
// (organization OID, FHIR resource type, method, route pattern, status,
// ...)". An aborted response's span is ended without any of them (and
// without an error status), so the broken request looks like nothing in
// the trace.
func TestRevObsAbortedResponseSpanIsDescribed(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(sr))
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(Config{Tenants: stubTenants{}, Proxy: abortingForwarder{}, Logger: log, Tracer: tracing.NewWithProvider(tp)}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/Patient")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Close()
	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended", len(spans))
	}
	attrs := map[string]bool{}
	for _, a := range spans[0].Attributes() {
		attrs[string(a.Key)] = true
	}
	for _, k := range []string{"http.request.method", "http.route", "http.response.status_code", "cqgate.organization.oid"} {
		if !attrs[k] {
			t.Errorf("the aborted request's span has no %s (attributes %v)", k, spans[0].Attributes())
		}
	}
}
