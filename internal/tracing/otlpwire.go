package tracing

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of opentelemetry-proto v1 (collector/trace/v1,
// trace/v1, resource/v1, common/v1) that cqgate writes or reads.
const (
	// ExportTraceServiceRequest
	fRequestResourceSpans protowire.Number = 1

	// ResourceSpans
	fResourceSpansResource   protowire.Number = 1
	fResourceSpansScopeSpans protowire.Number = 2
	fResourceSpansSchemaURL  protowire.Number = 3

	// Resource
	fResourceAttributes protowire.Number = 1

	// ScopeSpans
	fScopeSpansScope     protowire.Number = 1
	fScopeSpansSpans     protowire.Number = 2
	fScopeSpansSchemaURL protowire.Number = 3

	// InstrumentationScope
	fScopeName       protowire.Number = 1
	fScopeVersion    protowire.Number = 2
	fScopeAttributes protowire.Number = 3

	// Span
	fSpanTraceID           protowire.Number = 1
	fSpanSpanID            protowire.Number = 2
	fSpanTraceState        protowire.Number = 3
	fSpanParentSpanID      protowire.Number = 4
	fSpanName              protowire.Number = 5
	fSpanKind              protowire.Number = 6
	fSpanStartTime         protowire.Number = 7
	fSpanEndTime           protowire.Number = 8
	fSpanAttributes        protowire.Number = 9
	fSpanDroppedAttributes protowire.Number = 10
	fSpanEvents            protowire.Number = 11
	fSpanDroppedEvents     protowire.Number = 12
	fSpanLinks             protowire.Number = 13
	fSpanDroppedLinks      protowire.Number = 14
	fSpanStatus            protowire.Number = 15
	fSpanFlags             protowire.Number = 16

	// Span.Event
	fEventTime              protowire.Number = 1
	fEventName              protowire.Number = 2
	fEventAttributes        protowire.Number = 3
	fEventDroppedAttributes protowire.Number = 4

	// Span.Link
	fLinkTraceID           protowire.Number = 1
	fLinkSpanID            protowire.Number = 2
	fLinkTraceState        protowire.Number = 3
	fLinkAttributes        protowire.Number = 4
	fLinkDroppedAttributes protowire.Number = 5
	fLinkFlags             protowire.Number = 6

	// Status
	fStatusMessage protowire.Number = 2
	fStatusCode    protowire.Number = 3

	// KeyValue, KeyValueList, ArrayValue
	fKeyValueKey   protowire.Number = 1
	fKeyValueValue protowire.Number = 2
	fListValues    protowire.Number = 1 // KeyValueList.values and ArrayValue.values

	// AnyValue (a oneof: written even when it holds the zero value)
	fAnyString protowire.Number = 1
	fAnyBool   protowire.Number = 2
	fAnyInt    protowire.Number = 3
	fAnyDouble protowire.Number = 4
	fAnyArray  protowire.Number = 5
	fAnyKVList protowire.Number = 6
	fAnyBytes  protowire.Number = 7

	// ExportTraceServiceResponse and ExportTracePartialSuccess
	fResponsePartialSuccess protowire.Number = 1
	fPartialRejectedSpans   protowire.Number = 1
	fPartialErrorMessage    protowire.Number = 2
)

// SpanFlags bits (trace/v1): the parent's remoteness is known, and is remote.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// Status codes and span kinds of trace/v1.
const (
	statusUnset = 0
	statusOK    = 1
	statusError = 2
)

// wire appends protobuf to b. Nested messages are written in place: a
// one-byte length is reserved and the body moved when it needs more.
type wire struct{ b []byte }

// open starts the embedded message field num and returns where its body
// begins, for close.
func (w *wire) open(num protowire.Number) int {
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = append(w.b, 0)
	return len(w.b)
}

// close writes the length of the message begun at start.
func (w *wire) close(start int) {
	n := len(w.b) - start
	size := protowire.SizeVarint(uint64(n))
	if size > 1 {
		w.b = append(w.b, make([]byte, size-1)...)
		copy(w.b[start-1+size:], w.b[start:start+n])
	}
	protowire.AppendVarint(w.b[start-1:start-1], uint64(n))
}

func (w *wire) bytes(num protowire.Number, v []byte) {
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = protowire.AppendBytes(w.b, v)
}

// string writes a string field unless it is empty (proto3 default).
func (w *wire) string(num protowire.Number, v string) {
	if v != "" {
		w.anyString(num, v)
	}
}

func (w *wire) anyString(num protowire.Number, v string) {
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = protowire.AppendString(w.b, v)
}

// varint writes a varint field unless it is zero (proto3 default).
func (w *wire) varint(num protowire.Number, v uint64) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, v)
	}
}

