package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// hostileTenants resolves every OID to a tenant without any network.
type hostileTenants struct{}

func (hostileTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	return &tenant.Tenant{OID: oid}, nil
}

func (h hostileTenants) Describe(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return h.Resolve(ctx, oid)
}

func (hostileTenants) Scope(string) string { return "system/*.read" }

// hostileForwarder records what would have been forwarded.
type hostileForwarder struct {
	forwarded bool
	header    http.Header
}

func (f *hostileForwarder) Forward(w http.ResponseWriter, r *http.Request, _ *tenant.Tenant, _ string) {
	f.forwarded, f.header = true, r.Header.Clone()
	w.WriteHeader(http.StatusNoContent)
}

// Methods cqgate does not forward, method overrides and credentials in
// the query are refused before anything is forwarded; a protocol upgrade
// is forwarded as a plain request.
func TestHostileRequestsRefusedBeforeForwarding(t *testing.T) {
	tests := []struct {
		name, method, target string
		header               map[string]string
		wantStatus           int
		wantCode             string
		wantAllow            bool
	}{
		{"TRACE", "TRACE", "/fhir/1.2.3/Patient/1", nil, 405, "not-supported", true},
		{"CONNECT", "CONNECT", "/fhir/1.2.3/Patient/1", nil, 405, "not-supported", true},
		{"method override", "GET", "/fhir/1.2.3/Patient/1", map[string]string{"X-HTTP-Method-Override": "DELETE"}, 400, "not-supported", false},
		{"X-HTTP-Method", "POST", "/fhir/1.2.3/Patient/_search", map[string]string{"X-HTTP-Method": "PUT"}, 400, "not-supported", false},
		{"access_token", "GET", "/fhir/1.2.3/Patient?access_token=x", nil, 400, "security", false},
		{"ACCESS_TOKEN", "GET", "/fhir/1.2.3/Patient?name=a&ACCESS_TOKEN=x", nil, 400, "security", false},
		{"access%5Ftoken", "GET", "/fhir/1.2.3/Patient?access%5Ftoken=x", nil, 400, "security", false},
		{"access_token after a semicolon", "GET", "/fhir/1.2.3/Patient?name=a;access_token=x", nil, 400, "security", false},
		{"access_token without a value", "GET", "/fhir/1.2.3/Patient?access_token", nil, 400, "security", false},
		{"dot-dot with a path parameter", "GET", "/fhir/1.2.3/Patient/..;/x", nil, 400, "invalid", false},
		{"OPTIONS is forwarded", "OPTIONS", "/fhir/1.2.3/Patient", nil, 204, "", false},
		{"token-like query names are not credentials", "GET", "/fhir/1.2.3/Patient?access_token_hint=x&_format=xml", nil, 204, "", false},
		{"upgrade is forwarded without Upgrade", "GET", "/fhir/1.2.3/Patient/1", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"}, 204, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd := &hostileForwarder{}
			log := logrus.New()
			log.SetOutput(io.Discard)
			h := New(Config{Tenants: hostileTenants{}, Proxy: fwd, Logger: log})
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode == "" {
				if !fwd.forwarded {
					t.Fatal("not forwarded")
				}
				if v := fwd.header.Get("Upgrade"); v != "" {
					t.Errorf("Upgrade %q forwarded", v)
				}
				return
			}
			if fwd.forwarded {
				t.Error("a refused request was forwarded")
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Code, Diagnostics string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || oo.Issue[0].Code != tt.wantCode {
				t.Fatalf("want OperationOutcome %s, got %s", tt.wantCode, rec.Body)
			}
			if allow := rec.Header().Get("Allow"); tt.wantAllow != (allow != "") || strings.Contains(allow, tt.method) {
				t.Errorf("Allow = %q", allow)
			}
			if strings.Contains(rec.Body.String(), "=x") {
				t.Errorf("the refusal quotes the credential's value: %s", rec.Body)
			}
		})
	}
}

// FuzzSplitFHIRPath checks that however a request path is escaped, the
// OID and the FHIR path split from it never overlap, the OID never holds
// a slash once it parses, and whatever both checks accept is forwarded
// under the tenant's base.
func FuzzSplitFHIRPath(f *testing.F) {
	for _, seed := range []string{
		"/fhir/1.2.3/Patient/1", "/fhir/urn:oid:1.2.3/Patient", "/fhir/urn%3Aoid%3A1.2.3/x", "/fhir/1.2%2F3/Patient",
		"/fhir/1.2.3", "/fhir/1.2.3/", "/fhir/1.2.3//evil", "/fhir/%2e%2e/x", "/fhir/1.2.3/%2e%2e/x", "/fhir/%zz/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/fhir/") {
			p = "/fhir/" + p
		}
		u, err := url.Parse("http://cqgate.test" + p)
		if err != nil {
			return // net/http answers 400 itself
		}
		rawOID, fhirPath := splitFHIRPath(&http.Request{URL: u})
		if fhirPath != "" && !strings.HasPrefix(fhirPath, "/") {
			t.Fatalf("split %q: FHIR path %q does not start with /", p, fhirPath)
		}
		oid, err := directory.ParseOID(rawOID)
		if err != nil {
			return
		}
		if strings.ContainsAny(oid, "/\\%?#") {
			t.Fatalf("split %q: OID %q accepted", p, oid)
		}
		if _, err := proxy.ParsePath(fhirPath); err != nil {
			return
		}
		if strings.Contains(fhirPath, "/../") || strings.HasSuffix(fhirPath, "/..") || strings.HasPrefix(fhirPath, "//") {
			t.Fatalf("split %q: FHIR path %q accepted", p, fhirPath)
		}
	})
}
