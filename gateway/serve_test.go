package gateway

import (
	"context"
	"encoding/json"
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
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
)

// SIGTERM (ctx ending) stops new connections but lets a slow in-flight
// request finish, and Serve returns nil.
func TestServeDrainsInFlightRequests(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := logrus.New()
	log.SetOutput(io.Discard)
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, config.Default().Server, log) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel() // as SIGTERM does
	select {
	case err := <-served:
		t.Fatalf("Serve returned before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Fatalf("in-flight request got %q", body)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

// pemAuditedGateway builds a gateway on PEM keys with one static organization
// (1.2.3.4) whose FHIR server and token endpoint are upstream, auditing
// to a file it returns.
func pemAuditedGateway(t *testing.T, upstream string) (*Gateway, *config.Config, string) {
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

// README: "SIGTERM stops accepting and drains in-flight requests for up
// to server.shutdown_timeout, then exits 0", and every FHIR request
// writes one audit line. A request that outlasts shutdown_timeout (a slow
// partner) is cut: its connection is closed, its handler (its context
// cancelled) answers and audits as for a caller that went away, Serve
// waits for it before returning nil, and a warning names how many
// requests were cut.
func TestServeCutsRequestsPastShutdownTimeoutAndAuditsThem(t *testing.T) {
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

	g, cfg, auditFile := pemAuditedGateway(t, up.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, logged := logtest.NewNullLogger()
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
		t.Errorf("Serve after shutdown_timeout: %v, want nil (cqgate exits 0)", serveErr)
	}
	b, _ := os.ReadFile(auditFile)
	var rec struct {
		ResourceType string `json:"resource_type"`
		Status       int    `json:"status"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.ResourceType != "Patient" || rec.Status == 0 || rec.Status == http.StatusOK {
		t.Errorf("the request cut at shutdown has no audit line of a cut request (%v); audit file: %q", err, b)
	}
	var cut *logrus.Entry
	for _, e := range logged.AllEntries() {
		if strings.Contains(e.Message, "shutdown_timeout") {
			cut = e
		}
	}
	if cut == nil || cut.Level != logrus.WarnLevel || cut.Data["requests"] != int64(1) {
		t.Errorf("want a warning naming the 1 request cut, got %+v", cut)
	}
}
