package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/tracing"
)

const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceparent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
	// A query value and an identifier no span may carry.
	secretQueryValue = "MRN-7731-SECRET"
)

// sent is one request cqgate sent, as it went on the wire.
type sent struct {
	to          string // "directory", "vault" or host/path
	path        string
	traceparent string
	baggage     []string
}

// wire records the trace headers of every request that passes it.
type wire struct {
	mu   sync.Mutex
	reqs []sent
}

func (w *wire) add(to string, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reqs = append(w.reqs, sent{to: to, path: r.URL.Path, traceparent: r.Header.Get("Traceparent"), baggage: r.Header.Values("Baggage")})
}

func (w *wire) all() []sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sent(nil), w.reqs...)
}

type wireTransport struct {
	w    *wire
	to   string
	base http.RoundTripper
}

func (t wireTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.w.add(t.to, r)
	return t.base.RoundTrip(r)
}

// tracedWorld is a world whose gateway sends every request through wire
// (the directory, partners' metadata and token endpoints, the FHIR
// server and Vault) and, when tp is set, records its spans with tp.
func tracedWorld(t *testing.T, tp trace.TracerProvider) (*world, *wire) {
	t.Helper()
	var cfg *config.Config
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) { cfg = c }})
	rec := &wire{}
	// Vault is behind a recording reverse proxy: the gateway's Vault
	// client is its own.
	vaultURL, err := url.Parse(cfg.Vault.Address)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(vaultURL)
	vault := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec.add("vault", r)
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(vault.Close)
	cfg.Vault.Address = vault.URL

	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	w.start(cfg, gateway.Options{
		TracerProvider:     tp,
		Transport:          wireTransport{w: rec, to: "partner", base: base},
		DirectoryTransport: wireTransport{w: rec, to: "directory", base: base},
	}, 5*time.Second)
	return w, rec
}

func traceparentParts(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		t.Fatalf("traceparent %q is not W3C trace context", v)
	}
	return p[1], p[2], p[3]
}

