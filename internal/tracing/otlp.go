package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/upstream"
)

// cqgate's own OTLP/HTTP span exporter: binary protobuf written with
// protowire alone (otlpwire.go), so that neither gRPC nor the protobuf
// runtime's registry and reflection are linked in for tracing.

const (
	contentTypeProtobuf = "application/x-protobuf"
	defaultTracesPath   = "/v1/traces"
	defaultOTLPTimeout  = 10 * time.Second
	// maxResponseBytes bounds what is read of a collector's answer, as
	// the official exporter does.
	maxResponseBytes = 4 << 20
	// maxErrorBody is how much of a refusal's body goes into the error.
	maxErrorBody = 256
	// maxRetryAfter is the longest Retry-After honoured; a collector
	// asking for more ends the export (the official exporter gives up
	// after a minute too).
	maxRetryAfter = time.Minute
	userAgent     = "cqgate-otlp-exporter"
)

// The OpenTelemetry SDK's variables this exporter reads (and their
// OTEL_EXPORTER_OTLP_TRACES_* companions, which win).
const (
	envPrefix            = "OTEL_EXPORTER_OTLP_"
	envTracesPrefix      = "OTEL_EXPORTER_OTLP_TRACES_"
	envHeaders           = "HEADERS"
	envTimeout           = "TIMEOUT"
	envCompression       = "COMPRESSION"
	envProtocol          = "PROTOCOL"
	envInsecure          = "INSECURE"
	envCertificate       = "CERTIFICATE"
	envClientCertificate = "CLIENT_CERTIFICATE"
	envClientKey         = "CLIENT_KEY"
)

// exportRetry is the schedule of retries after a 429, 502, 503, 504 or a
// failure to reach the collector: the official exporter's intervals (5 s
// growing to 30 s, ±50%), bounded by attempts and the export's context
// (the batch processor's 30 s export timeout).
var exportRetry = retry.Policy{Attempts: 5, Initial: 5 * time.Second, Max: 30 * time.Second, Multiplier: 1.5, Jitter: retry.Spread}

// otlpSettings is where and how spans are sent.
type otlpSettings struct {
	url     *url.URL // scheme, host and path only
	headers map[string]string
	gzip    bool
	timeout time.Duration
	tls     *tls.Config // from OTEL_EXPORTER_OTLP_CERTIFICATE and companions; nil: the system's
}

// exporterSettings reads cfg and the environment as the OpenTelemetry
// SDK's OTLP/HTTP exporter does: the per-signal variables win over the
// general ones, and a configured Endpoint wins over both.
func exporterSettings(cfg Config, getenv func(string) string) (otlpSettings, error) {
	s := otlpSettings{
		url:     &url.URL{Scheme: "https", Host: "localhost:4318", Path: defaultTracesPath},
		timeout: defaultOTLPTimeout,
	}
	env := func(name string) (string, string, bool) {
		if v := strings.TrimSpace(getenv(envTracesPrefix + name)); v != "" {
			return envTracesPrefix + name, v, true
		}
		v := strings.TrimSpace(getenv(envPrefix + name))
		return envPrefix + name, v, v != ""
	}
	// OTEL_EXPORTER_OTLP_ENDPOINT is a base URL the signal's path is
	// joined to; the TRACES_ variant is used as it is ("/" when it has
	// no path).
	if v := strings.TrimSpace(getenv(EnvEndpoint)); v != "" {
		u, err := envURL(EnvEndpoint, v)
		if err != nil {
			return s, err
		}
		s.url = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: path.Join(u.Path, defaultTracesPath)}
	}
	if v := strings.TrimSpace(getenv(EnvTracesEndpoint)); v != "" {
		u, err := envURL(EnvTracesEndpoint, v)
		if err != nil {
			return s, err
		}
		p := u.Path
		if p == "" {
			p = "/"
		}
		s.url = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}
	}
	if _, v, ok := env(envInsecure); ok {
		s.url.Scheme = "https"
		if strings.EqualFold(v, "true") {
			s.url.Scheme = "http"
		}
	}
	if name, v, ok := env(envHeaders); ok {
		h, err := parseHeaders(name, v)
		if err != nil {
			return s, err
		}
		s.headers = h
	}
	if _, v, ok := env(envCompression); ok {
		s.gzip = v == "gzip"
	}
	if name, v, ok := env(envProtocol); ok && v != "http/protobuf" {
		return s, fmt.Errorf("tracing: %s=%q: cqgate exports spans over OTLP/HTTP with protobuf (http/protobuf) only", name, v)
	}
	if name, v, ok := env(envTimeout); ok {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			return s, fmt.Errorf("tracing: %s=%q is not a number of milliseconds", name, v)
		}
		s.timeout = time.Duration(ms) * time.Millisecond
	}
	tlsCfg, err := envTLS(env)
	if err != nil {
		return s, err
	}
	s.tls = tlsCfg
	if cfg.Endpoint != "" {
		u, err := endpointURL(cfg.Endpoint, cfg.Insecure)
		if err != nil {
			return s, err
		}
		s.url = u
	}
	return s, nil
}

