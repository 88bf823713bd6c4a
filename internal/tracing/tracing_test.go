package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
)

func noEnv(string) string { return "" }

// propagating is tracing as cqgate runs without an exporter.
func propagating(t *testing.T) *Tracing {
	t.Helper()
	tr, err := New(context.Background(), Config{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Exporting() {
		t.Fatal("exporting without an endpoint")
	}
	return tr
}

// seen records the trace headers of the requests a transport sends.
type seen struct {
	mu      sync.Mutex
	headers []http.Header
}

func (s *seen) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
}

func (s *seen) last(t *testing.T) http.Header {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.headers) == 0 {
		t.Fatal("nothing was sent")
	}
	return s.headers[len(s.headers)-1]
}

// parseTraceparent splits a version-00 traceparent.
func parseTraceparent(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("traceparent %q is not version-00 W3C trace context", v)
	}
	if parts[1] == strings.Repeat("0", 32) || parts[2] == strings.Repeat("0", 16) {
		t.Fatalf("traceparent %q has an all-zero id", v)
	}
	return parts[1], parts[2], parts[3]
}

// inbound is a caller's request with the given trace headers.
func inbound(headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/fhir/2.16.840.1.113883.3.13.1/Patient/1316024?name=peters", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

// TestPropagationWithoutExport follows a caller's request through
// StartRequest and an outbound Transport with no exporter configured.
func TestPropagationWithoutExport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		// continued: the outbound trace id is the caller's
		continued  bool
		tracestate string
	}{
		{name: "caller sampled", headers: map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"}, continued: true},
		{name: "caller not sampled, with tracestate", headers: map[string]string{
			"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-00", "tracestate": "vendor=opaque,other=x"},
			continued: true, tracestate: "vendor=opaque,other=x"},
		{name: "no traceparent: a new trace"},
		{name: "malformed traceparent: a new trace", headers: map[string]string{"traceparent": "00-zz-" + callerSpanID + "-01", "tracestate": "vendor=opaque"}},
		{name: "all-zero trace id: a new trace", headers: map[string]string{"traceparent": "00-" + strings.Repeat("0", 32) + "-" + callerSpanID + "-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := propagating(t)
			in := inbound(tc.headers)
			ctx, span := tr.StartRequest(in)
			defer span.End()
			if span.IsRecording() {
				t.Error("a span is recorded with no exporter")
			}
			sent := &seen{}
			rt := tr.Transport(sent, "cqgate.upstream", CallFHIR)
			out, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://fhir.example.org/r4/Patient/1316024", nil)
			// What the caller sent, copied on by a reverse proxy.
			for k, v := range in.Header {
				out.Header[k] = v
			}
			resp, err := rt.RoundTrip(out)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := sent.last(t)
			if n := len(h.Values("Traceparent")); n != 1 {
				t.Fatalf("%d traceparent headers sent, want 1", n)
			}
			traceID, spanID, flags := parseTraceparent(t, h.Get("Traceparent"))
			if tc.continued != (traceID == callerTraceID) {
				t.Errorf("trace id %s sent for caller trace %q; continued = %v", traceID, tc.headers["traceparent"], tc.continued)
			}
			if spanID == callerSpanID {
				t.Error("the caller's span id was passed on: cqgate's request needs its own")
			}
			if spanID != span.SpanContext().SpanID().String() {
				t.Errorf("span id %s sent, want the request span's %s", spanID, span.SpanContext().SpanID())
			}
			if flags != "00" {
				t.Errorf("flags %s sent; cqgate records nothing without an exporter and must say so (00)", flags)
			}
			if got := h.Get("Tracestate"); got != tc.tracestate {
				t.Errorf("tracestate %q sent, want %q", got, tc.tracestate)
			}
			if out.Header.Get("Traceparent") != tc.headers["traceparent"] {
				t.Error("the transport changed the request it was given (not InPlace)")
			}
		})
	}
}

