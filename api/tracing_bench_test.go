package api_test

import (
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/tracing"
)

// hotOptions vary newHotPath's setup.
type hotOptions struct {
	// tracing replaces propagation-only tracing (gateway.New's default).
	tracing *tracing.Tracing
	// header is added to the caller's request.
	header http.Header
}

type hotOption func(*hotOptions)

// callerTraceparent is a sampled traceparent as a caller's tracer sends it.
const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// BenchmarkHotPathTracing is BenchmarkHotPath's auth=none with the
// caller's traceparent: propagated only (no exporter, as by default), and
// recorded (every span sampled and ended into a provider without
// exporter: the cost of recording spans, without that of sending them).
func BenchmarkHotPathTracing(b *testing.B) {
	withTraceparent := func(o *hotOptions) { o.header = http.Header{"Traceparent": {callerTraceparent}} }
	for _, bc := range []struct {
		name string
		opts []hotOption
	}{
		{"propagate,traceparent", []hotOption{withTraceparent}},
		{"record,traceparent", []hotOption{withTraceparent, func(o *hotOptions) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
			b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
			o.tracing = tracing.NewWithProvider(tp)
		}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hp := newHotPath(b, callerauth.MethodNone, true, bc.opts...)
			b.ReportAllocs()
			for b.Loop() {
				hp.serve()
			}
			b.StopTimer()
			if err := hp.check(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