// envURL parses an endpoint variable; only its scheme, host and path are
// used, as by the SDK (user info and query never reach a log).
func envURL(name, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracing: %s is not a URL with a host", name)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		u.Scheme = "http"
	default: // as the SDK: anything else is sent over TLS
		u.Scheme = "https"
	}
	return u, nil
}

// parseHeaders reads a W3C-baggage-like list: key=value pairs separated
// by commas, values percent-encoded. Errors name the variable and the
// entry's position, never a value: header values carry API keys.
func parseHeaders(name, v string) (map[string]string, error) {
	h := make(map[string]string)
	for i, pair := range strings.Split(v, ",") {
		k, val, found := strings.Cut(pair, "=")
		if !found {
			return nil, fmt.Errorf("tracing: %s: entry %d has no '='", name, i+1)
		}
		k = strings.TrimSpace(k)
		if !validHeaderKey(k) {
			return nil, fmt.Errorf("tracing: %s: entry %d: the header name is not a token", name, i+1)
		}
		dec, err := url.PathUnescape(val)
		if err != nil {
			return nil, fmt.Errorf("tracing: %s: header %s: the value is not percent-encoded properly", name, k)
		}
		h[k] = strings.TrimSpace(dec)
	}
	return h, nil
}

func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// envTLS reads the collector's CA and the client's certificate.
func envTLS(env func(string) (string, string, bool)) (*tls.Config, error) {
	var c tls.Config
	set := false
	if name, file, ok := env(envCertificate); ok {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("tracing: %s: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tracing: %s: no PEM certificate in %s", name, file)
		}
		c.RootCAs, set = pool, true
	}
	certName, certFile, okc := env(envClientCertificate)
	keyName, keyFile, okk := env(envClientKey)
	if okc != okk {
		return nil, fmt.Errorf("tracing: %s and %s go together", certName, keyName)
	}
	if okc {
		crt, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: %s, %s: %w", certName, keyName, err)
		}
		c.Certificates, set = []tls.Certificate{crt}, true
	}
	if !set {
		return nil, nil
	}
	return &c, nil
}

// exporter sends spans to an OTLP/HTTP collector. It is an
// sdktrace.SpanExporter; the batch span processor calls ExportSpans one
// batch at a time.
type exporter struct {
	url     string
	header  http.Header
	secrets []string // header values, kept out of errors
	gzip    bool
	client  *http.Client
	retry   retry.Policy

	stopOnce sync.Once
	stop     chan struct{}
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

// errStopped is ExportSpans' answer after Shutdown.
var errStopped = errors.New("tracing: the OTLP exporter is shut down")

func newExporter(s otlpSettings) *exporter {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.tls != nil {
		tr.TLSClientConfig = s.tls
	}
	h := make(http.Header, len(s.headers)+2)
	var secrets []string
	for k, v := range s.headers {
		h.Set(k, v)
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	h.Set("Content-Type", contentTypeProtobuf)
	h.Set("User-Agent", userAgent)
	if s.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	return &exporter{
		url:     s.url.String(),
		header:  h,
		secrets: secrets,
		gzip:    s.gzip,
		client:  &http.Client{Transport: tr, Timeout: s.timeout},
		retry:   exportRetry,
		stop:    make(chan struct{}),
	}
}

// ExportSpans sends spans in one request, retried as the OTLP
// specification says (429, 502, 503, 504 and failures to connect, after
// Retry-After when given). It gives up when ctx ends or Shutdown is
// called.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	select {
	case <-e.stop:
		return errStopped
	default:
	}
	body, err := e.encode(spans)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Shutdown abandons the export
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var last error
	err = e.retry.Do(ctx, func(ctx context.Context) retry.Verdict {
		var v retry.Verdict
		v, last = e.send(ctx, body)
		return v
	})
	switch {
	case err != nil && last != nil:
		return fmt.Errorf("tracing: exporting %d spans: %w (last attempt: %w)", len(spans), err, last)
	case err != nil:
		return fmt.Errorf("tracing: exporting %d spans: %w", len(spans), err)
	}
	return last
}

