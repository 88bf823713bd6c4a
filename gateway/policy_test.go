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

// With inbound.auth none and no callers listed, the anonymous caller may
// read but not write (config.example.yaml: a caller not listed is denied
// what its policy does not allow); a callers.anonymous entry opens writes.
func TestNoCallersIsReadOnly(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var upstream atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": "Bearer", "expires_in": 300})
			return
		}
		upstream.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
	}))
	defer srv.Close()

	newGateway := func(t *testing.T, callers map[string]config.Caller) http.Handler {
		cfg := config.Default()
		cfg.Client.ClientID = "gw.example.org"
		cfg.Audit.Destination = "none"
		cfg.Keys.Source = "static"
		cfg.Inbound.Callers = callers
		cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: srv.URL + "/r4", TokenURL: srv.URL + "/token", AllowPrivateAddresses: true}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		log := logrus.New()
		log.SetOutput(io.Discard)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(m)})
		if err != nil {
			t.Fatal(err)
		}
		return g.Handler
	}
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

	h := newGateway(t, nil)
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
		before := upstream.Load()
		code, body := send(h, tt.method, tt.path)
		if code != tt.want {
			t.Errorf("no callers: %s %s = %d, want %d: %s", tt.method, tt.path, code, tt.want, body)
		}
		if tt.want == http.StatusForbidden {
			if !strings.Contains(body, "callers.anonymous.methods") || !strings.Contains(body, "OperationOutcome") {
				t.Errorf("no callers: %s refusal does not name the rule: %s", tt.method, body)
			}
			if upstream.Load() != before {
				t.Errorf("no callers: a refused %s reached the FHIR server", tt.method)
			}
		}
	}

	open := newGateway(t, map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}})
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if code, body := send(open, method, "/fhir/1.2.3/Patient/1"); code != http.StatusOK {
			t.Errorf("callers.anonymous methods *: %s = %d: %s", method, code, body)
		}
	}
}
