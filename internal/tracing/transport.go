package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Whom a transport calls (the cqgate.call attribute of its spans).
const (
	CallDirectory = "directory"
	CallPartner   = "partner"
	CallFHIR      = "fhir"
	CallVault     = "vault"
)

// TransportOption shapes a transport from Transport.
type TransportOption func(*transport)

// InPlace sets the trace headers on the request given instead of on a
// copy. Only for a transport whose callers hand it a request made for
// this one call (the proxy's outbound request, proxy/forward.go, is): it saves
// copying the header map on every FHIR request.
func InPlace() TransportOption { return func(t *transport) { t.inPlace = true } }

// Transport returns base with every request carrying the trace context
// of its own context: a client span named name (attributes: cqgate.call
// = call, method, server address and port, status code; never the URL)
// when the span in the request's context is recording; that span's
// context as it is when it is not; a new trace when the request has none
// (background work: refreshes, Vault logins). The caller's traceparent
// and tracestate headers, if any, are replaced.
func (t *Tracing) Transport(base http.RoundTripper, name, call string, opts ...TransportOption) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	tr := &transport{base: base, t: t, name: name, call: call}
	for _, o := range opts {
		o(tr)
	}
	return tr
}

type transport struct {
	base    http.RoundTripper
	t       *Tracing
	name    string
	call    string
	inPlace bool
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	parent := trace.SpanFromContext(ctx)
	if rq, ok := parent.(*Request); ok {
		// Propagation only: the request's span context, its headers
		// formatted once for every request sent for it.
		out := req
		if !tr.inPlace {
			out = req.Clone(ctx)
		}
		rq.setHeaders(out.Header)
		return tr.base.RoundTrip(out)
	}
	var span trace.Span
	if parent.IsRecording() || !parent.SpanContext().IsValid() {
		ctx, span = tr.t.tracer.Start(ctx, tr.name, clientKind...)
		if span.IsRecording() {
			tr.describe(span, req)
		}
	}
	out := req
	if !tr.inPlace {
		out = req.Clone(ctx)
	}
	delete(out.Header, "Tracestate") // the propagator sets it when there is one
	tr.t.prop.Inject(ctx, ownedHeaderCarrier{headerCarrier(out.Header)})
	resp, err := tr.base.RoundTrip(out)
	if span != nil {
		tr.end(span, resp, err)
	}
	return resp, err
}

// Unwrap returns the transport below, for those that look for one.
func (tr *transport) Unwrap() http.RoundTripper { return tr.base }

func (tr *transport) describe(span trace.Span, req *http.Request) {
	span.SetAttributes(
		CallKey.String(tr.call),
		semconv.HTTPRequestMethodKey.String(req.Method),
	)
	if req.URL == nil {
		return
	}
	host, port := req.URL.Hostname(), req.URL.Port()
	span.SetAttributes(semconv.ServerAddress(host))
	if port == "" {
		switch req.URL.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	if p, err := strconv.Atoi(port); err == nil {
		span.SetAttributes(semconv.ServerPort(p))
	}
}

func (tr *transport) end(span trace.Span, resp *http.Response, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if err != nil {
		// A class of failure, never the error's text: it can name the
		// URL with its query.
		class := errorClass(err)
		span.SetAttributes(semconv.ErrorTypeKey.String(class))
		span.SetStatus(codes.Error, class)
		return
	}
	span.SetAttributes(semconv.HTTPResponseStatusCodeKey.Int(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
}

// errorClass names what kind of failure err is.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, new(*net.OpError)):
		return "connection"
	}
	return "transport"
}
