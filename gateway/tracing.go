package gateway

import (
	"context"
	"fmt"
	"net/http"

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
// token and registration endpoints, and of FHIR requests (fhirPrivate:
// those of organizations allowed private addresses, when it is not nil)
// so that each request carries its trace context.
func traced(tr *tracing.Tracing, partner, dir, fhir, fhirPrivate http.RoundTripper) (http.RoundTripper, http.RoundTripper, http.RoundTripper, http.RoundTripper) {
	// The proxy makes the outbound request for this call alone.
	upstream := func(rt http.RoundTripper) http.RoundTripper {
		return tr.Transport(rt, "cqgate.upstream", tracing.CallFHIR, tracing.InPlace())
	}
	if fhirPrivate != nil {
		fhirPrivate = upstream(fhirPrivate)
	}
	return tr.Transport(partner, "cqgate.http.partner", tracing.CallPartner),
		tr.Transport(dir, "cqgate.http.directory", tracing.CallDirectory),
		upstream(fhir), fhirPrivate
}

// vaultTraced has Vault requests carry their trace context.
func vaultTraced(tr *tracing.Tracing) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return tr.Transport(rt, "cqgate.http.vault", tracing.CallVault)
	}
}
