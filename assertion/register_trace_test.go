package assertion

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cqgate/cqgate/internal/tracing"
)

type headerLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	tps  []string
}

func (h *headerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.tps = append(h.tps, r.Header.Get("Traceparent"))
	h.mu.Unlock()
	return h.base.RoundTrip(r)
}

// TestRegisterTraced: a registration runs in a cqgate.udap.register span
// under the request's, its POST carries the trace, and neither span holds
// the software statement.
func TestRegisterTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.NewWithProvider(tp)

	srv := newUDAPServer(t)
	log := &headerLog{base: http.DefaultTransport}
	g := &Registrar{Signer: &Signer{Keys: staticKeys{newMaterial(t, rsaKey())}},
		HTTPClient: &http.Client{Transport: tr.Transport(log, "cqgate.http.partner", tracing.CallPartner)}}
	in, _ := http.NewRequest(http.MethodPost, "http://cqgate/register", nil)
	ctx, span := tr.StartRequest(in)
	if _, err := g.Register(ctx, testRegistration(srv.RegistrationURL)); err != nil {
		t.Fatalf("Register: %v (server: %v)", err, srv.Failures())
	}
	span.End()

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	reg, call := byName["cqgate.udap.register"], byName["cqgate.http.partner"]
	if reg == nil || call == nil {
		t.Fatalf("spans: %v", byName)
	}
	if reg.Parent().SpanID() != span.SpanContext().SpanID() || call.Parent().SpanID() != reg.SpanContext().SpanID() {
		t.Error("the registration is not under the request, or its POST not under the registration")
	}
	if len(log.tps) != 1 || !strings.Contains(log.tps[0], call.SpanContext().SpanID().String()) {
		t.Errorf("registration endpoint got traceparent %v, want the POST's span %s", log.tps, call.SpanContext().SpanID())
	}
	statement := srv.Statements()[0]
	sig := statement[strings.LastIndexByte(statement, '.')+1:]
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, sig) || strings.Contains(v, srv.RegistrationURL) {
				t.Errorf("span %s attribute %s holds the statement or the URL", s.Name(), kv.Key)
			}
		}
	}
}
