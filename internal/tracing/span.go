package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of cqgate's own spans. None of them ever holds a URL,
// path, query value, resource id, header value or credential.
const (
	// OrganizationKey is the partner organization's OID.
	OrganizationKey = attribute.Key("cqgate.organization.oid")
	// ResourceTypeKey is the FHIR resource type a request is about.
	ResourceTypeKey = attribute.Key("fhir.resource_type")
	// OutcomeKey is the OperationOutcome issue code cqgate answered with.
	OutcomeKey = attribute.Key("cqgate.outcome")
	// CacheKey says whether a cached answer was used: "hit" or "miss".
	CacheKey = attribute.Key("cqgate.cache")
	// TokenCacheKey says whether the access token came from the cache.
	TokenCacheKey = attribute.Key("cqgate.token.cache")
	// SourceKey is where an answer came from (directory entry source,
	// token URL source).
	SourceKey = attribute.Key("cqgate.source")
	// AlgorithmKey is a JWS algorithm.
	AlgorithmKey = attribute.Key("cqgate.jws.alg")
	// OAuthErrorKey is an OAuth error code (RFC 6749 §5.2), such as
	// invalid_client; never its description.
	OAuthErrorKey = attribute.Key("oauth.error")
	// CallKey says whom a client span called: directory, partner (a
	// tenant's discovery, token or registration endpoint), fhir or vault.
	CallKey = attribute.Key("cqgate.call")
	// StaleKey is true when a cached answer was served past its TTL.
	StaleKey = attribute.Key("cqgate.stale")
	// HTTPStatusKey is the status of an answer cqgate got (the client
	// spans below carry their own).
	HTTPStatusKey = semconv.HTTPResponseStatusCodeKey
)

// StartRequest continues the caller's trace from r's traceparent and
// tracestate (a new trace when there are none, or they are malformed) in
// a server span named "cqgate.request". The caller ends the span, after
// EndRequest when it is recording.
func (t *Tracing) StartRequest(r *http.Request) (context.Context, trace.Span) {
	if t.propagateOnly {
		return t.StartRequestIn(new(Request), r)
	}
	return t.startSDKRequest(r)
}

// startSDKRequest starts the request's span in the SDK.
func (t *Tracing) startSDKRequest(r *http.Request) (context.Context, trace.Span) {
	ctx := t.prop.Extract(r.Context(), headerCarrier(r.Header))
	return t.tracer.Start(ctx, "cqgate.request", serverKind...)
}

// Made once: a variadic option built at each call is two allocations.
var (
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// EndRequest describes a finished request on its server span: method,
// route pattern (never the path), status and the attributes given. It
// does nothing unless the span is recording.
func EndRequest(span trace.Span, method, route string, status int, attrs ...attribute.KeyValue) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		semconv.HTTPRequestMethodKey.String(method),
		semconv.HTTPRouteKey.String(route),
		semconv.HTTPResponseStatusCodeKey.Int(status),
	)
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// Start starts a span named name, a child of the span in ctx and from the
// same provider, when that span is recording. Otherwise it returns ctx and
// the span in it unchanged, allocating nothing: under a span that is not
// recorded no child is recorded either (the sampler is parent-based), and
// outbound requests carry the span context of the request.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		// Ending or describing a span that is not recording does
		// nothing, so handing out the parent is safe.
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(ScopeName).Start(ctx, name)
}

// SetOutcome puts the OperationOutcome issue type cqgate answered with
// on the span in ctx, if it is recording.
func SetOutcome(ctx context.Context, code string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() && code != "" {
		span.SetAttributes(OutcomeKey.String(code))
	}
}

// Fail marks span as failed with a description that is a code or a fixed
// phrase, never an error's text (which may hold URLs or partner data).
func Fail(span trace.Span, code string) {
	if span.IsRecording() {
		span.SetStatus(codes.Error, code)
	}
}