// TestRepeatedTraceHeaders follows a caller's request with a trace
// header sent more than once, recorded or not (W3C Trace Context Level 1
// section 3.3.1): tracestate fields are combined into one list, in
// order, which goes on; traceparent fields are no traceparent (their
// combined value is not one), so the trace restarts and the caller's
// tracestate is not read.
func TestRepeatedTraceHeaders(t *testing.T) {
	traceparent := "00-" + callerTraceID + "-" + callerSpanID + "-01"
	other := "00-" + strings.Repeat("1", 32) + "-" + callerSpanID + "-01"
	for _, tc := range []struct {
		name    string
		headers http.Header
		// continued: the outbound trace id is the caller's
		continued  bool
		tracestate string
	}{
		{name: "two tracestate fields: one list", headers: http.Header{"Traceparent": {traceparent}, "Tracestate": {"a=1", "b=2"}},
			continued: true, tracestate: "a=1,b=2"},
		{name: "tracestate fields with spaces and an empty one", headers: http.Header{"Traceparent": {traceparent}, "Tracestate": {"a=1 ", "", " b=2"}},
			continued: true, tracestate: "a=1,b=2"},
		{name: "two traceparent fields: a new trace", headers: http.Header{"Traceparent": {traceparent, other}, "Tracestate": {"a=1"}}},
		{name: "the same traceparent twice: a new trace", headers: http.Header{"Traceparent": {traceparent, traceparent}}},
	} {
		for _, mode := range []string{"propagating", "recording"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				tr := propagating(t)
				if mode == "recording" {
					tr, _ = recording(t)
				}
				in := inbound(nil)
				in.Header = tc.headers.Clone()
				ctx, span := tr.StartRequestIn(new(Request), in)
				defer span.End()
				sent := &seen{}
				out, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://fhir.example.org/r4/Patient", nil)
				resp, err := tr.Transport(sent, "cqgate.upstream", CallFHIR).RoundTrip(out)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				h := sent.last(t)
				if n := len(h.Values("Traceparent")); n != 1 {
					t.Fatalf("%d traceparent headers sent, want 1", n)
				}
				traceID, _, _ := parseTraceparent(t, h.Get("Traceparent"))
				if tc.continued != (traceID == callerTraceID) || traceID == strings.Repeat("1", 32) {
					t.Errorf("trace id %s sent for the caller's traceparent fields %q; continued = %v", traceID, tc.headers["Traceparent"], tc.continued)
				}
				if got := h.Values("Tracestate"); strings.Join(got, "|") != tc.tracestate {
					t.Errorf("tracestate %q sent for the caller's fields %q, want %q", got, tc.headers["Tracestate"], tc.tracestate)
				}
			})
		}
	}
}

// TestTransportWithoutTrace: requests made outside any request (Vault
// logins, refreshes) start a trace of their own.
func TestTransportWithoutTrace(t *testing.T) {
	tr := propagating(t)
	sent := &seen{}
	rt := tr.Transport(sent, "cqgate.http.vault", CallVault)
	var ids []string
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, "https://vault.example.org/v1/secret/data/x", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		id, _, _ := parseTraceparent(t, sent.last(t).Get("Traceparent"))
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Error("two background requests share a trace")
	}
}

