package discovery

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/internal/tracing"
)

// endDiscover describes a finished Discover on its span, if recorded:
// where the token URL came from, never the URL.
func endDiscover(span trace.Span, res *Result, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if err != nil {
		tracing.Fail(span, "discovery-failed")
		return
	}
	if res != nil {
		span.SetAttributes(tracing.SourceKey.String(string(res.Source)), tracing.StaleKey.Bool(res.Stale))
	}
}
