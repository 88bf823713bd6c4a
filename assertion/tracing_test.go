package assertion_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// traceparents records the traceparent of each request to Vault's
// transit sign endpoint.
type traceparents struct {
	base http.RoundTripper
	mu   sync.Mutex
	got  []string
}

func (t *traceparents) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/transit/sign/") {
		t.mu.Lock()
		t.got = append(t.got, r.Header.Get("Traceparent"))
		t.mu.Unlock()
	}
	return t.base.RoundTrip(r)
}

// TestTransitSigningCarriesTrace: signing with a Vault transit key inside
// a request sends the request's trace context to Vault, although go-jose
// asks the signer for a signature without a context.
func TestTransitSigningCarriesTrace(t *testing.T) {
	const token = "hvs.transit-trace"
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gateway.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := vaulttest.New(t, token)
	srv.ImportTransitKey("transit", "cqgate", pem.Signer)
	srv.Put("secret", "cqgate/cert", map[string]any{"certificate": string(certPEM)})

	tr, err := tracing.New(context.Background(), tracing.Config{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	rec := &traceparents{}
	client, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: token}},
		vault.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
			rec.base = rt
			return tr.Transport(rec, "cqgate.http.vault", tracing.CallVault)
		}))
	if err != nil {
		t.Fatal(err)
	}
	holder := keys.NewHolder(&keys.VaultTransit{Client: client, Key: "cqgate", CertPath: "cqgate/cert"}, keys.HolderOptions{})
	if _, err := holder.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}

	in, _ := http.NewRequest(http.MethodGet, "http://cqgate/fhir/1.2.3/Patient", nil)
	in.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ctx, span := tr.StartRequest(in)
	defer span.End()
	signer := &assertion.Signer{Keys: holder}
	if _, err := signer.Sign(ctx, assertion.Claims{ClientID: "gateway.example.org", Audience: "https://auth.example.org/token"}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 1 {
		t.Fatalf("%d transit sign requests, want 1", len(rec.got))
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + trace.SpanContextFromContext(ctx).SpanID().String() + "-00"
	if rec.got[0] != want {
		t.Errorf("Vault got traceparent %q, want the request's %q", rec.got[0], want)
	}
}
