package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/tenant"
)

// countingTenants counts resolutions, so tests can prove a refused
// request never reached the directory.
type countingTenants struct {
	mu       sync.Mutex
	resolved int
}

func (c *countingTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	c.mu.Lock()
	c.resolved++
	c.mu.Unlock()
	treat, payment := "urn:oid:2.16.840.1.113883.5.8#TREAT", "urn:oid:2.16.840.1.113883.5.8#HPAYMT"
	return &tenant.Tenant{OID: oid, Name: "Test", Scope: "system/*.read", UDAP: true,
		B2B:             &assertion.B2B{OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{treat}},
		AllowedPurposes: []string{treat, payment}}, nil
}

func (c *countingTenants) Describe(ctx context.Context, oid string) (*tenant.Tenant, error) {
	return c.Resolve(ctx, oid)
}

func (c *countingTenants) Scope(string) string { return "system/*.read" }

type observed struct {
	oid, method string
	status      int
	inflight    int // requests in flight when this one was observed
}

type recordingObserver struct {
	got      []observed
	inflight int
}

func (o *recordingObserver) ObserveRequest(oid, method string, status int) {
	o.got = append(o.got, observed{oid, method, status, o.inflight})
}

func (o *recordingObserver) InflightInc() { o.inflight++ }

func (o *recordingObserver) InflightDec() { o.inflight-- }

func (o *recordingObserver) AuditWriteError() {}

