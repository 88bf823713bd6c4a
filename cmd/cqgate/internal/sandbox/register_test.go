package sandbox_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
	"github.com/cqgate/cqgate/keys"
)

// material hands the sandbox's key to an assertion.Signer.
type material struct{ m *keys.Material }

func (m material) Current() *keys.Material { return m.m }

// validStatement is a correct software statement for sb.
func validStatement(sb *sandbox.Sandbox) assertionSpec {
	now := time.Now()
	a := validAssertion(sb)
	a.claims = map[string]any{
		"iss": sb.UDAPIssuer, "sub": sb.UDAPIssuer, "aud": sb.RegisterURL,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": newJTI(),
		"client_name": "test client", "contacts": []string{"mailto:ops@example.org"},
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt",
		"scope": "system/Patient.read",
	}
	return a
}

func postRegistration(t *testing.T, sb *sandbox.Sandbox, statement string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"software_statement": statement, "udap": "1", "certifications": []string{}})
	r := do(t, http.MethodPost, sb.RegisterURL, http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(body))
	var out map[string]any
	r.decode(t, &out)
	return r.status, out
}

// The registration endpoint registers what cqgate's own Registrar sends,
// answers the same client id to a second registration (200), and
// refuses every broken software statement with an RFC 7591 error.
func TestRegistration(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})

	reg := &assertion.Registrar{Signer: &assertion.Signer{Keys: material{sb.Material}}}
	r := assertion.Registration{URL: sb.RegisterURL, Issuer: sb.UDAPIssuer, ClientName: "cqgate test",
		Contacts: []string{"mailto:ops@example.org"}, Scope: "system/*.read"}
	first, err := reg.Register(t.Context(), r)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if first.StatusCode != http.StatusCreated || first.ClientID == "" || first.TokenEndpointAuthMethod != "private_key_jwt" {
		t.Errorf("first registration: %+v", first)
	}
	again, err := reg.Register(t.Context(), r)
	if err != nil || again.StatusCode != http.StatusOK || again.ClientID != first.ClientID {
		t.Errorf("second registration: %+v, %v; want 200 with client id %s", again, err, first.ClientID)
	}

	replayed := validStatement(sb)
	if status, out := postRegistration(t, sb, replayed.sign(t)); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("valid statement: %d %v", status, out)
	}
	other := otherMaterial(t, sb.ClientID)
	tests := []struct {
		name     string
		change   func(a *assertionSpec)
		wantCode string
	}{
		{"replayed jti", func(a *assertionSpec) { *a = replayed }, "invalid_software_statement"},
		{"untrusted certificate", func(a *assertionSpec) { a.key, a.x5c = other.Signer, x5cOf(other.Chain) }, "unapproved_software_statement"},
		{"no x5c", func(a *assertionSpec) { a.x5c = nil }, "invalid_software_statement"},
		{"signed by another key", func(a *assertionSpec) { a.key = other.Signer }, "invalid_software_statement"},
		{"iss not a URI SAN", func(a *assertionSpec) {
			a.claims["iss"], a.claims["sub"] = "https://elsewhere.example", "https://elsewhere.example"
		}, "invalid_software_statement"},
		{"sub differs", func(a *assertionSpec) { a.claims["sub"] = "someone" }, "invalid_software_statement"},
		{"aud is the token URL", func(a *assertionSpec) { a.claims["aud"] = sb.TokenURL }, "invalid_software_statement"},
		{"expired", func(a *assertionSpec) { a.claims["exp"] = time.Now().Add(-time.Minute).Unix() }, "invalid_software_statement"},
		{"lives too long", func(a *assertionSpec) { a.claims["exp"] = time.Now().Add(time.Hour).Unix() }, "invalid_software_statement"},
		{"authorization_code", func(a *assertionSpec) { a.claims["grant_types"] = []string{"authorization_code"} }, "invalid_client_metadata"},
		{"client_secret", func(a *assertionSpec) { a.claims["token_endpoint_auth_method"] = "client_secret_basic" }, "invalid_client_metadata"},
		{"no mailto contact", func(a *assertionSpec) { a.claims["contacts"] = []string{"https://example.org"} }, "invalid_client_metadata"},
		{"no scope", func(a *assertionSpec) { delete(a.claims, "scope") }, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		a := validStatement(sb)
		tt.change(&a)
		status, out := postRegistration(t, sb, a.sign(t))
		if status != http.StatusBadRequest || out["error"] != tt.wantCode || out["error_description"] == "" {
			t.Errorf("%s: %d %v, want 400 %s", tt.name, status, out, tt.wantCode)
		}
	}

	body := []byte(`{"software_statement":"x"}`)
	if r := do(t, http.MethodPost, sb.RegisterURL, nil, bytes.NewReader(body)); r.status != http.StatusBadRequest {
		t.Errorf("without udap=1: %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodGet, sb.RegisterURL, nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
}

// The directory answers searches with a searchset Bundle, behind its API
// key, paging with _count.
func TestDirectorySearch(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	key := http.Header{"Authorization": {"api-key " + sb.APIKey}, "Accept": {"application/fhir+json"}}
	type bundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Total        int    `json:"total"`
		Link         []struct{ Relation, URL string }
		Entry        []struct {
			Resource struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"resource"`
		} `json:"entry"`
	}
	tests := []struct {
		query string
		total int
		page  int
	}{
		{"name=cqgate", 1, 1},
		{"name=CQGATE%20Sand", 1, 1},
		{"name=Sandbox", 0, 0}, // FHIR string search matches the start
		{"_id=urn:oid:" + sandbox.OID, 1, 1},
		{"_id=2.999.9", 0, 0},
		{"name=cqgate&active=false", 0, 0},
		{"name=cqgate&_count=1&_getpagesoffset=1", 1, 0},
	}
	for _, tt := range tests {
		r := do(t, http.MethodGet, sb.DirectoryURL+"/Organization?"+tt.query, key, nil)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", tt.query, r.status, r.body)
			continue
		}
		var b bundle
		r.decode(t, &b)
		if b.ResourceType != "Bundle" || b.Type != "searchset" || b.Total != tt.total || len(b.Entry) != tt.page {
			t.Errorf("%s: %s", tt.query, r.body)
		}
		for _, e := range b.Entry {
			if e.Resource.ID != sandbox.OID {
				t.Errorf("%s: entry %s", tt.query, e.Resource.ID)
			}
		}
		if bytes.Contains(r.body, []byte(sb.APIKey)) {
			t.Errorf("%s: the API key is in the Bundle's links", tt.query)
		}
	}
	if r := do(t, http.MethodGet, sb.DirectoryURL+"/Organization?name=cqgate", http.Header{"Accept": {"application/fhir+json"}}, nil); r.status != http.StatusUnauthorized {
		t.Errorf("without the API key: %d", r.status)
	}
	wantOutcome(t, do(t, http.MethodGet, sb.DirectoryURL+"/Organization?_count=0", key, nil), http.StatusBadRequest)
}
