package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// traceHeaders are traceparent and tracestate values, valid and not.
var traceHeaders = []struct{ traceparent, tracestate string }{
	{"", ""},
	{"", "vendor=opaque"},
	{"00-" + callerTraceID + "-" + callerSpanID + "-01", ""},
	{"00-" + callerTraceID + "-" + callerSpanID + "-00", "vendor=opaque,other=x"},
	{"00-" + callerTraceID + "-" + callerSpanID + "-02", ""},
	{"00-" + callerTraceID + "-" + callerSpanID + "-03", "a=1"},
	{"00-" + callerTraceID + "-" + callerSpanID + "-04", ""},  // reserved flag in version 00
	{"00-" + callerTraceID + "-" + callerSpanID + "-01-", ""}, // version 00 with more
	{"01-" + callerTraceID + "-" + callerSpanID + "-09-future", "a=1"},
	{"cc-" + callerTraceID + "-" + callerSpanID + "-01", ""},
	{"ff-" + callerTraceID + "-" + callerSpanID + "-01", ""},
	{"00-" + strings.ToUpper(callerTraceID) + "-" + callerSpanID + "-01", ""},
	{"00-" + strings.Repeat("0", 32) + "-" + callerSpanID + "-01", ""},
	{"00-" + callerTraceID + "-" + strings.Repeat("0", 16) + "-01", ""},
	{"00-" + callerTraceID + "-" + callerSpanID[:15] + "-01", ""},
	{"00-" + callerTraceID + "-" + callerSpanID + "-1", ""},
	{"00-" + callerTraceID + "-" + callerSpanID + "-0g", ""},
	{"0-" + callerTraceID + "-" + callerSpanID + "-01", ""},
	{"00-zz-" + callerSpanID + "-01", "vendor=opaque"},
	{"00-" + callerTraceID + "-" + callerSpanID + "-01", "not a tracestate"},
	{"00-" + callerTraceID + "-" + callerSpanID + "-01", strings.Repeat("k=v,", 40) + "k=v"},
	{"garbage", ""},
}

func traceHeader(traceparent, tracestate string) http.Header {
	h := http.Header{}
	if traceparent != "" {
		h.Set("Traceparent", traceparent)
	}
	if tracestate != "" {
		h.Set("Tracestate", tracestate)
	}
	return h
}

// propagatorExtract is what OpenTelemetry's W3C propagator reads from h.
func propagatorExtract(h http.Header) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
}

func TestExtractAsPropagator(t *testing.T) {
	for _, tc := range traceHeaders {
		h := traceHeader(tc.traceparent, tc.tracestate)
		if got, want := extract(h), propagatorExtract(h); !got.Equal(want) {
			t.Errorf("extract(%q, %q) = %v, want the propagator's %v", tc.traceparent, tc.tracestate, got, want)
		}
	}
}

func FuzzExtract(f *testing.F) {
	for _, tc := range traceHeaders {
		f.Add(tc.traceparent, tc.tracestate)
	}
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		h := http.Header{"Traceparent": {traceparent}, "Tracestate": {tracestate}}
		if got, want := extract(h), propagatorExtract(h); !got.Equal(want) {
			t.Errorf("extract(%q, %q) = %v, want the propagator's %v", traceparent, tracestate, got, want)
		}
	})
}

type ctxKey struct{}

