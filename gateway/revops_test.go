package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
)

// revopsGateway builds a gateway on PEM keys with one static organization
// (1.2.3.4) whose FHIR server and token endpoint are upstream, auditing
// to a file it returns.
func revopsGateway(t *testing.T, upstream string) (*Gateway, *config.Config, string) {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cf, kf, af := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem"), filepath.Join(d, "audit.log")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Keys.Source, cfg.Keys.PEM = "pem", config.PEMKeys{CertificateFile: cf, PrivateKeyFile: kf}
	cfg.Keys.WatchInterval = 0
	cfg.Client.ClientID = "gw.example.org"
	cfg.Audit.Destination = "file:" + af
	cfg.Organizations = map[string]config.Organization{"1.2.3.4": {
		FHIRBase: upstream + "/fhir", TokenURL: upstream + "/token", AllowPrivateAddresses: true,
	}}
	cfg.Server.ShutdownTimeout = 200 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := g.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return g, cfg, af
}

// README "Signals": "SIGTERM stops accepting and drains in-flight requests
// for up to server.shutdown_timeout, then exits 0", and "Every FHIR request
// writes one JSON audit line". A request that outlasts shutdown_timeout
// (a slow partner) makes Serve return an error (cmd/cqgate then exits 2
// with "gateway: shutting down: context deadline exceeded"), and the
// request, already forwarded to the partner with cqgate's token, is cut
// without an answer and without an audit line: Serve returns while its
// handler is still running, and run's deferred g.Close closes the audit
// trail under it.
func TestRevOpsShutdownPastTimeoutExitsCleanlyAndAudits(t *testing.T) {
	forwarded := make(chan struct{})
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"tok","token_type":"Bearer","expires_in":600,"scope":"system/*.read"}`)
		default:
			close(forwarded)
			select { // a slow partner
			case <-release:
			case <-r.Context().Done():
			}
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
		}
	}))
	defer up.Close()
	defer close(release)

	g, cfg, auditFile := revopsGateway(t, up.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, g.Handler, cfg.Server, log) }()

	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/fhir/1.2.3.4/Patient/1")
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-forwarded:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the partner")
	}
	cancel() // SIGTERM
	var serveErr error
	select {
	case serveErr = <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	_ = g.Close() // as run's deferred Close does; the process then exits

	if serveErr != nil {
		t.Errorf("Serve after shutdown_timeout: %v (README: SIGTERM drains for up to server.shutdown_timeout, then exits 0)", serveErr)
	}
	b, _ := os.ReadFile(auditFile)
	if !strings.Contains(string(b), `"resource_type":"Patient"`) {
		t.Errorf("the request forwarded to the partner and cut at shutdown has no audit line; audit file: %q", b)
	}
}
