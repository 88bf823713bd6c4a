package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
)

// rev-obs: the audit record's error is "the OperationOutcome issue code
// of a failure" (internal/audit/record.go; package doc: "what came of it
// (status, ..., the OperationOutcome code of a failure)"). A failure the
// proxy answers (here the token endpoint refusing cqgate: a 502
// OperationOutcome) is audited with no error at all; only failures of
// the router's own steps get one.
func TestRevObsProxyFailureIsAuditedWithItsIssueCode(t *testing.T) {
	lt := newLoopbackTenant(t)
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
	}))
	defer tokenSrv.Close()
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := config.Default()
	cfg.Client.ClientID = "gw.example.org"
	cfg.Client.Scope = "system/*.read"
	cfg.Audit.Destination = "file:" + trail
	cfg.Keys.Source = "static"
	cfg.Organizations = map[string]config.Organization{"1.2.3": {FHIRBase: lt.srv.URL + "/r4", TokenURL: tokenSrv.URL + "/token", AllowPrivateAddresses: true}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, Options{Logger: log, Keys: keys.NewStatic(lt.material)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient/1", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	g.Handler.ServeHTTP(rec, req)
	if rec.Code < 400 {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	var oo struct{ Issue []struct{ Code string } }
	_ = json.Unmarshal(rec.Body.Bytes(), &oo)
	raw, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(raw, &line); err != nil {
		t.Fatalf("audit %q: %v", raw, err)
	}
	if len(oo.Issue) == 0 || line["error"] != oo.Issue[0].Code {
		t.Errorf("answered %d with issue %v; audit error %v: %s", rec.Code, oo.Issue, line["error"], raw)
	}
}
