package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/cqgate/cqgate/internal/upstream"
)

// The referee of these tests is the official generated code
// (go.opentelemetry.io/proto/otlp and proto.Unmarshal), linked into the
// tests only.

// collector is an OTLP/HTTP receiver on loopback: it decodes every
// request with the official types.
type collector struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []http.Header
	attempts atomic.Int32
	// answer, when set, answers attempt n (1-based) instead of 200.
	answer func(n int, w http.ResponseWriter) bool
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(c.attempts.Add(1))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("collector: reading: %v", err)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector: %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Errorf("collector: gzip: %v", err)
				return
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Errorf("collector: gunzip: %v", err)
				return
			}
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: proto.Unmarshal: %v", err)
		}
		c.mu.Lock()
		c.requests = append(c.requests, &req)
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
		if c.answer != nil && c.answer(n, w) {
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) last(t *testing.T) (*coltracepb.ExportTraceServiceRequest, http.Header) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.requests) == 0 {
		t.Fatal("the collector received nothing")
	}
	return c.requests[len(c.requests)-1], c.headers[len(c.headers)-1]
}

func testExporter(t *testing.T, rawURL string, mod func(*otlpSettings)) *exporter {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s := otlpSettings{url: u, timeout: 5 * time.Second}
	if mod != nil {
		mod(&s)
	}
	e := newExporter(s)
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

// recordedSpans makes spans of every shape with real SDK providers: two
// resources, two scopes, a remote parent with trace state, a local
// parent, every attribute type, events, links, statuses and limits that
// drop attributes, events and links.
func recordedSpans(t testing.TB) []sdktrace.ReadOnlySpan {
	t.Helper()
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "cqgate-test"), attribute.Int("res.n", 7))
	resB := resource.NewSchemaless(attribute.String("service.name", "other"), attribute.Bool("res.b", true))
	limits := sdktrace.NewSpanLimits()
	limits.AttributeCountLimit = 16
	limits.EventCountLimit = 2
	limits.LinkCountLimit = 1
	limits.AttributePerEventCountLimit = 1
	recA, recB := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	tpA := sdktrace.NewTracerProvider(sdktrace.WithResource(resA), sdktrace.WithSpanProcessor(recA), sdktrace.WithRawSpanLimits(limits))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithResource(resB), sdktrace.WithSpanProcessor(recB))

	trA := tpA.Tracer("scope-a", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL("https://opentelemetry.io/schemas/1.26.0"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	trA2 := tpA.Tracer("scope-b")

	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID(t, callerTraceID),
		SpanID:     mustSpanID(t, callerSpanID),
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
		Remote:     true,
	})
	linked := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID(t, "0102030405060708090a0b0c0d0e0f10"),
		SpanID:     mustSpanID(t, "1112131415161718"),
		TraceState: ts,
		Remote:     true,
	})
	start := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, root := trA.Start(ctx, "cqgate.request", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithLinks(
			trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("link.k", "v")}},
			trace.Link{SpanContext: linked}, // beyond LinkCountLimit
		))
	root.SetAttributes(
		attribute.String("s", "value"),
		attribute.String("empty", ""),
		attribute.Bool("t", true),
		attribute.Bool("f", false),
		attribute.Int64("i", -42),
		attribute.Int64("zero", 0),
		attribute.Int64("max", math.MaxInt64),
		attribute.Float64("d", 3.25),
		attribute.Float64("dzero", 0),
		attribute.StringSlice("ss", []string{"a", "", "c"}),
		attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, -2, 0}),
		attribute.Float64Slice("ds", []float64{0.5, -1}),
		attribute.ByteSlice("bytes", []byte{0, 1, 2}),
		attribute.Slice("mixed", attribute.StringValue("x"), attribute.IntValue(3)),
		attribute.Map("m", attribute.String("k", "v"), attribute.Bool("b", false)),
		attribute.String("dropped.1", "over the limit"),
		attribute.String("dropped.2", "over the limit"),
	)
	root.AddEvent("dropped: the oldest beyond the limit", trace.WithTimestamp(start.Add(time.Millisecond)))
	root.AddEvent("second", trace.WithTimestamp(start.Add(2*time.Millisecond)),
		trace.WithAttributes(attribute.String("e.k", "v"), attribute.Int("e.dropped", 1)))
	root.AddEvent("third", trace.WithTimestamp(start.Add(3*time.Millisecond)))

	_, child := trA.Start(ctx, "cqgate.token", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(time.Millisecond)))
	child.SetStatus(codes.Ok, "")
	child.SetAttributes(attribute.String("big", strings.Repeat("x", 20000))) // lengths of three bytes
	child.End(trace.WithTimestamp(start.Add(5 * time.Millisecond)))
	root.SetStatus(codes.Error, "upstream_unavailable")
	root.End(trace.WithTimestamp(start.Add(10 * time.Millisecond)))

	_, other := trA2.Start(context.Background(), "cqgate.discovery", trace.WithSpanKind(trace.SpanKindInternal))
	other.End()
	for _, k := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindConsumer} {
		_, s := trA2.Start(context.Background(), "kind", trace.WithSpanKind(k))
		s.End()
	}
	_, b := tpB.Tracer("scope-a").Start(context.Background(), "elsewhere")
	b.End()
	return append(recA.Ended(), recB.Ended()...)
}

