package directory

import (
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/internal/tracing"
)

// endLookup describes a finished Lookup on its span, if recorded.
func endLookup(span trace.Span, oid string, e *Entry, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if oid != "" {
		span.SetAttributes(tracing.OrganizationKey.String(oid))
	}
	switch {
	case errors.Is(err, ErrNotFound):
		tracing.Fail(span, "not-found")
	case errors.Is(err, ErrInvalidOID):
		tracing.Fail(span, "invalid-oid")
	case err != nil:
		tracing.Fail(span, "directory-failed")
	case e != nil:
		span.SetAttributes(tracing.SourceKey.String(e.Source), tracing.StaleKey.Bool(e.Stale))
	}
}