// TestRequestIsTheContextSpan checks a Request is the span of the
// context StartRequestIn returns, which keeps everything of the incoming
// request's context.
func TestRequestIsTheContextSpan(t *testing.T) {
	tr := propagating(t)
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	in := inbound(map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"}).WithContext(parent)
	var rq Request
	ctx, span := tr.StartRequestIn(&rq, in)
	if span != trace.Span(&rq) {
		t.Fatal("StartRequestIn did not return the Request as the span")
	}
	if got := trace.SpanFromContext(ctx); got != span {
		t.Errorf("trace.SpanFromContext = %v, want the Request", got)
	}
	child, childCancel := context.WithCancel(ctx)
	defer childCancel()
	if got := trace.SpanFromContext(child); got != span {
		t.Errorf("trace.SpanFromContext under a derived context = %v, want the Request", got)
	}
	if ctx.Value(ctxKey{}) != "v" {
		t.Error("the incoming context's values are lost")
	}
	if c, s := Start(ctx, "cqgate.token"); c != ctx || s != span {
		t.Error("Start under a Request started a span")
	}
	cancel()
	<-child.Done()
	if ctx.Err() == nil {
		t.Error("the incoming context's cancellation is lost")
	}
}

// TestRequestAsSDK checks a Request's span context is what the SDK's
// never-sample span would be for the same caller (the ids aside), and
// that its headers are what the W3C propagator injects for it.
func TestRequestAsSDK(t *testing.T) {
	sdk := withProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), false)
	tr := propagating(t)
	for _, tc := range traceHeaders {
		in := httpRequest(traceHeader(tc.traceparent, tc.tracestate))
		_, want := sdk.startSDKRequest(in)
		var rq Request
		_, got := tr.StartRequestIn(&rq, in)
		g, w := got.SpanContext(), want.SpanContext()
		caller := propagatorExtract(in.Header)
		switch {
		case !g.IsValid() || g.IsRemote():
			t.Errorf("%q: span context %v is not a valid local one", tc.traceparent, g)
		case caller.IsValid() != (g.TraceID() == caller.TraceID()), caller.IsValid() && w.TraceID() != g.TraceID():
			t.Errorf("%q: trace %s, the SDK's %s, the caller's %s", tc.traceparent, g.TraceID(), w.TraceID(), caller.TraceID())
		case g.SpanID() == caller.SpanID():
			t.Errorf("%q: the caller's span id was kept", tc.traceparent)
		case g.TraceFlags() != w.TraceFlags() || g.TraceState().String() != w.TraceState().String():
			t.Errorf("%q: flags %v state %q, the SDK's %v %q", tc.traceparent, g.TraceFlags(), g.TraceState(), w.TraceFlags(), w.TraceState())
		}
		injected := http.Header{"Tracestate": {"stale=1"}}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), g), propagation.HeaderCarrier(injected))
		if _, ok := injected["Tracestate"]; g.TraceState().Len() == 0 && ok {
			delete(injected, "Tracestate") // the transport deletes the caller's first
		}
		set := http.Header{"Tracestate": {"stale=1"}}
		rq.setHeaders(set)
		if len(set) != len(injected) || set.Get("Traceparent") != injected.Get("Traceparent") || set.Get("Tracestate") != injected.Get("Tracestate") {
			t.Errorf("%q: headers %v, the propagator's %v", tc.traceparent, set, injected)
		}
	}
}

func httpRequest(h http.Header) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://cqgate/fhir/1.2.3/Patient/1", nil)
	r.Header = h
	return r
}

// TestRequestAllocations: propagating a caller's trace to an outbound
// request allocates the context that carries the span and the
// traceparent string, once per request (the SDK's span, its context, the
// propagator's string and the header's slice were four allocations).
func TestRequestAllocations(t *testing.T) {
	tr := propagating(t)
	in := inbound(map[string]string{"traceparent": "00-" + callerTraceID + "-" + callerSpanID + "-01"})
	rt := tr.Transport(nopTransport{}, "cqgate.upstream", CallFHIR, InPlace())
	out := &http.Request{Method: http.MethodGet, URL: in.URL, Header: http.Header{}}
	rq := new(Request)
	if allocs := testing.AllocsPerRun(100, func() {
		*rq = Request{}
		ctx, span := tr.StartRequestIn(rq, in)
		*out = http.Request{Method: http.MethodGet, URL: in.URL, Header: out.Header}
		if _, err := rt.RoundTrip(out.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		span.End()
	}); allocs > 3 { // the context, the traceparent, WithContext's copy of the request
		t.Errorf("a propagated request allocates %v times, want 3 (the span's context, the traceparent, the test's WithContext)", allocs)
	}
	if got := out.Header.Get("Traceparent"); !strings.HasPrefix(got, "00-"+callerTraceID+"-") {
		t.Errorf("traceparent %q sent", got)
	}
}

type nopTransport struct{}

func (nopTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, nil }