func mustTraceID(t testing.TB, s string) trace.TraceID {
	t.Helper()
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t testing.TB, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestExportEncoding decodes what the exporter sends with the official
// generated types and compares it field by field with the SDK's spans.
func TestExportEncoding(t *testing.T) {
	spans := recordedSpans(t)
	c := newCollector(t)
	e := testExporter(t, c.srv.URL+"/v1/traces", nil)
	if err := e.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	req, _ := c.last(t)
	if len(req.ResourceSpans) != 2 {
		t.Fatalf("%d ResourceSpans, want 2 (one per resource)", len(req.ResourceSpans))
	}
	byID := make(map[trace.SpanID]sdktrace.ReadOnlySpan)
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	seen := 0
	for _, rs := range req.ResourceSpans {
		var first sdktrace.ReadOnlySpan
		scopes := make(map[string]bool)
		for _, ss := range rs.ScopeSpans {
			key := ss.GetScope().GetName() + "@" + ss.GetScope().GetVersion()
			if scopes[key] {
				t.Errorf("scope %s appears twice in one ResourceSpans", key)
			}
			scopes[key] = true
			for _, sp := range ss.Spans {
				want, ok := byID[trace.SpanID(sp.SpanId)]
				if !ok {
					t.Fatalf("span id %x was not recorded", sp.SpanId)
				}
				seen++
				if first == nil {
					first = want
				}
				if !proto.Equal(sp, expectedSpan(want)) {
					t.Errorf("span %q:\n got %s\nwant %s", want.Name(), prototext.Format(sp), prototext.Format(expectedSpan(want)))
				}
				sc := want.InstrumentationScope()
				wantScope := &commonpb.InstrumentationScope{Name: sc.Name, Version: sc.Version, Attributes: expectedKeyValues(sc.Attributes.ToSlice())}
				if !proto.Equal(ss.Scope, wantScope) || ss.SchemaUrl != sc.SchemaURL {
					t.Errorf("scope of %q: got %v %q, want %v %q", want.Name(), ss.Scope, ss.SchemaUrl, wantScope, sc.SchemaURL)
				}
			}
		}
		wantRes := &resourcepb.Resource{Attributes: expectedKeyValues(first.Resource().Attributes())}
		if !proto.Equal(rs.Resource, wantRes) || rs.SchemaUrl != first.Resource().SchemaURL() {
			t.Errorf("resource: got %v %q, want %v %q", rs.Resource, rs.SchemaUrl, wantRes, first.Resource().SchemaURL())
		}
	}
	if seen != len(spans) {
		t.Errorf("%d spans sent, want %d", seen, len(spans))
	}

	// Spot checks against literal values, independent of expectedSpan.
	var root *tracepb.Span
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if sp.Name == "cqgate.request" {
					root = sp
				}
			}
		}
	}
	if root == nil {
		t.Fatal("no cqgate.request span")
	}
	callerSpan := mustSpanID(t, callerSpanID)
	checks := []struct {
		name string
		ok   bool
	}{
		{"parent is the caller's span", bytes.Equal(root.ParentSpanId, callerSpan[:])},
		{"trace state", root.TraceState == "vendor=abc,other=1"},
		{"flags: sampled, parent known remote", root.Flags == 0x301},
		{"kind server", root.Kind == tracepb.Span_SPAN_KIND_SERVER},
		{"start", root.StartTimeUnixNano == uint64(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).UnixNano())},
		{"status", root.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && root.Status.GetMessage() == "upstream_unavailable"},
		{"dropped", root.DroppedAttributesCount == 2 && root.DroppedEventsCount == 1 && root.DroppedLinksCount == 1},
		{"events", len(root.Events) == 2 && root.Events[0].Name == "second" && root.Events[0].DroppedAttributesCount == 1 &&
			len(root.Events[0].Attributes) == 1 && root.Events[0].Attributes[0].Value.GetStringValue() == "v"},
		{"link", len(root.Links) == 1 && root.Links[0].TraceState == "vendor=abc,other=1" && root.Links[0].Flags == 0x300},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("cqgate.request: %s: %s", c.name, prototext.Format(root))
		}
	}
	attrs := make(map[string]*commonpb.AnyValue)
	for _, kv := range root.Attributes {
		attrs[kv.Key] = kv.Value
	}
	// Zero values inside the oneof are present, not absent.
	if v, ok := attrs["f"].GetValue().(*commonpb.AnyValue_BoolValue); !ok || v.BoolValue {
		t.Errorf("f = %v, want bool_value false", attrs["f"])
	}
	if v, ok := attrs["zero"].GetValue().(*commonpb.AnyValue_IntValue); !ok || v.IntValue != 0 {
		t.Errorf("zero = %v, want int_value 0", attrs["zero"])
	}
	if v, ok := attrs["empty"].GetValue().(*commonpb.AnyValue_StringValue); !ok || v.StringValue != "" {
		t.Errorf("empty = %v, want string_value \"\"", attrs["empty"])
	}
	if attrs["i"].GetIntValue() != -42 || attrs["max"].GetIntValue() != math.MaxInt64 || attrs["d"].GetDoubleValue() != 3.25 {
		t.Errorf("numbers: %v %v %v", attrs["i"], attrs["max"], attrs["d"])
	}
	if got := attrs["m"].GetKvlistValue().GetValues(); len(got) != 2 || got[1].Key != "k" || got[1].Value.GetStringValue() != "v" || got[0].Key != "b" {
		t.Errorf("map: %v", attrs["m"])
	}
}