// TestTracingSpanTree sends a FHIR request with the caller's traceparent
// through a gateway whose spans are recorded: the directory, the
// partner's metadata and token endpoints and the FHIR server each get the
// caller's trace id, the spans form the expected tree, and no span holds
// a query value, the patient's id, a token, an assertion or a key.
func TestTracingSpanTree(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	w, onWire := tracedWorld(t, tp)

	resp, body := w.do(http.MethodGet, "/fhir/urn:oid:"+cernerOID+"/Patient/1316024?_elements=name&identifier="+secretQueryValue, nil,
		map[string]string{"traceparent": callerTraceparent, "tracestate": "caller=opaque"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}

	// On the wire: every request for the caller's request carries its
	// trace, each with a span id of cqgate's; Vault (read at start,
	// before any caller) gets a trace of its own.
	got := map[string]bool{}
	for _, s := range onWire.all() {
		if s.traceparent == "" {
			t.Errorf("request to %s %s went without traceparent", s.to, s.path)
			continue
		}
		traceID, spanID, _ := traceparentParts(t, s.traceparent)
		if spanID == callerSpanID {
			t.Errorf("request to %s %s carries the caller's span id", s.to, s.path)
		}
		switch {
		case s.to == "vault":
			got["vault"] = true
		case traceID != callerTraceID:
			t.Errorf("request to %s %s carries trace %s, not the caller's", s.to, s.path, traceID)
		case s.to == "directory":
			got["directory"] = true
		case strings.HasSuffix(s.path, "/metadata"):
			got["metadata"] = true
		case strings.HasSuffix(s.path, "/Patient/1316024"):
			got["fhir"] = true
		case strings.HasSuffix(w.auth.TokenURL, s.path):
			got["token"] = true
		}
	}
	for _, want := range []string{"vault", "directory", "metadata", "token", "fhir"} {
		if !got[want] {
			t.Errorf("no traced request to %s on the wire (saw %+v)", want, onWire.all())
		}
	}

	// The span tree of the caller's trace.
	byName := map[string][]sdktrace.ReadOnlySpan{}
	var inTrace []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() == callerTraceID {
			inTrace = append(inTrace, s)
			byName[s.Name()] = append(byName[s.Name()], s)
		}
	}
	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		if n := len(byName[name]); n != 1 {
			t.Fatalf("%d %s spans in the caller's trace, want 1; spans: %v", n, name, names(inTrace))
		}
		return byName[name][0]
	}
	parentOf := func(child, parent sdktrace.ReadOnlySpan) {
		t.Helper()
		if child.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of %s", child.Name(), parent.Name())
		}
	}
	req := one("cqgate.request")
	if req.Parent().SpanID().String() != callerSpanID || !req.Parent().IsRemote() || req.SpanKind() != trace.SpanKindServer {
		t.Errorf("cqgate.request: parent %v kind %v, want the caller's span, server", req.Parent(), req.SpanKind())
	}
	if ts := req.SpanContext().TraceState().String(); ts != "caller=opaque" {
		t.Errorf("tracestate %q, want the caller's", ts)
	}
	lookup, disc, tok := one("cqgate.directory.lookup"), one("cqgate.discovery"), one("cqgate.token")
	exchange, sign, upstream := one("cqgate.token.exchange"), one("cqgate.sign"), one("cqgate.upstream")
	parentOf(lookup, req)
	parentOf(disc, req)
	parentOf(tok, req)
	parentOf(exchange, tok)
	parentOf(sign, exchange)
	parentOf(upstream, req)
	parentOf(one("cqgate.http.directory"), lookup)
	var metadataCall, tokenCall bool
	for _, s := range byName["cqgate.http.partner"] {
		switch s.Parent().SpanID() {
		case disc.SpanContext().SpanID():
			metadataCall = true
		case exchange.SpanContext().SpanID():
			tokenCall = true
		}
	}
	if !metadataCall || !tokenCall {
		t.Errorf("partner calls: under discovery %v, under the exchange %v; want both", metadataCall, tokenCall)
	}
	if upstream.SpanKind() != trace.SpanKindClient {
		t.Errorf("cqgate.upstream kind %v", upstream.SpanKind())
	}
	wantAttrs := []struct {
		span sdktrace.ReadOnlySpan
		key  string
		want string
	}{
		{req, "cqgate.organization.oid", cernerOID},
		{req, "fhir.resource_type", "Patient"},
		{req, "http.request.method", "GET"},
		{req, "http.response.status_code", "200"},
		{req, "http.route", "/fhir/:oid/*path"},
		{tok, "cqgate.token.cache", "miss"},
		{sign, "cqgate.jws.alg", "RS384"},
		{upstream, "http.response.status_code", "200"},
		{lookup, "cqgate.source", "directory"},
	}
	for _, wa := range wantAttrs {
		if got := attr(wa.span, wa.key); got != wa.want {
			t.Errorf("%s %s = %q, want %q", wa.span.Name(), wa.key, got, wa.want)
		}
	}

	// A second request: the token comes from the cache.
	resp, body = w.do(http.MethodGet, "/fhir/"+cernerOID+"/Patient/1316024", nil, map[string]string{"traceparent": "00-" + strings.Repeat("ab", 16) + "-" + callerSpanID + "-01"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second request: status %d: %s", resp.StatusCode, body)
	}
	hit := false
	for _, s := range rec.Ended() {
		if s.Name() == "cqgate.token" && s.SpanContext().TraceID().String() == strings.Repeat("ab", 16) {
			hit = attr(s, "cqgate.token.cache") == "hit"
		}
	}
	if !hit {
		t.Error("second request's token span does not say the cache was hit")
	}

	// A refusal: the request span says which, by code.
	refusedTrace := strings.Repeat("cd", 16)
	resp, body = w.do(http.MethodGet, "/fhir/2.999.404/Patient/1316024", nil, map[string]string{"traceparent": "00-" + refusedTrace + "-" + callerSpanID + "-01"})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown organization: status %d: %s", resp.StatusCode, body)
	}
	var refused sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "cqgate.request" && s.SpanContext().TraceID().String() == refusedTrace {
			refused = s
		}
	}
	if refused == nil {
		t.Fatal("no request span for the refused request")
	}
	if attr(refused, "cqgate.outcome") != "not-found" || attr(refused, "http.response.status_code") != "404" {
		t.Errorf("refused request span: outcome %q status %q, want not-found 404", attr(refused, "cqgate.outcome"), attr(refused, "http.response.status_code"))
	}

	assertSpansClean(t, w, rec.Ended())
}

