package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/tracing"
)

// RequestTracer starts the span of an incoming request, continuing the
// caller's trace; *tracing.Tracing is one.
type RequestTracer interface {
	// StartRequestIn may keep the span in rq, a zero tracing.Request
	// that lives as long as the request.
	StartRequestIn(rq *tracing.Request, r *http.Request) (context.Context, trace.Span)
}

// trace runs FHIR and directory requests in a span of their own, whose
// context every request cqgate makes for them carries. Health, readiness
// and metrics are not traced.
func (h *handlers) trace(c *gin.Context, rq *tracing.Request) {
	route := c.FullPath()
	if h.Tracer == nil || !(strings.HasPrefix(route, "/fhir/") || strings.HasPrefix(route, "/directory/")) {
		c.Next()
		return
	}
	ctx, span := h.Tracer.StartRequestIn(rq, c.Request)
	c.Request = c.Request.WithContext(ctx)
	defer endRequest(c, span, route)
	c.Next()
}

// endRequest describes the request's span, if it is recorded, and ends
// it, deferred: a response aborted mid-body (a panic of
// http.ErrAbortHandler, which goes on up to the server) is described
// too, and failed as aborted.
func endRequest(c *gin.Context, span trace.Span, route string) {
	defer span.End()
	v := recover()
	if span.IsRecording() { // describe nothing nobody will see
		tracing.EndRequest(span, c.Request.Method, route, c.Writer.Status(), requestAttributes(c)...)
		if v != nil {
			tracing.Fail(span, "aborted")
		}
	}
	if v != nil {
		panic(v)
	}
}

// requestAttributes are the organization and the FHIR resource type of
// a request: never its path, query or resource id. (fail adds the
// outcome's issue type.)
func requestAttributes(c *gin.Context) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	var rawOID, fhirPath string
	if strings.HasPrefix(c.FullPath(), "/fhir/") {
		rawOID, fhirPath = splitFHIRPath(c.Request)
	} else {
		rawOID = c.Param("oid")
	}
	if oid, err := directory.ParseOID(rawOID); err == nil {
		attrs = append(attrs, tracing.OrganizationKey.String(oid))
	}
	if rt := resourceType(fhirPath); rt != "" {
		attrs = append(attrs, tracing.ResourceTypeKey.String(rt))
	}
	return attrs
}

// resourceType is the first segment of an escaped FHIR path when it has
// the shape of a resource type (an upper-case letter, then letters):
// "Patient" of /Patient/123/_history/2, nothing for /metadata or
// /$export.
func resourceType(fhirPath string) string {
	seg := strings.TrimPrefix(fhirPath, "/")
	if i := strings.IndexAny(seg, "/?"); i >= 0 {
		seg = seg[:i]
	}
	if seg == "" || len(seg) > 64 || seg[0] < 'A' || seg[0] > 'Z' {
		return ""
	}
	for i := 1; i < len(seg); i++ {
		if c := seg[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return ""
		}
	}
	return seg
}