func expectedSpan(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := uint32(sc.TraceFlags()) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if s.Parent().IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	code := tracepb.Status_STATUS_CODE_UNSET
	switch s.Status().Code {
	case codes.Ok:
		code = tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		code = tracepb.Status_STATUS_CODE_ERROR
	}
	p := &tracepb.Span{
		TraceId:                tid[:],
		SpanId:                 sid[:],
		TraceState:             sc.TraceState().String(),
		Name:                   s.Name(),
		Kind:                   tracepb.Span_SpanKind(s.SpanKind()),
		StartTimeUnixNano:      uint64(s.StartTime().UnixNano()),
		EndTimeUnixNano:        uint64(s.EndTime().UnixNano()),
		Attributes:             expectedKeyValues(s.Attributes()),
		DroppedAttributesCount: uint32(s.DroppedAttributes()),
		DroppedEventsCount:     uint32(s.DroppedEvents()),
		DroppedLinksCount:      uint32(s.DroppedLinks()),
		Status:                 &tracepb.Status{Code: code, Message: s.Status().Description},
		Flags:                  flags,
	}
	if psid := s.Parent().SpanID(); psid.IsValid() {
		p.ParentSpanId = psid[:]
	}
	for _, e := range s.Events() {
		p.Events = append(p.Events, &tracepb.Span_Event{
			TimeUnixNano:           uint64(e.Time.UnixNano()),
			Name:                   e.Name,
			Attributes:             expectedKeyValues(e.Attributes),
			DroppedAttributesCount: uint32(e.DroppedAttributeCount),
		})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		lf := uint32(l.SpanContext.TraceFlags()) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
		if l.SpanContext.IsRemote() {
			lf |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
		}
		p.Links = append(p.Links, &tracepb.Span_Link{
			TraceId:                ltid[:],
			SpanId:                 lsid[:],
			TraceState:             l.SpanContext.TraceState().String(),
			Attributes:             expectedKeyValues(l.Attributes),
			DroppedAttributesCount: uint32(l.DroppedAttributeCount),
			Flags:                  lf,
		})
	}
	return p
}

func expectedKeyValues(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: expectedValue(kv.Value)})
	}
	return out
}

