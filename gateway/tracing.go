package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/buildinfo"
	"github.com/cqgate/cqgate/internal/tracing"
)

// buildTracing sets up trace propagation and, when configured, span
// export; opts.TracerProvider replaces the configured provider.
func (g *Gateway) buildTracing(ctx context.Context, opts Options) (*tracing.Tracing, error) {
	if opts.TracerProvider != nil {
		return tracing.NewWithProvider(opts.TracerProvider), nil
	}
	t := g.cfg.Tracing
	tr, err := tracing.New(ctx, tracing.Config{
		Endpoint:       t.OTLP.Endpoint,
		Insecure:       t.OTLP.Insecure,
		SampleRatio:    t.SampleRatio,
		ServiceName:    t.ServiceName,
		ServiceVersion: buildinfo.Get().Version,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: tracing: %w", err)
	}
	if tr.Exporting() {
		g.log.WithField("service_name", t.ServiceName).Info("gateway: exporting trace spans over OTLP")
	}
	return tr, nil
}

// traced wraps the transports of the directory, of partners' discovery,
// token and registration endpoints, and of FHIR requests so that each
// request carries its trace context.
func traced(tr *tracing.Tracing, partner, dir, fhir http.RoundTripper) (http.RoundTripper, http.RoundTripper, http.RoundTripper) {
	return tr.Transport(partner, "cqgate.http.partner", tracing.CallPartner),
		tr.Transport(dir, "cqgate.http.directory", tracing.CallDirectory),
		// ReverseProxy makes the outbound request for this call alone.
		tr.Transport(fhir, "cqgate.upstream", tracing.CallFHIR, tracing.InPlace())
}

// vaultTraced has Vault requests carry their trace context.
func vaultTraced(tr *tracing.Tracing) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return tr.Transport(rt, "cqgate.http.vault", tracing.CallVault)
	}
}

// endToken describes how a request's token was had, if its span is
// recorded: from the cache or by an exchange (never the token).
func endToken(span trace.Span, exchanged bool, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	cache := "hit"
	if exchanged {
		cache = "miss"
	}
	span.SetAttributes(tracing.TokenCacheKey.String(cache))
	switch {
	case errors.Is(err, assertion.ErrThrottled):
		tracing.Fail(span, "throttled")
	case err != nil:
		tracing.Fail(span, "token-failed")
	}
}
