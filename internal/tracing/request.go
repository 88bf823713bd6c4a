package tracing

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// Request is an incoming request's span when nothing is recorded
// (propagation only: New without an exporter). It is a span context of
// its own in the caller's trace (a new span id; a new trace when the
// caller sent no valid traceparent), put in the request's context with
// trace.ContextWithSpan (so Start and SetOutcome see it as they would
// the SDK's non-recording span), and the traceparent (and tracestate)
// every request cqgate makes for it sends, formatted once. That is the
// SDK's non-recording span, the propagator's string and the header's
// slice in one value, which a router can keep inside a per-request
// struct of its own: its zero value is filled by StartRequestIn, and it
// must not be copied or reused after.
type Request struct {
	embedded.Span
	sc trace.SpanContext
	// traceparent holds the header value, made once.
	traceparent [1]string
	tracestate  []string // nil when the trace has no tracestate
}

// traceparentLen is the length of a version-00 traceparent:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const traceparentLen = 55

// StartRequestIn is StartRequest with the span kept in rq, which must be
// a zero Request that lives as long as the request: without an exporter
// it returns rq as the span, in the request's context through
// trace.ContextWithSpan (the SDK's non-recording span costs more
// allocations between here and the outbound request's headers). With an
// exporter it is StartRequest, and rq stays unused.
func (t *Tracing) StartRequestIn(rq *Request, r *http.Request) (context.Context, trace.Span) {
	if !t.propagateOnly {
		return t.startSDKRequest(r)
	}
	parent := extract(r.Header)
	scc := trace.SpanContextConfig{
		TraceID: parent.TraceID(),
		// What the SDK does under its never-sample sampler: the parent's
		// trace state and flags, without the sampled bit.
		TraceFlags: parent.TraceFlags() &^ trace.FlagsSampled,
		TraceState: parent.TraceState(),
	}
	if !scc.TraceID.IsValid() {
		scc.TraceID = newTraceID()
	}
	scc.SpanID = newSpanID()
	rq.sc = trace.NewSpanContext(scc)
	rq.traceparent[0] = formatTraceparent(rq.sc)
	if ts := rq.sc.TraceState(); ts.Len() > 0 {
		rq.tracestate = []string{ts.String()}
	}
	return trace.ContextWithSpan(r.Context(), rq), rq
}

// setHeaders sets the trace headers of a request sent for rq:
// traceparent, and tracestate when the trace has one (the caller's are
// replaced, as the propagator does). The value slices are shared and
// never written in place.
func (rq *Request) setHeaders(h http.Header) {
	h["Traceparent"] = rq.traceparent[:]
	if rq.tracestate != nil {
		h["Tracestate"] = rq.tracestate
	} else {
		delete(h, "Tracestate")
	}
}

// SpanContext returns the request's span context.
func (rq *Request) SpanContext() trace.SpanContext { return rq.sc }

// IsRecording is false: a Request is what is kept when nothing is.
func (*Request) IsRecording() bool { return false }

// End does nothing.
func (*Request) End(...trace.SpanEndOption) {}

// AddEvent does nothing.
func (*Request) AddEvent(string, ...trace.EventOption) {}

// AddLink does nothing.
func (*Request) AddLink(trace.Link) {}

// RecordError does nothing.
func (*Request) RecordError(error, ...trace.EventOption) {}

// SetStatus does nothing.
func (*Request) SetStatus(codes.Code, string) {}

// SetName does nothing.
func (*Request) SetName(string) {}

// SetAttributes does nothing.
func (*Request) SetAttributes(...attribute.KeyValue) {}

// TracerProvider returns a provider that records nothing, as a
// non-recording span of the SDK's does once its provider is shut down.
func (*Request) TracerProvider() trace.TracerProvider { return noop.NewTracerProvider() }

// formatTraceparent returns sc's version-00 traceparent. As the
// propagator, it keeps the sampled and random flags only.
func formatTraceparent(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	var buf [traceparentLen]byte
	b := buf[:]
	copy(b, "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{flags})
	return string(b)
}

// newTraceID and newSpanID are random, never zero, from the runtime's
// per-thread ChaCha8 generator, as the SDK's default ID generator.
func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			tid[i], tid[8+i] = byte(hi>>(8*i)), byte(lo>>(8*i))
		}
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		v := rand.Uint64()
		for i := range 8 {
			sid[i] = byte(v >> (8 * i))
		}
	}
	return sid
}

// extract reads the caller's trace context from h as the W3C
// propagator's Extract does (propagation.TraceContext; equal on every
// input of TestExtractAsPropagator and FuzzExtract), through the same
// headerCarrier as the recording path (repeated fields read as W3C says),
// without the context and span value it allocates: the invalid
// SpanContext when there is no valid traceparent.
func extract(h http.Header) trace.SpanContext {
	tp := headerCarrier(h).Get("traceparent")
	if tp == "" {
		return trace.SpanContext{}
	}
	var ver [1]byte
	if !extractPart(ver[:], &tp, 2) || ver[0] > maxVersion {
		return trace.SpanContext{}
	}
	var scc trace.SpanContextConfig
	if !extractPart(scc.TraceID[:], &tp, 32) || !extractPart(scc.SpanID[:], &tp, 16) {
		return trace.SpanContext{}
	}
	var opts [1]byte
	if !extractPart(opts[:], &tp, 2) {
		return trace.SpanContext{}
	}
	if ver[0] == 0 && (tp != "" || opts[0] > 3) {
		return trace.SpanContext{} // version 00 has no more fields and no other flags
	}
	scc.TraceFlags = trace.TraceFlags(opts[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	// A malformed tracestate leaves the traceparent valid (W3C).
	scc.TraceState, _ = trace.ParseTraceState(headerCarrier(h).Get("tracestate"))
	scc.Remote = true
	sc := trace.NewSpanContext(scc)
	if !sc.IsValid() {
		return trace.SpanContext{}
	}
	return sc
}

// maxVersion is the highest traceparent version (ff is invalid).
const maxVersion = 254

// extractPart decodes the next "-"-separated part of *h, of n lowercase
// hex digits, into dst, and moves *h past it.
func extractPart(dst []byte, h *string, n int) bool {
	part, left, _ := strings.Cut(*h, "-")
	*h = left
	if len(part) != n {
		return false
	}
	for i := 0; i < n; i += 2 {
		hi, ok1 := lowerHex(part[i])
		lo, ok2 := lowerHex(part[i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i/2] = hi<<4 | lo
	}
	return true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
