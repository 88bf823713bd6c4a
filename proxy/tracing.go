package proxy

import (
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/tracing"
)

// endToken describes how a request's token was had, if its span is
// recorded: a hit of the cache or not (never the token).
func endToken(span trace.Span, hit bool, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	cache := "miss"
	if hit {
		cache = "hit"
	}
	span.SetAttributes(tracing.TokenCacheKey.String(cache))
	switch {
	case errors.Is(err, assertion.ErrThrottled):
		tracing.Fail(span, "throttled")
	case err != nil:
		tracing.Fail(span, "token-failed")
	}
}