// encode writes the ExportTraceServiceRequest, gzipped when configured.
func (e *exporter) encode(spans []sdktrace.ReadOnlySpan) ([]byte, error) {
	raw := appendRequest(nil, spans)
	if !e.gzip {
		return raw, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("tracing: compressing spans: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("tracing: compressing spans: %w", err)
	}
	return buf.Bytes(), nil
}

// send makes one attempt and judges it.
func (e *exporter) send(ctx context.Context, body []byte) (retry.Verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return retry.Stop, fmt.Errorf("tracing: OTLP request: %w", err)
	}
	req.Header = e.header.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		// The error names the URL (scheme, host, path: no secrets) and
		// never a header. Unreachable collectors are retried.
		err = fmt.Errorf("tracing: sending spans: %w", err)
		if ctx.Err() != nil {
			return retry.Stop, err
		}
		return retry.Again, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return retry.Stop, e.readSuccess(resp)
	}
	excerpt := e.excerpt(resp.Body)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		err := fmt.Errorf("tracing: the collector at %s answered %s%s", e.url, resp.Status, excerpt)
		after := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if after > maxRetryAfter {
			return retry.Stop, fmt.Errorf("%w, asking to wait %s (more than %s)", err, after, maxRetryAfter)
		}
		return retry.Verdict{Retry: true, After: after}, err
	default:
		return retry.Stop, fmt.Errorf("tracing: the collector at %s refused spans: %s%s", e.url, resp.Status, excerpt)
	}
}

// PartialSuccessError says the collector accepted an export but rejected
// some of its spans, or warned about it.
type PartialSuccessError struct {
	Rejected int64
	Message  string
}

func (e *PartialSuccessError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "empty message"
	}
	return fmt.Sprintf("tracing: OTLP partial success: %s (%d spans rejected)", msg, e.Rejected)
}

// readSuccess reads a 2xx answer: a partial success in it becomes an
// error, which the batch processor hands to otel.Handle (logged).
func (e *exporter) readSuccess(resp *http.Response) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("tracing: reading the collector's answer: %w", err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("tracing: the collector's answer exceeds %d bytes", maxResponseBytes)
	}
	if len(data) == 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentTypeProtobuf) {
		return nil
	}
	rejected, msg, ok := partialSuccess(data)
	if !ok {
		return errors.New("tracing: the collector's answer is not an ExportTraceServiceResponse")
	}
	if rejected != 0 || msg != "" {
		return &PartialSuccessError{Rejected: rejected, Message: e.withhold(msg)}
	}
	return nil
}

// excerpt is the start of a refusal's body for the error, without any
// configured header value.
func (e *exporter) excerpt(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxResponseBytes)) // let the connection be reused
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if s == "" {
		return ""
	}
	return ": " + e.withhold(s)
}

// withhold blots the configured header values out of s (as
// upstream.Redacted).
func (e *exporter) withhold(s string) string {
	return upstream.Scrub(s, e.secrets...) // raw, percent-encoded, JSON-escaped, base64
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second)*1000 {
			return time.Duration(1<<63 - 1)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// Shutdown stops exporting: an export under way is abandoned, later ones
// fail. The batch processor has sent what it held before it calls this.
func (e *exporter) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() {
		close(e.stop)
		e.client.CloseIdleConnections()
	})
	return ctx.Err()
}
