// Package tracing carries W3C Trace Context (traceparent, tracestate)
// from cqgate's callers to every request cqgate makes, and exports spans
// over OTLP/HTTP when that is configured.
//
// Propagation always works: without an exporter each request still gets
// its own span id in the caller's trace (or a new trace when the caller
// sent none), and that span context goes out with every directory,
// discovery, token, registration, Vault and FHIR request. Such spans are
// not recording; everything that would describe them is skipped. An
// incoming request's span is then a Request (no SDK span; its
// traceparent is formatted once), which a router keeps in its own
// per-request struct, so propagation costs no allocation of its own;
// background requests get a new trace from the SDK, which samples
// nothing.
//
// With tracing.otlp.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) set, spans
// are sampled (parent-based, tracing.sample_ratio for new traces) and
// exported in batches:
//
//	cqgate.request            server span, one per FHIR or directory request
//	  cqgate.directory.lookup
//	  cqgate.discovery
//	  cqgate.token            the cached token; cqgate.token.cache = hit|miss
//	    cqgate.token.exchange
//	      cqgate.sign
//	      cqgate.http.partner client span of the token request
//	  cqgate.udap.register    when a tenant is registered at first use
//	  cqgate.upstream         client span of the FHIR request
//
// Spans carry no URLs, paths, query values, resource ids, header values,
// tokens, assertions or keys: only an organization's OID, a FHIR
// resource type, methods, status codes, host names and outcome codes.
// Errors are described by codes, never by Go error strings.
//
// Spans are exported by cqgate's own sdktrace.SpanExporter (otlp.go):
// OTLP/HTTP with binary protobuf (application/x-protobuf) only, the
// ExportTraceServiceRequest written by hand with protowire (otlpwire.go;
// field numbers of opentelemetry-proto v1). The official otlptracehttp
// exporter links gRPC, genproto, grpc-gateway and the protobuf runtime's
// registry and reflection: 22 MB of the executable and ~6 MiB of idle
// RSS for a feature off by default. OTLP over gRPC and http/json are not
// supported. The exporter reads OTEL_EXPORTER_OTLP_* as the SDK does,
// retries 429, 502, 503, 504 and unreachable collectors with Retry-After
// (internal/retry), returns a partial success as an error for the batch
// processor to log, and never puts a header value (they carry API keys)
// in an error. The tests decode what it sends with the official
// generated types.
//
// Spans are not taken from a global provider: the gateway builds one
// Tracing and hands it to the router and the transports; functions deeper
// down start their spans from the span in their context (Start).
package tracing
