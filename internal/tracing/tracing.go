package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of cqgate's spans.
const ScopeName = "github.com/cqgate/cqgate"

// DefaultServiceName is service.name when none is configured.
const DefaultServiceName = "cqgate"

// Environment variables of the OpenTelemetry SDK that turn export on when
// no endpoint is configured (the exporter reads them, with their
// companions such as OTEL_EXPORTER_OTLP_HEADERS, as the SDK does).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Config configures tracing.
type Config struct {
	// Endpoint is the OTLP/HTTP collector: a URL (https://host:4318; the
	// path defaults to /v1/traces) or host:port. Empty: export only if
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// is set, else none.
	Endpoint string
	// Insecure sends spans over plain HTTP to a host:port Endpoint; an
	// http:// URL needs it set too, as a confirmation.
	Insecure bool
	// SampleRatio is the share of new traces (no sampled caller) that
	// are recorded and exported, 0 to 1. Callers' sampling decisions are
	// followed.
	SampleRatio float64
	// ServiceName is service.name (DefaultServiceName when empty;
	// OTEL_SERVICE_NAME wins).
	ServiceName string
	// ServiceVersion is service.version, when known.
	ServiceVersion string
	// Getenv reads the environment; os.Getenv when nil.
	Getenv func(string) string
}

// Tracing starts cqgate's spans and carries their context on requests.
type Tracing struct {
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	shutdown  func(context.Context) error
	exporting bool
	// exporter is stopped after the provider: when ctx ends first, an
	// export still under way is abandoned.
	exporter interface{ Shutdown(context.Context) error }
	// propagateOnly is set by New without an exporter: the provider
	// never samples, so an incoming request's span is a Request
	// (StartRequestIn) rather than one of the SDK's.
	propagateOnly bool
}

// New returns tracing as cfg says: exporting over OTLP/HTTP when an
// endpoint is configured or set in the environment, propagating only
// otherwise. It contacts nothing; spans are sent in the background.
func New(ctx context.Context, cfg Config) (*Tracing, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if cfg.Endpoint == "" && getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "" {
		// Nothing is recorded, but every span gets its own id in the
		// caller's trace, which goes on with every outbound request.
		t := withProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), false)
		t.propagateOnly = true
		return t, nil
	}
	settings, err := exporterSettings(cfg, getenv)
	if err != nil {
		return nil, err
	}
	exp := newExporter(settings)
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(name)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the configuration.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: describing the service: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	t := withProvider(tp, true)
	t.exporter = exp
	return t, nil
}

// NewWithProvider returns tracing that starts its spans with tp (tests
// pass an SDK provider with a span recorder). Shutdown shuts tp down when
// it can be.
func NewWithProvider(tp trace.TracerProvider) *Tracing {
	return withProvider(tp, true)
}

func withProvider(tp trace.TracerProvider, exporting bool) *Tracing {
	t := &Tracing{
		tracer:    tp.Tracer(ScopeName),
		prop:      propagation.TraceContext{},
		exporting: exporting,
		shutdown:  func(context.Context) error { return nil },
	}
	if s, ok := tp.(interface{ Shutdown(context.Context) error }); ok {
		t.shutdown = s.Shutdown
	}
	return t
}

// Exporting reports whether spans go anywhere.
func (t *Tracing) Exporting() bool { return t.exporting }

// Shutdown sends the spans not sent yet and stops the exporter; ctx
// bounds the wait.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	err := t.shutdown(ctx)
	if t.exporter != nil {
		_ = t.exporter.Shutdown(ctx)
	}
	if err != nil {
		return fmt.Errorf("tracing: shutting down: %w", err)
	}
	return nil
}

// ShutdownTimeout bounds Shutdown when the caller has no deadline of its own.
const ShutdownTimeout = 5 * time.Second

// CheckEndpoint reports what is wrong with an endpoint setting, or nil.
func CheckEndpoint(endpoint string, insecure bool) error {
	_, err := endpointURL(endpoint, insecure)
	return err
}

var errEmptyEndpoint = errors.New("tracing: the OTLP endpoint is empty")

// endpointURL turns a URL or host:port into the URL spans are posted to.
func endpointURL(endpoint string, insecure bool) (*url.URL, error) {
	if endpoint == "" {
		return nil, errEmptyEndpoint
	}
	if !strings.Contains(endpoint, "://") {
		host, port, err := net.SplitHostPort(endpoint)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("tracing: OTLP endpoint %q is neither a URL nor host:port", endpoint)
		}
		scheme := "https"
		if insecure {
			scheme = "http"
		}
		return &url.URL{Scheme: scheme, Host: endpoint, Path: defaultTracesPath}, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP endpoint %q is not a URL: %w", endpoint, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("tracing: OTLP endpoint %q: scheme must be http or https", endpoint)
	case u.Host == "":
		return nil, fmt.Errorf("tracing: OTLP endpoint %q has no host", endpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("tracing: OTLP endpoint %q: no user info, query or fragment (headers go in OTEL_EXPORTER_OTLP_HEADERS)", redactURL(u))
	case u.Scheme == "http" && !insecure:
		return nil, fmt.Errorf("tracing: OTLP endpoint %q is plain http; set tracing.otlp.insecure to send spans unencrypted", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = defaultTracesPath // as OTEL_EXPORTER_OTLP_ENDPOINT is read
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}, nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}
