package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/keys"
)

// rtFunc adapts a function to http.RoundTripper.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// zeroConfigGateway builds a gateway on PEM keys whose directory answers
// through dir, on a settable clock.
func zeroConfigGateway(t *testing.T, mutate func(*config.Config), dir http.RoundTripper, now func() time.Time) *Gateway {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cf, kf := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Keys.Source, cfg.Keys.PEM = "pem", config.PEMKeys{CertificateFile: cf, PrivateKeyFile: kf}
	cfg.Client.ClientID = "gw.example.org"
	cfg.Audit.Destination = "none"
	cfg.Directory.URL = "https://directory.example.org/fhir"
	cfg.Directory.Retry.Attempts = 1
	mutate(cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, Options{Logger: log, DirectoryTransport: dir, Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// directory.negative_ttl: 0 remembers no "no such organization": one the
// directory did not know a moment ago is looked up again (the resolver's
// own 0 means its default of 5m; the gateway maps the config's 0 to off).
func TestDirectoryNegativeTTLZeroRemembersNothing(t *testing.T) {
	org, err := os.ReadFile("../directory/testdata/sphd-r4-organization.json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	dir := rtFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			return &http.Response{StatusCode: 404, Header: http.Header{"Content-Type": {"application/fhir+json"}}, Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}}, Body: io.NopCloser(strings.NewReader(string(org))), Request: r}, nil
	})
	g := zeroConfigGateway(t, func(c *config.Config) { c.Directory.NegativeTTL = 0 }, dir, nil)
	const oid = "2.16.840.1.113883.3.7204.1.2"
	if _, err := g.Directory.Lookup(context.Background(), oid); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("first lookup: %v, want not found", err)
	}
	_, err = g.Directory.Lookup(context.Background(), oid)
	mu.Lock()
	defer mu.Unlock()
	if err != nil || calls != 2 {
		t.Errorf("directory.negative_ttl: 0 still remembered the 404: second lookup %v after %d directory request(s)", err, calls)
	}
}

// directory.max_stale: 0 serves no expired entry while the directory
// fails (the resolver's own 0 means 24h).
func TestDirectoryMaxStaleZeroServesNothingStale(t *testing.T) {
	org, err := os.ReadFile("../directory/testdata/sphd-r4-organization.json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	down := false
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	dir := rtFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return &http.Response{StatusCode: 503, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("down")), Request: r}, nil
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}}, Body: io.NopCloser(strings.NewReader(string(org))), Request: r}, nil
	})
	g := zeroConfigGateway(t, func(c *config.Config) { c.Directory.MaxStale = 0 }, dir, clock)
	const oid = "2.16.840.1.113883.3.7204.1.2"
	if _, err := g.Directory.Lookup(context.Background(), oid); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	down, now = true, now.Add(2*time.Hour) // past cache_ttl (1h)
	mu.Unlock()
	e, err := g.Directory.Lookup(context.Background(), oid)
	if err == nil {
		t.Errorf("directory.max_stale: 0 served an expired entry anyway (stale=%v)", e.Stale)
	}
}
