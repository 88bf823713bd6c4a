package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
)

// loopbackTenant is organization 1.2.3 on a loopback FHIR server whose
// /token answers every exchange; upstream counts the FHIR requests.
type loopbackTenant struct {
	srv      *httptest.Server
	material *keys.Material
	upstream atomic.Int64
}

func newLoopbackTenant(t *testing.T) *loopbackTenant {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	lt := &loopbackTenant{}
	if lt.material, err = keys.ParsePEM(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	lt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": "Bearer", "expires_in": 300})
			return
		}
		lt.upstream.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
	}))
	t.Cleanup(lt.srv.Close)
	return lt
}

// gateway assembles a gateway for the tenant with callers as the policy.
func (lt *loopbackTenant) gateway(t *testing.T, callers map[string]config.Caller) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	// Read and write, so that only the callers' policy limits writes
	// (tokens.enforce_granted_scope refuses what the scope does not cover).
	cfg.Client.Scope = "system/*.*"
	cfg.Audit.Destination = "none"
	cfg.Keys.Source = "static"
	cfg.Inbound.Callers = callers
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: lt.srv.URL + "/r4", TokenURL: lt.srv.URL + "/token", AllowPrivateAddresses: true}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(lt.material)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// With inbound.auth none and no callers listed, the anonymous caller may
// read but not write (config.example.yaml: a caller not listed is denied
// what its policy does not allow); a callers.anonymous entry opens writes.
func TestNoCallersIsReadOnly(t *testing.T) {
	lt := newLoopbackTenant(t)
	send := func(h http.Handler, method, path string) (int, string) {
		rec := httptest.NewRecorder()
		var body io.Reader
		if method != http.MethodGet && method != http.MethodHead && method != http.MethodDelete {
			body = strings.NewReader(`{"resourceType":"Patient"}`)
		}
		req := httptest.NewRequest(method, path, body)
		req.RemoteAddr = "127.0.0.1:5000"
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	h := lt.gateway(t, nil).Handler
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/fhir/1.2.3/Patient/1", http.StatusOK},
		{http.MethodHead, "/fhir/1.2.3/Patient/1", http.StatusOK},
		{http.MethodPost, "/fhir/1.2.3/Patient/_search", http.StatusOK},
		{http.MethodPost, "/fhir/1.2.3/Patient", http.StatusForbidden},
		{http.MethodPut, "/fhir/1.2.3/Patient/1", http.StatusForbidden},
		{http.MethodPatch, "/fhir/1.2.3/Patient/1", http.StatusForbidden},
		{http.MethodDelete, "/fhir/1.2.3/Patient/1", http.StatusForbidden},
	}
	for _, tt := range tests {
		before := lt.upstream.Load()
		code, body := send(h, tt.method, tt.path)
		if code != tt.want {
			t.Errorf("no callers: %s %s = %d, want %d: %s", tt.method, tt.path, code, tt.want, body)
		}
		if tt.want == http.StatusForbidden {
			if !strings.Contains(body, "callers.anonymous.methods") || !strings.Contains(body, "OperationOutcome") {
				t.Errorf("no callers: %s refusal does not name the rule: %s", tt.method, body)
			}
			if lt.upstream.Load() != before {
				t.Errorf("no callers: a refused %s reached the FHIR server", tt.method)
			}
		}
	}

	open := lt.gateway(t, map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}}).Handler
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if code, body := send(open, method, "/fhir/1.2.3/Patient/1"); code != http.StatusOK {
			t.Errorf("callers.anonymous methods *: %s = %d: %s", method, code, body)
		}
	}
}