func expectedValue(v attribute.Value) *commonpb.AnyValue {
	arr := func(vs []*commonpb.AnyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		var vs []*commonpb.AnyValue
		for _, x := range v.AsBoolSlice() {
			vs = append(vs, expectedValue(attribute.BoolValue(x)))
		}
		return arr(vs)
	case attribute.INT64SLICE:
		var vs []*commonpb.AnyValue
		for _, x := range v.AsInt64Slice() {
			vs = append(vs, expectedValue(attribute.Int64Value(x)))
		}
		return arr(vs)
	case attribute.FLOAT64SLICE:
		var vs []*commonpb.AnyValue
		for _, x := range v.AsFloat64Slice() {
			vs = append(vs, expectedValue(attribute.Float64Value(x)))
		}
		return arr(vs)
	case attribute.STRINGSLICE:
		var vs []*commonpb.AnyValue
		for _, x := range v.AsStringSlice() {
			vs = append(vs, expectedValue(attribute.StringValue(x)))
		}
		return arr(vs)
	case attribute.SLICE:
		var vs []*commonpb.AnyValue
		for _, x := range v.AsSlice() {
			vs = append(vs, expectedValue(x))
		}
		return arr(vs)
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: expectedKeyValues(v.AsMap())}}}
	}
	return &commonpb.AnyValue{}
}

