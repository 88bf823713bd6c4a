package gateway

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/keys"
)

// pkiMaterial is signing material for a leaf pkitest issued (chain: leaf,
// intermediate), so that its revocation can be checked.
func pkiMaterial(t *testing.T, pki *pkitest.PKI, notAfter time.Time) *keys.Material {
	t.Helper()
	leaf := pki.Issue(t, pki.Intermediate, pkitest.CertOptions{CommonName: "gw.example.org", NotAfter: notAfter})
	der, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.Intermediate.Cert.Raw})...)
	m, err := keys.ParsePEM(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func trustTestGateway(t *testing.T, m *keys.Material, tune func(*config.Config)) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	cfg.Audit.Destination = "none"
	cfg.Keys.Source = "static"
	cfg.Keys.RevocationCheckInterval = 0 // checked by the test
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: "https://fhir.example.org/r4", TokenURL: "https://fhir.example.org/token"}}
	if tune != nil {
		tune(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// An unguarded transport: the test CA publishes its CRLs on loopback.
	g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(m), Transport: http.DefaultTransport})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return g
}

func get(t *testing.T, h http.Handler, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "127.0.0.1:5000"
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

// A revoked signing certificate makes /readyz unready and says why; one
// expiring within keys.expiry_warning_days is reported while ready; the
// metrics say both.
func TestOwnCertificateReadyzAndMetrics(t *testing.T) {
	pki := pkitest.New(t, pkitest.Options{})

	m := pkiMaterial(t, pki, time.Now().Add(10*24*time.Hour))
	g := trustTestGateway(t, m, nil)
	g.checkOwn(context.Background())
	code, body, _ := get(t, g.Handler, "/readyz")
	if code != http.StatusOK || !strings.Contains(body, "warnings") || !strings.Contains(body, "expires in 9 days") {
		t.Fatalf("expiring in 10 days with a 30-day warning: %d %s", code, body)
	}
	if v := gaugeValue(t, g, "cqgate_signing_certificate_expiring", map[string]string{"identity": "default"}); v != 1 {
		t.Errorf("cqgate_signing_certificate_expiring = %v", v)
	}

	pki.Revoke(m.Chain[0], 1)
	g2 := trustTestGateway(t, m, nil)
	g2.checkOwn(context.Background())
	code, body, _ = get(t, g2.Handler, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "identity default") || !strings.Contains(body, "is revoked") ||
		!strings.Contains(body, "keyCompromise") {
		t.Fatalf("revoked: %d %s", code, body)
	}
	if v := gaugeValue(t, g2, "cqgate_signing_certificate_revocation_status", map[string]string{"identity": "default", "status": "revoked"}); v != 1 {
		t.Errorf("cqgate_signing_certificate_revocation_status{status=revoked} = %v", v)
	}
}

// /.well-known/jwks.json answers without caller authentication even when
// every other route requires an API key, lists the key cqgate signs with
// under its kid, and nothing private.
func TestJWKSWithoutCallerAuth(t *testing.T) {
	pki := pkitest.New(t, pkitest.Options{})
	m := pkiMaterial(t, pki, time.Time{})
	sum := sha256.Sum256([]byte("caller-key"))
	g := trustTestGateway(t, m, func(c *config.Config) {
		c.Inbound.Auth = "api_key"
		c.Inbound.APIKeys = map[string]string{"svc": hex.EncodeToString(sum[:])}
		c.Inbound.Callers = map[string]config.Caller{"svc": {Organizations: []string{"*"}}}
	})
	if code, _, _ := get(t, g.Handler, "/directory/Organization/1.2.3"); code != http.StatusUnauthorized {
		t.Fatalf("the directory without an API key: %d", code)
	}
	code, body, hdr := get(t, g.Handler, "/.well-known/jwks.json")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Cache-Control"), "public") {
		t.Fatalf("JWK Set: %d %s %v", code, body, hdr)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	want := jose.JSONWebKey{Key: m.Chain[0].PublicKey}
	tp, _ := want.Thumbprint(crypto.SHA256)
	if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || len(set.Keys[0].Certificates) == 0 {
		t.Fatalf("keys = %+v", set.Keys)
	}
	got, _ := set.Keys[0].Thumbprint(crypto.SHA256)
	if string(got) != string(tp) {
		t.Error("the listed key is not the signing key")
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`} {
		if strings.Contains(body, private) {
			t.Errorf("private parameter %s listed", private)
		}
	}
}

// gaugeValue is the value of the gauge name with labels, -1 when absent.
func gaugeValue(t *testing.T, g *Gateway, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// A write under a read-only grant is refused before it goes out, unless
// tokens.enforce_granted_scope is off.
func TestGrantedScopeEnforced(t *testing.T) {
	lt := newLoopbackTenant(t)
	for _, enforce := range []bool{true, false} {
		cfg := config.Default()
		cfg.Client.ClientID = "gw.example.org"
		cfg.Client.Scope = "system/*.read"
		cfg.Tokens.EnforceGrantedScope = enforce
		cfg.Audit.Destination = "none"
		cfg.Keys.Source = "static"
		cfg.Inbound.Callers = map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}}
		cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: lt.srv.URL + "/r4", TokenURL: lt.srv.URL + "/token", AllowPrivateAddresses: true}}
		log := logrus.New()
		log.SetOutput(io.Discard)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(lt.material)})
		if err != nil {
			t.Fatal(err)
		}
		if code, body, _ := get(t, g.Handler, "/fhir/1.2.3/Patient/1"); code != http.StatusOK {
			t.Fatalf("read: %d %s", code, body)
		}
		before := lt.upstream.Load()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodDelete, "/fhir/1.2.3/Patient/1", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		g.Handler.ServeHTTP(rec, req)
		switch {
		case enforce && (rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `granted scope \"system/*.read\" does not cover DELETE /Patient/1`)):
			t.Errorf("enforced: %d %s", rec.Code, rec.Body)
		case enforce && lt.upstream.Load() != before:
			t.Error("the refused request reached the FHIR server")
		case !enforce && rec.Code != http.StatusOK:
			t.Errorf("not enforced: %d %s", rec.Code, rec.Body)
		}
	}
}
