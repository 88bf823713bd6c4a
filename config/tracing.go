package config

import (
	"math"

	"github.com/cqgate/cqgate/internal/tracing"
)

// Tracing configures W3C Trace Context and OpenTelemetry spans. The
// caller's traceparent is always continued and sent on every outbound
// request; spans are exported only when an OTLP endpoint is set here or
// in OTEL_EXPORTER_OTLP_ENDPOINT.
type Tracing struct {
	OTLP TracingOTLP `yaml:"otlp"`
	// SampleRatio is the share of new traces that are exported (0 to 1);
	// a caller's sampling decision is followed.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of cqgate's spans.
	ServiceName string `yaml:"service_name"`
}

// TracingOTLP is the OTLP/HTTP collector spans are exported to.
type TracingOTLP struct {
	// Endpoint is a URL (https://collector:4318, path default
	// /v1/traces) or host:port; "" exports nothing unless
	// OTEL_EXPORTER_OTLP_ENDPOINT is set.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends spans over plain HTTP (needed for an http:// URL).
	Insecure bool `yaml:"insecure"`
}

// validateTracing checks the tracing section.
func (c *Config) validateTracing(add adder) {
	t := c.Tracing
	if r := t.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
		add("tracing.sample_ratio: %v is not between 0 and 1", r)
	}
	if t.OTLP.Endpoint != "" {
		if err := tracing.CheckEndpoint(t.OTLP.Endpoint, t.OTLP.Insecure); err != nil {
			add("tracing.otlp.endpoint: %v", err)
		}
	}
}