// TestExportGzip: OTEL_EXPORTER_OTLP_COMPRESSION=gzip compresses the body.
func TestExportGzip(t *testing.T) {
	c := newCollector(t)
	s, err := exporterSettings(Config{Getenv: noEnv}, envOf(map[string]string{
		EnvEndpoint:                        c.srv.URL,
		"OTEL_EXPORTER_OTLP_COMPRESSION":   "gzip",
		"OTEL_EXPORTER_OTLP_INSECURE":      "",
		"OTEL_EXPORTER_OTLP_TRACES_HEADER": "ignored",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.gzip {
		t.Fatal("gzip not read from the environment")
	}
	e := newExporter(s)
	defer func() { _ = e.Shutdown(context.Background()) }()
	spans := recordedSpans(t)
	if err := e.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	req, h := c.last(t)
	if h.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding %q", h.Get("Content-Encoding"))
	}
	n := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	if n != len(spans) {
		t.Errorf("%d spans decoded from the gzipped body, want %d", n, len(spans))
	}
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestExporterSettings reads the environment as the SDK does.
func TestExporterSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		env     map[string]string
		url     string
		headers map[string]string
		timeout time.Duration
		gzip    bool
	}{
		{name: "base endpoint gets the signal path",
			env: map[string]string{EnvEndpoint: "https://collector:4318"},
			url: "https://collector:4318/v1/traces", timeout: 10 * time.Second},
		{name: "base endpoint with a path",
			env: map[string]string{EnvEndpoint: "http://collector:4318/otlp/"},
			url: "http://collector:4318/otlp/v1/traces", timeout: 10 * time.Second},
		{name: "the traces endpoint is used as it is and wins",
			env: map[string]string{EnvEndpoint: "https://a:4318", EnvTracesEndpoint: "https://b:4318/custom"},
			url: "https://b:4318/custom", timeout: 10 * time.Second},
		{name: "the traces endpoint without a path is /",
			env: map[string]string{EnvTracesEndpoint: "https://b:4318"},
			url: "https://b:4318/", timeout: 10 * time.Second},
		{name: "user info and query of an endpoint are not used",
			env: map[string]string{EnvEndpoint: "https://u:pw@c:4318/p?x=1"},
			url: "https://c:4318/p/v1/traces", timeout: 10 * time.Second},
		{name: "insecure variable",
			env: map[string]string{EnvEndpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "TRUE"},
			url: "http://c:4318/v1/traces", timeout: 10 * time.Second},
		{name: "headers decoded, the traces variable wins",
			env: map[string]string{EnvEndpoint: "https://c:4318",
				"OTEL_EXPORTER_OTLP_HEADERS":        "a=1",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS": " api-key = secret%20value%2C1 ,x-tenant=t"},
			url: "https://c:4318/v1/traces", headers: map[string]string{"api-key": "secret value,1", "x-tenant": "t"}, timeout: 10 * time.Second},
		{name: "timeout and compression",
			env: map[string]string{EnvEndpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "1500", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip"},
			url: "https://c:4318/v1/traces", timeout: 1500 * time.Millisecond, gzip: true},
		{name: "compression none",
			env: map[string]string{EnvEndpoint: "https://c:4318", "OTEL_EXPORTER_OTLP_COMPRESSION": "none", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			url: "https://c:4318/v1/traces", timeout: 10 * time.Second},
		{name: "the configured endpoint wins, env headers stay",
			cfg: Config{Endpoint: "collector:4318"},
			env: map[string]string{EnvEndpoint: "http://env:4318", "OTEL_EXPORTER_OTLP_HEADERS": "k=v"},
			url: "https://collector:4318/v1/traces", headers: map[string]string{"k": "v"}, timeout: 10 * time.Second},
		{name: "configured host:port, insecure",
			cfg: Config{Endpoint: "collector:4318", Insecure: true},
			url: "http://collector:4318/v1/traces", timeout: 10 * time.Second},
		{name: "configured URL with a path",
			cfg: Config{Endpoint: "https://collector/custom/traces"},
			url: "https://collector/custom/traces", timeout: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := exporterSettings(tc.cfg, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if s.url.String() != tc.url || s.timeout != tc.timeout || s.gzip != tc.gzip {
				t.Errorf("url %s timeout %s gzip %v, want %s %s %v", s.url, s.timeout, s.gzip, tc.url, tc.timeout, tc.gzip)
			}
			if len(s.headers) != len(tc.headers) {
				t.Errorf("headers %v, want %v", s.headers, tc.headers)
			}
			for k, v := range tc.headers {
				if s.headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, s.headers[k], v)
				}
			}
		})
	}
}

// TestExporterSettingsRefused: what cannot be honoured is refused at
// start, and no refusal names a header value.
func TestExporterSettingsRefused(t *testing.T) {
	const secret = "sk-live-0123456789"
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
		{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"},
		{"OTEL_EXPORTER_OTLP_HEADERS": "authorization " + secret},
		{"OTEL_EXPORTER_OTLP_HEADERS": "ok=1,bad key=" + secret},
		{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=" + secret + "%zz"},
		{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"},
		{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/nonexistent/crt.pem"},
		{EnvEndpoint: "not a url"},
	} {
		env[EnvEndpoint+"_unused"] = ""
		if _, ok := env[EnvEndpoint]; !ok {
			env[EnvEndpoint] = "https://c:4318"
		}
		_, err := exporterSettings(Config{}, envOf(env))
		if err == nil {
			t.Errorf("%v: accepted", env)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%v: the error names the header value: %v", env, err)
		}
	}
}

// TestExportHeadersFromEnv: the headers of OTEL_EXPORTER_OTLP_HEADERS go
// with every export, and New reads them through Config.Getenv.
func TestExportHeadersFromEnv(t *testing.T) {
	c := newCollector(t)
	tr, err := New(context.Background(), Config{SampleRatio: 1, Getenv: envOf(map[string]string{
		EnvEndpoint:                  c.srv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20collector-key,x-scope=cqgate",
	})})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartRequest(inbound(nil))
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	req, h := c.last(t)
	if h.Get("Authorization") != "Bearer collector-key" || h.Get("X-Scope") != "cqgate" {
		t.Errorf("headers sent: %v", h)
	}
	rs := req.ResourceSpans
	if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || rs[0].ScopeSpans[0].Scope.GetName() != ScopeName ||
		len(rs[0].ScopeSpans[0].Spans) != 1 || rs[0].ScopeSpans[0].Spans[0].Name != "cqgate.request" {
		t.Fatalf("exported: %s", prototext.Format(req))
	}
	var service string
	for _, kv := range rs[0].Resource.GetAttributes() {
		if kv.Key == "service.name" {
			service = kv.Value.GetStringValue()
		}
	}
	if service != DefaultServiceName {
		t.Errorf("service.name %q", service)
	}
}

// sleeps records the waits of a retry policy without sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

// TestExportRetries: 429, 502, 503 and 504 are retried after the backoff
// or Retry-After, a bounded number of times; other refusals are not.
func TestExportRetries(t *testing.T) {
	spans := recordedSpans(t)
	for _, tc := range []struct {
		name       string
		answer     func(n int, w http.ResponseWriter) bool
		attempts   int
		ok         bool
		minWait    time.Duration
		errContain string
	}{
		{name: "503 then 200", attempts: 2, ok: true, minWait: 2 * time.Second,
			answer: func(n int, w http.ResponseWriter) bool {
				if n == 1 {
					w.Header().Set("Retry-After", "2")
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				}
				return false
			}},
		{name: "429, 502, 504 then 200", attempts: 4, ok: true,
			answer: func(n int, w http.ResponseWriter) bool {
				codes := []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout}
				if n <= len(codes) {
					w.WriteHeader(codes[n-1])
					return true
				}
				return false
			}},
		{name: "always 503: bounded", attempts: exportRetry.Attempts, errContain: "503",
			answer: func(_ int, w http.ResponseWriter) bool {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}},
		{name: "400 is not retried", attempts: 1, errContain: "400",
			answer: func(_ int, w http.ResponseWriter) bool {
				http.Error(w, "bad span", http.StatusBadRequest)
				return true
			}},
		{name: "a Retry-After beyond a minute ends the export", attempts: 1, errContain: "wait",
			answer: func(_ int, w http.ResponseWriter) bool {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(t)
			c.answer = tc.answer
			e := testExporter(t, c.srv.URL+"/v1/traces", nil)
			var sl sleeps
			e.retry.Sleep = sl.sleep
			err := e.ExportSpans(context.Background(), spans)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errContain) {
				t.Errorf("err = %v, want it to name %q", err, tc.errContain)
			}
			if got := int(c.attempts.Load()); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			if len(sl.d) != tc.attempts-1 {
				t.Errorf("%d waits, want %d", len(sl.d), tc.attempts-1)
			}
			for _, d := range sl.d {
				if d < tc.minWait || d > exportRetry.Max*2 {
					t.Errorf("waited %s, want between %s and %s", d, tc.minWait, exportRetry.Max*2)
				}
			}
		})
	}
}

// TestExportUnreachableRetried: a collector that cannot be reached is
// retried, and the attempts are bounded.
func TestExportUnreachableRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	e := testExporter(t, addr+"/v1/traces", nil)
	var sl sleeps
	e.retry.Sleep = sl.sleep
	err := e.ExportSpans(context.Background(), recordedSpans(t))
	if err == nil {
		t.Fatal("exported to a closed port")
	}
	if len(sl.d) != exportRetry.Attempts-1 {
		t.Errorf("%d waits, want %d", len(sl.d), exportRetry.Attempts-1)
	}
}

// TestExportTimeout: OTEL_EXPORTER_OTLP_TIMEOUT bounds each attempt.
func TestExportTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := exporterSettings(Config{}, envOf(map[string]string{EnvEndpoint: srv.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": "100"}))
	if err != nil {
		t.Fatal(err)
	}
	e := newExporter(s)
	defer func() { _ = e.Shutdown(context.Background()) }()
	e.retry.Attempts = 1
	began := time.Now()
	if err := e.ExportSpans(context.Background(), recordedSpans(t)); err == nil {
		t.Fatal("a collector that never answers: no error")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the attempt lasted %s with a 100 ms timeout", d)
	}
}

// TestExportPartialSuccess: a collector's partial success is returned as
// an error (which the batch processor logs through otel.Handle).
func TestExportPartialSuccess(t *testing.T) {
	const secret = "collector-key-4242"
	for _, tc := range []struct {
		name     string
		resp     *coltracepb.ExportTraceServiceResponse
		rejected int64
		message  string
	}{
		{"nothing to report", &coltracepb.ExportTraceServiceResponse{}, 0, ""},
		{"empty partial success", &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{}}, 0, ""},
		{"rejected", &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"}}, 3, "too old"},
		{"warning only", &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{ErrorMessage: "deprecated field"}}, 0, "deprecated field"},
		{"the message repeats a header value", &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "key " + secret + " over quota"}}, 1, "key REDACTED over quota"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := proto.Marshal(tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector(t)
			c.answer = func(_ int, w http.ResponseWriter) bool {
				w.Header().Set("Content-Type", "application/x-protobuf")
				_, _ = w.Write(body)
				return true
			}
			e := testExporter(t, c.srv.URL+"/v1/traces", func(s *otlpSettings) { s.headers = map[string]string{"Api-Key": secret} })
			err = e.ExportSpans(context.Background(), recordedSpans(t))
			if tc.rejected == 0 && tc.message == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var ps *PartialSuccessError
			if !errors.As(err, &ps) || ps.Rejected != tc.rejected || ps.Message != tc.message {
				t.Fatalf("err = %v, want a partial success of %d spans, %q", err, tc.rejected, tc.message)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error names the header value: %v", err)
			}
			if got := int(c.attempts.Load()); got != 1 {
				t.Errorf("a partial success was sent %d times", got)
			}
		})
	}
}

// TestExportErrorsHoldNoHeaderValue: a collector echoing the request's
// headers in its refusal does not bring a header value into the error.
func TestExportErrorsHoldNoHeaderValue(t *testing.T) {
	const secret = "sk-live-otlp-secret"
	c := newCollector(t)
	c.answer = func(_ int, w http.ResponseWriter) bool {
		c.mu.Lock()
		h := c.headers[len(c.headers)-1]
		c.mu.Unlock()
		http.Error(w, "unauthorized: x-api-key="+h.Get("X-Api-Key"), http.StatusUnauthorized)
		return true
	}
	e := testExporter(t, c.srv.URL+"/v1/traces", func(s *otlpSettings) { s.headers = map[string]string{"x-api-key": secret} })
	err := e.ExportSpans(context.Background(), recordedSpans(t))
	if err == nil {
		t.Fatal("a 401 is no error")
	}
	if _, h := c.last(t); h.Get("X-Api-Key") != secret {
		t.Fatalf("the header was not sent: %v", h)
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), upstream.Redacted) {
		t.Errorf("err = %v", err)
	}
}