// TestInPlace sets the headers on the request given, and replaces the
// caller's.
func TestInPlace(t *testing.T) {
	tr := propagating(t)
	ctx, span := tr.StartRequest(inbound(map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"}))
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://fhir.example.org/r4/metadata", nil)
	req.Header.Set("Traceparent", "00-"+callerTraceID+"-"+callerSpanID+"-01")
	req.Header.Set("Tracestate", "stale=1")
	if _, err := tr.Transport(&seen{}, "x", CallFHIR, InPlace()).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	_, spanID, _ := parseTraceparent(t, req.Header.Get("Traceparent"))
	if spanID != span.SpanContext().SpanID().String() {
		t.Errorf("span id %s, want %s", spanID, span.SpanContext().SpanID())
	}
	if _, ok := req.Header["Tracestate"]; ok {
		t.Error("a tracestate the caller's trace context did not carry was left on the request")
	}
}

// recording is tracing that records every span into rec.
func recording(t *testing.T) (*Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return NewWithProvider(tp), rec
}

// TestRecordedSpans checks the span tree of a request and that client
// spans describe calls without their URLs.
func TestRecordedSpans(t *testing.T) {
	tr, rec := recording(t)
	ctx, span := tr.StartRequest(inbound(map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"}))
	lctx, lookup := Start(ctx, "cqgate.directory.lookup")
	sent := &seen{}
	req, _ := http.NewRequestWithContext(lctx, http.MethodGet, "https://directory.example.org:8443/fhir/Organization?identifier=urn:oid:1.2.3&_format=json", nil)
	if _, err := tr.Transport(sent, "cqgate.http.directory", CallDirectory).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	lookup.End()
	EndRequest(span, http.MethodGet, "/fhir/:oid/*path", http.StatusBadGateway, OrganizationKey.String("1.2.3"))
	span.End()

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	server, lk, client := spans["cqgate.request"], spans["cqgate.directory.lookup"], spans["cqgate.http.directory"]
	if server == nil || lk == nil || client == nil {
		t.Fatalf("spans recorded: %v", spans)
	}
	if server.Parent().SpanID().String() != callerSpanID || !server.Parent().IsRemote() || server.SpanContext().TraceID().String() != callerTraceID {
		t.Errorf("request span's parent %v, want the caller's remote span", server.Parent())
	}
	if server.SpanKind() != trace.SpanKindServer || client.SpanKind() != trace.SpanKindClient {
		t.Errorf("kinds %v and %v", server.SpanKind(), client.SpanKind())
	}
	if lk.Parent().SpanID() != server.SpanContext().SpanID() || client.Parent().SpanID() != lk.SpanContext().SpanID() {
		t.Error("lookup is not under the request, or the HTTP call not under the lookup")
	}
	_, spanID, flags := parseTraceparent(t, sent.last(t).Get("Traceparent"))
	if spanID != client.SpanContext().SpanID().String() || flags != "01" {
		t.Errorf("sent span %s flags %s, want the client span %s, sampled", spanID, flags, client.SpanContext().SpanID())
	}
	want := map[attribute.Key]attribute.Value{
		"cqgate.call":               attribute.StringValue("directory"),
		"http.request.method":       attribute.StringValue("GET"),
		"server.address":            attribute.StringValue("directory.example.org"),
		"server.port":               attribute.IntValue(8443),
		"http.response.status_code": attribute.IntValue(200),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range client.Attributes() {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("client span %s = %v, want %v", k, got[k].Emit(), v.Emit())
		}
	}
	if len(got) != len(want) {
		t.Errorf("client span attributes %v, want exactly %v", got, want)
	}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, "identifier") || strings.Contains(v, "/") && kv.Key != "http.route" {
				t.Errorf("span %s attribute %s = %q carries a URL, path or query", s.Name(), kv.Key, v)
			}
		}
	}
	if server.Status().Code.String() != "Error" || server.Status().Description != "Bad Gateway" {
		t.Errorf("request status %v", server.Status())
	}
}

// TestStartUnderNonRecording allocates nothing and hands back the parent.
func TestStartUnderNonRecording(t *testing.T) {
	tr := propagating(t)
	ctx, span := tr.StartRequest(inbound(nil))
	defer span.End()
	if allocs := testing.AllocsPerRun(100, func() {
		c, s := Start(ctx, "cqgate.token")
		s.End()
		_ = c
	}); allocs != 0 {
		t.Errorf("Start under a span that is not recording allocates %v times", allocs)
	}
	c, s := Start(ctx, "x")
	if c != ctx || !s.SpanContext().Equal(span.SpanContext()) {
		t.Error("Start under a non-recording span made a new one")
	}
	// No span at all: nothing to continue, nothing started.
	if _, s := Start(context.Background(), "x"); s.SpanContext().IsValid() {
		t.Error("Start without a span in the context started a trace")
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		insecure bool
		ok       bool
	}{
		{"https://collector.example.org:4318", false, true},
		{"https://collector.example.org/custom/traces", false, true},
		{"collector:4318", false, true},
		{"collector:4318", true, true},
		{"http://collector:4318", true, true},
		{"http://collector:4318", false, false}, // plain http needs insecure
		{"grpc://collector:4317", false, false},
		{"https://", false, false},
		{"https://user:secret@collector:4318", false, false},
		{"https://collector:4318/?token=x", false, false},
		{"collector", false, false},
		{"", false, false},
	} {
		err := CheckEndpoint(tc.endpoint, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckEndpoint(%q, insecure=%v) = %v, want ok=%v", tc.endpoint, tc.insecure, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckEndpoint(%q) names the password: %v", tc.endpoint, err)
		}
	}
}

// TestExport sends spans to an OTLP/HTTP receiver on loopback, both when
// configured and through OTEL_EXPORTER_OTLP_ENDPOINT.
func TestExport(t *testing.T) {
	type got struct{ path, contentType string }
	received := make(chan got, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received <- got{r.URL.Path, r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"configured", Config{Endpoint: srv.URL, Insecure: true, SampleRatio: 1, Getenv: noEnv}},
		{"environment", Config{SampleRatio: 1, Getenv: func(k string) string {
			if k == EnvEndpoint {
				return srv.URL
			}
			return ""
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Endpoint == "" {
				// The exporter reads the environment itself.
				t.Setenv(EnvEndpoint, srv.URL)
			}
			tr, err := New(context.Background(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Exporting() {
				t.Fatal("not exporting")
			}
			_, span := tr.StartRequest(inbound(nil))
			if !span.IsRecording() {
				t.Fatal("sample_ratio 1 and the span is not recorded")
			}
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case g := <-received:
				if g.path != "/v1/traces" || g.contentType != "application/x-protobuf" {
					t.Errorf("exported to %s as %s", g.path, g.contentType)
				}
			default:
				t.Fatal("nothing was exported")
			}
		})
	}
}

// TestSampleRatioZero records nothing new but follows a sampled caller.
func TestSampleRatioZero(t *testing.T) {
	tr, err := New(context.Background(), Config{Endpoint: "https://collector.invalid:4318", SampleRatio: 0, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	}()
	_, fresh := tr.StartRequest(inbound(nil))
	_, followed := tr.StartRequest(inbound(map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"}))
	if fresh.IsRecording() || !followed.IsRecording() {
		t.Errorf("ratio 0: new trace recorded = %v (want false), sampled caller's = %v (want true)", fresh.IsRecording(), followed.IsRecording())
	}
}