// assertSpansClean scans every span (names, attributes, events, links,
// status, resource) for query values, the patient id, tokens, assertions,
// keys and URLs.
func assertSpansClean(t *testing.T, w *world, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	secrets := map[string]string{
		"query value": secretQueryValue, "query parameter": "_elements", "patient id": "1316024",
		"vault token": vaultToken, "directory API key": dirAPIKey,
	}
	if tok := os.Getenv("VAULT_TOKEN"); tok != "" {
		secrets["real vault token"] = tok
	}
	for i, a := range w.auth.Assertions() {
		secrets["client assertion "+string(rune('0'+i))] = a
		if p := strings.Split(a, "."); len(p) == 3 {
			secrets["assertion signature"] = p[2]
		}
	}
	for _, tok := range w.auth.AccessTokens() {
		secrets["access token"] = tok
	}
	for _, line := range strings.Split(string(w.keyPEM), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "-----") {
			secrets["private key line"] = line
		}
	}
	if len(w.auth.Assertions()) == 0 || len(w.auth.AccessTokens()) == 0 {
		t.Fatal("the scan needs an assertion and a token to look for")
	}
	if len(spans) < 10 {
		t.Fatalf("only %d spans to scan", len(spans))
	}
	forbiddenKeys := []string{"url.full", "http.url", "url.path", "url.query", "http.target", "http.request.header", "http.response.header"}
	for _, s := range spans {
		texts := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			texts = append(texts, string(kv.Key), kv.Value.Emit())
			for _, f := range forbiddenKeys {
				if strings.HasPrefix(string(kv.Key), f) {
					t.Errorf("span %s has attribute %s", s.Name(), kv.Key)
				}
			}
			if v := kv.Value.Emit(); strings.Contains(v, "://") || strings.Contains(v, "?") {
				t.Errorf("span %s attribute %s = %q looks like a URL or query", s.Name(), kv.Key, v)
			}
		}
		for _, e := range s.Events() {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, string(kv.Key), kv.Value.Emit())
			}
		}
		for _, l := range s.Links() {
			for _, kv := range l.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, kv := range s.Resource().Attributes() {
			texts = append(texts, kv.Value.Emit())
		}
		for what, secret := range secrets {
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Errorf("span %s holds the %s", s.Name(), what)
				}
			}
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// TestTracingWithoutExport: with no OTLP endpoint configured (the
// default), the caller's trace id still reaches the partner, with a span
// id of cqgate's; a caller without traceparent still gets a trace started
// for its request.
func TestTracingWithoutExport(t *testing.T) {
	t.Setenv(tracing.EnvEndpoint, "")
	t.Setenv(tracing.EnvTracesEndpoint, "")
	w, onWire := tracedWorld(t, nil)
	fhirCalls := func() []sent {
		var out []sent
		for _, s := range onWire.all() {
			if strings.HasSuffix(s.path, "/Patient/1316024") {
				out = append(out, s)
			}
		}
		return out
	}

	resp, body := w.do(http.MethodGet, "/fhir/"+cernerOID+"/Patient/1316024", nil, map[string]string{"traceparent": callerTraceparent})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	calls := fhirCalls()
	if len(calls) != 1 {
		t.Fatalf("%d FHIR requests, want 1", len(calls))
	}
	traceID, spanID, flags := traceparentParts(t, calls[0].traceparent)
	if traceID != callerTraceID || spanID == callerSpanID {
		t.Errorf("the FHIR server got %s; want the caller's trace %s with a span id of cqgate's", calls[0].traceparent, callerTraceID)
	}
	if flags != "00" {
		t.Errorf("flags %s: cqgate records nothing without an exporter", flags)
	}
	for _, s := range onWire.all() {
		if s.to == "vault" {
			continue
		}
		if id, _, _ := traceparentParts(t, s.traceparent); id != callerTraceID {
			t.Errorf("request to %s %s is not in the caller's trace", s.to, s.path)
		}
	}

	resp, body = w.do(http.MethodGet, "/fhir/"+cernerOID+"/Patient/1316024", nil, map[string]string{"traceparent": callerTraceparent})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	calls = fhirCalls()
	if traceID, again, _ := traceparentParts(t, calls[len(calls)-1].traceparent); traceID != callerTraceID || again == spanID {
		t.Errorf("the same caller span again: %s, after %s; want its trace with a new span id", calls[len(calls)-1].traceparent, calls[0].traceparent)
	}

	resp, body = w.do(http.MethodGet, "/fhir/"+cernerOID+"/Patient/1316024", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	calls = fhirCalls()
	if traceID, _, _ := traceparentParts(t, calls[len(calls)-1].traceparent); traceID == callerTraceID {
		t.Error("a request without traceparent was put in the previous caller's trace")
	}
}

// TestBaggageNeverLeaves: a caller's W3C baggage can carry internal data
// (user ids, tenant names); cqgate propagates trace context only, so no
// request it sends (FHIR server, token endpoint, discovery, directory,
// Vault) carries the caller's baggage, while its traceparent still goes.
func TestBaggageNeverLeaves(t *testing.T) {
	t.Setenv(tracing.EnvEndpoint, "")
	t.Setenv(tracing.EnvTracesEndpoint, "")
	w, onWire := tracedWorld(t, nil)
	resp, body := w.do(http.MethodGet, "/fhir/"+cernerOID+"/Patient/1316024", nil,
		map[string]string{"traceparent": callerTraceparent, "baggage": "user.id=alice%40internal,team=billing;prop=1"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	fhir := 0
	for _, s := range onWire.all() {
		if len(s.baggage) > 0 {
			t.Errorf("request to %s %s carried baggage %q", s.to, s.path, s.baggage)
		}
		if strings.HasSuffix(s.path, "/Patient/1316024") {
			fhir++
			if id, _, _ := traceparentParts(t, s.traceparent); id != callerTraceID {
				t.Errorf("the FHIR request is not in the caller's trace: %s", s.traceparent)
			}
		}
	}
	if fhir != 1 {
		t.Fatalf("%d FHIR requests on the wire, want 1", fhir)
	}
}