func TestCallers(t *testing.T) {
	const billingKey, adminKey = "billing-key-0123456789abcdef", "admin-key-0123456789abcdef"
	keys, err := callerauth.NewAPIKeys(map[string]string{"billing": callerauth.HashKey(billingKey), "admin": callerauth.HashKey(adminKey)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{
		"billing": {Organizations: []string{"2.16.840.1.113883.3.*"}, PurposesOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#HPAYMT"}},
		"admin":   {Organizations: []string{"*"}, Methods: []string{"GET", "POST", "PUT"}, Scopes: []string{"system/*.read", "system/*.write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string
		target     string
		header     map[string]string
		body       string
		wantStatus int
		wantText   string // in the body
		resolved   bool   // reached the tenant resolver
	}{
		{"no credentials", "GET", "/fhir/2.16.840.1.113883.3.1/Patient/1", nil, "", 401, "no Authorization or X-API-Key", false},
		{"wrong key", "GET", "/fhir/2.16.840.1.113883.3.1/Patient/1", map[string]string{"X-API-Key": "not-a-real-key-0000000000"}, "", 401, "", false},
		{"valid key, allowed", "GET", "/fhir/2.16.840.1.113883.3.1/Patient/1", map[string]string{"Authorization": "Bearer " + billingKey}, "", 418, "", true},
		{"valid key, other org", "GET", "/fhir/1.2.3/Patient/1", map[string]string{"X-API-Key": billingKey}, "", 403, "callers.billing.organizations", false},
		{"valid key, write not allowed", "PUT", "/fhir/2.16.840.1.113883.3.1/Patient/1", map[string]string{"X-API-Key": billingKey}, "{}", 403, "callers.billing.methods", false},
		{"search by POST is a read", "POST", "/fhir/2.16.840.1.113883.3.1/Patient/_search", map[string]string{"X-API-Key": billingKey}, "name=x", 418, "", true},
		{"purpose allowed", "GET", "/fhir/2.16.840.1.113883.3.1/Patient/1", map[string]string{"X-API-Key": billingKey, PurposeOfUseHeader: "urn:oid:2.16.840.1.113883.5.8#HPAYMT"}, "", 418, "", true},
		{"purpose not allowed", "GET", "/fhir/2.16.840.1.113883.3.1/Patient/1", map[string]string{"X-API-Key": billingKey, PurposeOfUseHeader: "urn:oid:2.16.840.1.113883.5.8#TREAT"}, "", 403, "callers.billing.purposes_of_use", false},
		{"scope broader than configured", "GET", "/fhir/1.2.3/Patient/1", map[string]string{"X-API-Key": adminKey, ScopeHeader: "system/*.write"}, "", 403, "asks for more than the scope configured", false},
		{"narrower scope", "GET", "/fhir/1.2.3/Patient/1", map[string]string{"X-API-Key": adminKey, ScopeHeader: "system/Patient.read"}, "", 418, "", true},
		{"admin writes", "PUT", "/fhir/1.2.3/Patient/1", map[string]string{"X-API-Key": adminKey}, "{}", 418, "", true},
		{"body too large", "PUT", "/fhir/1.2.3/Patient/1", map[string]string{"X-API-Key": adminKey}, strings.Repeat("x", 2048), 413, "max_body_bytes", false},
		{"lookup needs credentials", "GET", "/directory/Organization/1.2.3", nil, "", 401, "", false},
		{"lookup outside policy", "GET", "/directory/Organization/1.2.3", map[string]string{"X-API-Key": billingKey}, "", 403, "callers.billing.organizations", false},
		{"lookup allowed", "GET", "/directory/Organization/2.16.840.1.113883.3.1", map[string]string{"X-API-Key": billingKey}, "", 200, "", true},
		{"health needs nothing", "GET", "/healthz", nil, "", 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenants := &countingTenants{}
			var auditBuf, logs bytes.Buffer
			obs := &recordingObserver{}
			log := logrus.New()
			log.SetOutput(&logs)
			h := New(Config{Tenants: tenants, Proxy: &recordingForwarder{}, Logger: log, Auth: keys, Policy: policy,
				Audit: audit.New(&auditBuf), Observer: obs, MaxBodyBytes: 1024})
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Fatalf("status %d %s, want %d with %q", rec.Code, rec.Body, tt.wantStatus, tt.wantText)
			}
			if (tenants.resolved > 0) != tt.resolved {
				t.Errorf("resolved %d times, want reached=%v", tenants.resolved, tt.resolved)
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			all := rec.Body.String() + auditBuf.String() + logs.String()
			for _, secret := range []string{billingKey, adminKey} {
				if strings.Contains(all, secret) {
					t.Errorf("an API key leaked into the response, audit or log")
				}
			}
			if !strings.HasPrefix(tt.target, "/fhir/") {
				if auditBuf.Len() != 0 {
					t.Errorf("audit record for a non-FHIR request: %s", auditBuf.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(auditBuf.Bytes(), &line); err != nil {
				t.Fatalf("audit line %q: %v", auditBuf.String(), err)
			}
			if int(line["status"].(float64)) != rec.Code || line["method"] != tt.method || line["request_id"] != rec.Header().Get("X-Request-Id") {
				t.Errorf("audit line %v", line)
			}
			if len(obs.got) != 1 || obs.got[0].status != rec.Code {
				t.Fatalf("observed %v", obs.got)
			}
			if obs.got[0].inflight != 1 || obs.inflight != 0 {
				t.Errorf("in flight %d while observed and %d after, want 1 and 0", obs.got[0].inflight, obs.inflight)
			}
			if (obs.got[0].oid != "") != tt.resolved {
				t.Errorf("metrics label %q for a request that resolved=%v", obs.got[0].oid, tt.resolved)
			}
		})
	}
}

func TestAuditRecordShape(t *testing.T) {
	var auditBuf bytes.Buffer
	fwd := ForwarderFunc(func(w http.ResponseWriter, r *http.Request, tn *tenant.Tenant, p string) {
		w.Header().Set("X-Upstream-Request-Id", "up-42")
		w.WriteHeader(http.StatusOK)
	})
	h := New(Config{Tenants: &countingTenants{}, Proxy: fwd, Audit: audit.New(&auditBuf)})
	req := httptest.NewRequest("GET", "/fhir/1.2.3/Patient/1316024?name=peters&birthdate=1957-11-03", nil)
	req.Header.Set("X-Request-Id", "rid-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line map[string]any
	if err := json.Unmarshal(auditBuf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"log": "audit", "caller": "anonymous", "caller_method": "none", "oid": "1.2.3", "method": "GET",
		"resource_type": "Patient", "resource_id": "1316024", "status": float64(200), "upstream_request_id": "up-42", "request_id": "rid-1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("audit %s = %v, want %v (line %s)", k, line[k], v, auditBuf.String())
		}
	}
	if strings.Contains(auditBuf.String(), "peters") || strings.Contains(auditBuf.String(), "1957") {
		t.Errorf("query values in the audit line: %s", auditBuf.String())
	}
}

// abortingBulkForwarder is the proxy on a bulk file download that breaks
// off mid-body (the partner's body ends early, or the caller goes away):
// it notes the download in the request's audit record, then aborts.
type abortingBulkForwarder struct{}

func (abortingBulkForwarder) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	bk := &audit.Bulk{Event: audit.BulkDownload, FileType: "Patient"}
	if rec := audit.FromContext(r.Context()); rec != nil {
		rec.Bulk = bk
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.WriteHeader(http.StatusOK)
	n, _ := io.WriteString(w, `{"resourceType":"Patient"}`+"\n")
	bk.Bytes += int64(n)
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

// A bulk file download cut off mid-body (Forward never returns: it
// aborts the response) is audited as the download it was, with the
// bytes passed on (README: "each download (type, bytes)").
func TestAbortedDownloadIsAudited(t *testing.T) {
	var trail lockedBuffer
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(Config{Tenants: stubTenants{}, Proxy: abortingBulkForwarder{}, Logger: log, Audit: audit.New(&trail)}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/fhir/1.2.3/bulkfile/abc")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Close() // the handler has returned: its audit line is written
	var line map[string]any
	if err := json.Unmarshal([]byte(trail.String()), &line); err != nil {
		t.Fatalf("audit %q: %v", trail.String(), err)
	}
	bulk, _ := line["bulk"].(map[string]any)
	if bulk == nil || bulk["event"] != "download" || bulk["type"] != "Patient" || bulk["bytes"] != float64(27) {
		t.Errorf("audit line of a cut download has bulk %v: %s", line["bulk"], trail.String())
	}
}

// ForwarderFunc adapts a function to Forwarder.
type ForwarderFunc func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, fhirPath string)

func (f ForwarderFunc) Forward(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, p string) {
	f(w, r, t, p)
}

type stubSearcher struct{ got directory.Query }

func (s *stubSearcher) Search(_ context.Context, q directory.Query) (*directory.SearchResult, error) {
	s.got = q
	org := &directory.Organization{OID: "1.2.3", Name: "Example Health", Active: true, Endpoints: []directory.Endpoint{
		{Address: "https://fhir.example.org/r4/", Transaction: "FHIR REST", Version: "4.0.1", FHIRVersion: "R4", Status: "active"}}}
	return &directory.SearchResult{Organizations: []*directory.Organization{org}, Total: 3, Next: "cursor-2"}, nil
}

func TestSearch(t *testing.T) {
	tests := []struct {
		target     string
		wantStatus int
		check      func(*testing.T, directory.Query)
	}{
		{"/directory/Organization?name=Example&active=true&_count=2", 200, func(t *testing.T, q directory.Query) {
			if q.Name != "Example" || q.Active == nil || !*q.Active || q.Count != 2 {
				t.Errorf("query %+v", q)
			}
		}},
		{"/directory/Organization?_id=urn:oid:1.2.3", 200, func(t *testing.T, q directory.Query) {
			if q.ID != "1.2.3" {
				t.Errorf("query %+v", q)
			}
		}},
		{"/directory/Organization?page=cursor-2", 200, func(t *testing.T, q directory.Query) {
			if q.Page != "cursor-2" {
				t.Errorf("query %+v", q)
			}
		}},
		{"/directory/Organization", 400, nil},
		{"/directory/Organization?nmae=x", 400, nil},
		{"/directory/Organization?name=a&name=b", 400, nil},
		{"/directory/Organization?_id=1.2.x", 400, nil},
		{"/directory/Organization?name=x&active=maybe", 400, nil},
		{"/directory/Organization?name=x&_count=100000", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			s := &stubSearcher{}
			h := New(Config{Tenants: &countingTenants{}, Proxy: &recordingForwarder{}, Directory: s})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.target, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if tt.check == nil {
				if !strings.Contains(rec.Body.String(), "OperationOutcome") {
					t.Errorf("no OperationOutcome: %s", rec.Body)
				}
				return
			}
			tt.check(t, s.got)
			var res SearchResult
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Total != 3 || len(res.Organizations) != 1 || res.Organizations[0].FHIRBase != "https://fhir.example.org/r4" ||
				res.Next != "Organization?page=cursor-2" {
				t.Errorf("result %s", rec.Body)
			}
		})
	}
}