// TestShutdownHonoursContext: with a collector that never answers,
// Shutdown returns when its context ends and abandons the export.
func TestShutdownHonoursContext(t *testing.T) {
	abandoned := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection after the body
		select {
		case <-r.Context().Done():
			abandoned <- struct{}{}
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	tr, err := New(context.Background(), Config{Endpoint: srv.URL, Insecure: true, SampleRatio: 1, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartRequest(inbound(nil))
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = tr.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("Shutdown took %s with a 300 ms context", d)
	}
	select {
	case <-abandoned:
	case <-time.After(5 * time.Second):
		t.Error("the export under way was not abandoned")
	}
}

// TestExportAfterShutdown: nothing is sent once the exporter is shut down.
func TestExportAfterShutdown(t *testing.T) {
	c := newCollector(t)
	e := testExporter(t, c.srv.URL, nil)
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(context.Background(), recordedSpans(t)); !errors.Is(err, errStopped) {
		t.Errorf("err = %v, want errStopped", err)
	}
	if c.attempts.Load() != 0 {
		t.Error("sent after Shutdown")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
	if got := retryAfter("999999999999999", now); got <= maxRetryAfter {
		t.Errorf("a huge Retry-After reads as %s", got)
	}
}

// TestPartialSuccessMalformed: a malformed answer is reported, not
// trusted, and never panics.
func TestPartialSuccessMalformed(t *testing.T) {
	good, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 5, ErrorMessage: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, m, ok := partialSuccess(good); !ok || r != 5 || m != "m" {
		t.Errorf("partialSuccess(good) = %d %q %v", r, m, ok)
	}
	for i := 1; i < len(good); i++ {
		if _, _, ok := partialSuccess(good[:i]); ok {
			t.Errorf("a response cut at %d bytes was read", i)
		}
	}
	if _, _, ok := partialSuccess([]byte{0xff, 0xff, 0xff}); ok {
		t.Error("garbage was read")
	}
}

// TestWireLengths: nested lengths of one, two and three bytes, each
// followed by a field that must still be found where it belongs.
func TestWireLengths(t *testing.T) {
	for _, n := range []int{0, 1, 126, 127, 128, 300, 16383, 16384, 70000} {
		var w wire
		// An ArrayValue: values (1) are AnyValues with string_value (1).
		m := w.open(fListValues)
		w.anyString(fAnyString, strings.Repeat("a", n))
		w.close(m)
		m = w.open(fListValues)
		w.anyInt(int64(n))
		w.close(m)
		var arr commonpb.ArrayValue
		if err := proto.Unmarshal(w.b, &arr); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(arr.Values) != 2 || len(arr.Values[0].GetStringValue()) != n || arr.Values[1].GetIntValue() != int64(n) {
			t.Errorf("n=%d: decoded %d values", n, len(arr.Values))
		}
	}
}

// BenchmarkEncode: the cost of writing a batch of 512 spans.
func BenchmarkEncode(b *testing.B) {
	one := recordedSpans(b)
	spans := make([]sdktrace.ReadOnlySpan, 0, 512)
	for len(spans) < 512 {
		spans = append(spans, one...)
	}
	spans = spans[:512]
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendRequest(buf[:0], spans)
	}
	b.SetBytes(int64(len(buf)))
}