func (w *wire) fixed64(num protowire.Number, v uint64) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.Fixed64Type)
		w.b = protowire.AppendFixed64(w.b, v)
	}
}

func (w *wire) fixed32(num protowire.Number, v uint32) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.Fixed32Type)
		w.b = protowire.AppendFixed32(w.b, v)
	}
}

// scopeKey groups spans as the official exporter does: by resource, then
// by instrumentation scope.
type scopeKey struct {
	res   attribute.Distinct
	scope instrumentation.Scope
}

type resourceGroup struct {
	res    *resource.Resource
	scopes []*scopeGroup
}

type scopeGroup struct {
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// appendRequest appends an ExportTraceServiceRequest holding spans to b,
// one ResourceSpans per resource and one ScopeSpans per scope in it, in
// the order they first appear.
func appendRequest(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	var (
		groups  []*resourceGroup
		byRes   = make(map[attribute.Distinct]*resourceGroup)
		byScope = make(map[scopeKey]*scopeGroup)
	)
	for _, s := range spans {
		if s == nil {
			continue
		}
		rk := s.Resource().Equivalent()
		rg := byRes[rk]
		if rg == nil {
			rg = &resourceGroup{res: s.Resource()}
			byRes[rk] = rg
			groups = append(groups, rg)
		}
		sk := scopeKey{res: rk, scope: s.InstrumentationScope()}
		sg := byScope[sk]
		if sg == nil {
			sg = &scopeGroup{scope: sk.scope}
			byScope[sk] = sg
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, s)
	}
	w := wire{b: b}
	for _, rg := range groups {
		rs := w.open(fRequestResourceSpans)
		r := w.open(fResourceSpansResource)
		if rg.res != nil {
			for it := rg.res.Iter(); it.Next(); {
				w.keyValue(fResourceAttributes, it.Attribute())
			}
		}
		w.close(r)
		for _, sg := range rg.scopes {
			ss := w.open(fResourceSpansScopeSpans)
			sc := w.open(fScopeSpansScope)
			w.string(fScopeName, sg.scope.Name)
			w.string(fScopeVersion, sg.scope.Version)
			for it := sg.scope.Attributes.Iter(); it.Next(); {
				w.keyValue(fScopeAttributes, it.Attribute())
			}
			w.close(sc)
			for _, s := range sg.spans {
				sp := w.open(fScopeSpansSpans)
				w.span(s)
				w.close(sp)
			}
			w.string(fScopeSpansSchemaURL, sg.scope.SchemaURL)
			w.close(ss)
		}
		if rg.res != nil {
			w.string(fResourceSpansSchemaURL, rg.res.SchemaURL())
		}
		w.close(rs)
	}
	return w.b
}

// span writes the fields of one Span.
func (w *wire) span(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	w.bytes(fSpanTraceID, tid[:])
	w.bytes(fSpanSpanID, sid[:])
	w.string(fSpanTraceState, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		w.bytes(fSpanParentSpanID, psid[:])
	}
	w.string(fSpanName, s.Name())
	w.varint(fSpanKind, uint64(spanKind(s.SpanKind())))
	w.fixed64(fSpanStartTime, unixNano(s.StartTime().UnixNano()))
	w.fixed64(fSpanEndTime, unixNano(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		w.keyValue(fSpanAttributes, kv)
	}
	w.varint(fSpanDroppedAttributes, uint64(clampUint32(s.DroppedAttributes())))
	for _, e := range s.Events() {
		ev := w.open(fSpanEvents)
		w.fixed64(fEventTime, unixNano(e.Time.UnixNano()))
		w.string(fEventName, e.Name)
		for _, kv := range e.Attributes {
			w.keyValue(fEventAttributes, kv)
		}
		w.varint(fEventDroppedAttributes, uint64(clampUint32(e.DroppedAttributeCount)))
		w.close(ev)
	}
	w.varint(fSpanDroppedEvents, uint64(clampUint32(s.DroppedEvents())))
	for _, l := range s.Links() {
		lk := w.open(fSpanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		w.bytes(fLinkTraceID, ltid[:])
		w.bytes(fLinkSpanID, lsid[:])
		w.string(fLinkTraceState, l.SpanContext.TraceState().String())
		for _, kv := range l.Attributes {
			w.keyValue(fLinkAttributes, kv)
		}
		w.varint(fLinkDroppedAttributes, uint64(clampUint32(l.DroppedAttributeCount)))
		w.fixed32(fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		w.close(lk)
	}
	w.varint(fSpanDroppedLinks, uint64(clampUint32(s.DroppedLinks())))
	st := w.open(fSpanStatus)
	status := s.Status()
	w.string(fStatusMessage, status.Description)
	w.varint(fStatusCode, statusCode(status.Code))
	w.close(st)
	w.fixed32(fSpanFlags, spanFlags(sc.TraceFlags(), parent))
}

// keyValue writes a KeyValue field num.
func (w *wire) keyValue(num protowire.Number, kv attribute.KeyValue) {
	m := w.open(num)
	w.string(fKeyValueKey, string(kv.Key))
	v := w.open(fKeyValueValue)
	w.anyValue(kv.Value)
	w.close(v)
	w.close(m)
}

// anyValue writes the fields of an AnyValue, as the official exporter
// maps attribute types.
func (w *wire) anyValue(v attribute.Value) {
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		b := uint64(0)
		if v.AsBool() {
			b = 1
		}
		w.b = protowire.AppendTag(w.b, fAnyBool, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, b)
	case attribute.INT64:
		w.anyInt(v.AsInt64())
	case attribute.FLOAT64:
		w.anyDouble(v.AsFloat64())
	case attribute.STRING:
		w.anyString(fAnyString, v.AsString())
	case attribute.BYTESLICE:
		w.bytes(fAnyBytes, v.AsByteSlice())
	case attribute.BOOLSLICE:
		a := w.open(fAnyArray)
		for _, x := range v.AsBoolSlice() {
			w.anyValueField(attribute.BoolValue(x))
		}
		w.close(a)
	case attribute.INT64SLICE:
		a := w.open(fAnyArray)
		for _, x := range v.AsInt64Slice() {
			e := w.open(fListValues)
			w.anyInt(x)
			w.close(e)
		}
		w.close(a)
	case attribute.FLOAT64SLICE:
		a := w.open(fAnyArray)
		for _, x := range v.AsFloat64Slice() {
			e := w.open(fListValues)
			w.anyDouble(x)
			w.close(e)
		}
		w.close(a)
	case attribute.STRINGSLICE:
		a := w.open(fAnyArray)
		for _, x := range v.AsStringSlice() {
			e := w.open(fListValues)
			w.anyString(fAnyString, x)
			w.close(e)
		}
		w.close(a)
	case attribute.SLICE:
		a := w.open(fAnyArray)
		for _, x := range v.AsSlice() {
			w.anyValueField(x)
		}
		w.close(a)
	case attribute.MAP:
		m := w.open(fAnyKVList)
		for _, kv := range v.AsMap() {
			w.keyValue(fListValues, kv)
		}
		w.close(m)
	default:
		w.anyString(fAnyString, "INVALID")
	}
}

// anyValueField writes v as an element of ArrayValue.values.
func (w *wire) anyValueField(v attribute.Value) {
	e := w.open(fListValues)
	w.anyValue(v)
	w.close(e)
}

func (w *wire) anyInt(v int64) {
	w.b = protowire.AppendTag(w.b, fAnyInt, protowire.VarintType)
	w.b = protowire.AppendVarint(w.b, uint64(v)) //nolint:gosec // int64 is two's complement on the wire
}

func (w *wire) anyDouble(v float64) {
	w.b = protowire.AppendTag(w.b, fAnyDouble, protowire.Fixed64Type)
	w.b = protowire.AppendFixed64(w.b, math.Float64bits(v))
}

func spanKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer:
		return int(k) // the API's values are trace/v1's
	default:
		return 0
	}
}

func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return statusOK
	case codes.Error:
		return statusError
	default:
		return statusUnset
	}
}

// spanFlags is the W3C trace flags with the parent-is-remote bits, as the
// official exporter sets them.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) } //nolint:gosec // negative clamped

func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// partialSuccess reads an ExportTraceServiceResponse; ok is false when it
// is not well formed.
func partialSuccess(b []byte) (rejected int64, message string, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", false
		}
		b = b[n:]
		if num == fResponsePartialSuccess && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, "", false
			}
			b = b[n:]
			r, m, ok := readPartialSuccess(v)
			if !ok {
				return 0, "", false
			}
			// A repeated embedded message is merged; the last scalar wins.
			if r != 0 {
				rejected = r
			}
			if m != "" {
				message = m
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, "", false
		}
		b = b[n:]
	}
	return rejected, message, true
}

func readPartialSuccess(b []byte) (rejected int64, message string, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", false
		}
		b = b[n:]
		switch {
		case num == fPartialRejectedSpans && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, "", false
			}
			rejected, b = int64(v), b[n:] //nolint:gosec // int64 on the wire
		case num == fPartialErrorMessage && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return 0, "", false
			}
			message, b = v, b[n:]
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, "", false
			}
			b = b[n:]
		}
	}
	return rejected, message, true
}
