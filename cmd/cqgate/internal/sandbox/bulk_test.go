package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
)

// bulkManifest is the completion manifest as the tests read it.
type bulkManifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken *bool  `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []struct{} `json:"error"`
}

// noRedirect sends a request without following redirects.
func noRedirect(t *testing.T, method, target string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// bulkHeader is what a bulk client sends for a kick-off.
func bulkHeader(token string) http.Header {
	h := fhirHeader(token)
	h.Set("Prefer", "respond-async")
	return h
}

// kickOff starts an export and returns its status URL.
func kickOff(t *testing.T, sb *sandbox.Sandbox, method, target string, header http.Header, body string) string {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := do(t, method, target, header, rd)
	if r.status != http.StatusAccepted {
		t.Fatalf("%s %s: status %d, want 202: %s", method, target, r.status, r.body)
	}
	loc := r.header.Get("Content-Location")
	if !strings.HasPrefix(loc, sb.FHIRBase+"/") {
		t.Fatalf("Content-Location %q is not an absolute URL on the sandbox base", loc)
	}
	return loc
}

// poll polls the status URL until the manifest, at most a few times.
func poll(t *testing.T, status, token string) (bulkManifest, int) {
	t.Helper()
	for i := 0; i < 5; i++ {
		r := do(t, http.MethodGet, status, fhirHeader(token), nil)
		switch r.status {
		case http.StatusAccepted:
			if r.header.Get("X-Progress") == "" || r.header.Get("Retry-After") == "" {
				t.Errorf("202 without X-Progress or Retry-After: %v", r.header)
			}
			continue
		case http.StatusOK:
			var m bulkManifest
			r.decode(t, &m)
			return m, i
		default:
			t.Fatalf("poll: status %d: %s", r.status, r.body)
		}
	}
	t.Fatal("export did not complete")
	return bulkManifest{}, 0
}

func TestBulkExport(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	postHeader := bulkHeader(token)
	postHeader.Set("Content-Type", "application/fhir+json")
	tests := []struct {
		name, method, path, body string
		types                    []string
	}{
		{"system GET", http.MethodGet, "/$export", "", []string{"Patient", "Observation"}},
		{"Patient GET with _type", http.MethodGet, "/Patient/$export?_type=Patient&_outputFormat=application%2Ffhir%2Bndjson", "", []string{"Patient"}},
		{"Group GET", http.MethodGet, "/Group/" + sandbox.GroupID + "/$export?_since=2020-01-01T00:00:00Z", "", []string{"Patient", "Observation"}},
		{"system POST Parameters", http.MethodPost, "/$export",
			`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},{"name":"_outputFormat","valueString":"application/fhir+ndjson"}]}`,
			[]string{"Observation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := bulkHeader(token)
			if tt.method == http.MethodPost {
				h = postHeader
			}
			status := kickOff(t, sb, tt.method, sb.FHIRBase+tt.path, h, tt.body)
			m, polls := poll(t, status, token)
			if polls != 1 {
				t.Errorf("manifest after %d polls answered 202, want 1", polls)
			}
			if m.TransactionTime == "" || m.Request != sb.FHIRBase+tt.path || m.RequiresAccessToken == nil || !*m.RequiresAccessToken || m.Error == nil {
				t.Errorf("manifest %+v", m)
			}
			var types []string
			for _, o := range m.Output {
				types = append(types, o.Type)
				if !strings.HasPrefix(o.URL, sb.FHIRBase+"/") || o.Count == 0 {
					t.Errorf("output %+v", o)
				}
			}
			if strings.Join(types, ",") != strings.Join(tt.types, ",") {
				t.Errorf("output types %v, want %v", types, tt.types)
			}
		})
	}
}

func TestBulkDownloads(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	status := kickOff(t, sb, http.MethodGet, sb.FHIRBase+"/$export", bulkHeader(token), "")
	files := map[string]string{}
	// Files are not there before the export completed.
	m, _ := poll(t, status, token)
	for _, o := range m.Output {
		files[o.Type] = o.URL
	}

	// Patient: served here, with Range.
	r := do(t, http.MethodGet, files["Patient"], http.Header{"Authorization": {"Bearer " + token}}, nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/fhir+ndjson" {
		t.Fatalf("Patient file: status %d, %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	lines := bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n"))
	if len(lines) != len(sb.PatientIDs) {
		t.Errorf("%d lines, want %d", len(lines), len(sb.PatientIDs))
	}
	for _, l := range lines {
		var h resourceHead
		if err := jsonUnmarshal(l, &h); err != nil || h.ResourceType != "Patient" {
			t.Errorf("line %s: %v", l, err)
		}
	}
	part := do(t, http.MethodGet, files["Patient"], http.Header{"Authorization": {"Bearer " + token}, "Range": {"bytes=10-"}}, nil)
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, r.body[10:]) {
		t.Errorf("Range: status %d, %d bytes, want 206 and %d", part.status, len(part.body), len(r.body)-10)
	}
	if r := do(t, http.MethodGet, files["Patient"], nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("file without a token: status %d", r.status)
	}

	// Observation: a 307 to the storage origin, which refuses the token.
	r = noRedirect(t, http.MethodGet, files["Observation"], http.Header{"Authorization": {"Bearer " + token}})
	loc := r.header.Get("Location")
	if r.status != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, sb.StorageURL+"/") {
		t.Fatalf("Observation file: status %d, Location %q", r.status, loc)
	}
	if r := noRedirect(t, http.MethodGet, loc, http.Header{"Authorization": {"Bearer " + token}}); r.status != http.StatusBadRequest {
		t.Errorf("storage with Authorization: status %d", r.status)
	}
	if n := sb.StorageAuthRejects(); n != 1 {
		t.Errorf("StorageAuthRejects = %d, want 1", n)
	}
	obs := noRedirect(t, http.MethodGet, loc, nil)
	if obs.status != http.StatusOK || bytes.Count(obs.body, []byte("\n")) != 7 || obs.header.Get("Content-Type") != "application/fhir+ndjson" {
		t.Errorf("storage: status %d, %q", obs.status, obs.body)
	}
	if r := noRedirect(t, http.MethodGet, loc+"x", nil); r.status != http.StatusForbidden {
		t.Errorf("storage with a wrong signature: status %d", r.status)
	}
	if r := noRedirect(t, http.MethodGet, loc, http.Header{"Range": {"bytes=0-9"}}); r.status != http.StatusPartialContent || len(r.body) != 10 {
		t.Errorf("storage Range: status %d, %d bytes", r.status, len(r.body))
	}

	// Cancelling forgets the export and its files.
	if r := do(t, http.MethodDelete, status, fhirHeader(token), nil); r.status != http.StatusAccepted {
		t.Errorf("DELETE: status %d", r.status)
	}
	wantOutcome(t, do(t, http.MethodGet, status, fhirHeader(token), nil), http.StatusNotFound)
	wantOutcome(t, do(t, http.MethodDelete, status, fhirHeader(token), nil), http.StatusNotFound)
	wantOutcome(t, do(t, http.MethodGet, files["Patient"], fhirHeader(token), nil), http.StatusNotFound)
	if r := noRedirect(t, http.MethodGet, loc, nil); r.status != http.StatusForbidden {
		t.Errorf("storage after cancel: status %d", r.status)
	}
}

func TestBulkNotReadyAndPolls(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{ExportPolls: 2})
	token := accessToken(t, sb)
	status := kickOff(t, sb, http.MethodGet, sb.FHIRBase+"/$export", bulkHeader(token), "")
	fileURL := sb.FHIRBase + "/bulkfiles/" + status[strings.LastIndex(status, "/")+1:] + "/Patient.ndjson"
	wantOutcome(t, do(t, http.MethodGet, fileURL, fhirHeader(token), nil), http.StatusNotFound)
	if _, polls := poll(t, status, token); polls != 2 {
		t.Errorf("%d polls answered 202, want 2", polls)
	}
	if r := do(t, http.MethodGet, status, nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("status without a token: %d", r.status)
	}

	now := startSandbox(t, sandbox.Options{ExportPolls: -1})
	tok := accessToken(t, now)
	if _, polls := poll(t, kickOff(t, now, http.MethodGet, now.FHIRBase+"/$export", bulkHeader(tok), ""), tok); polls != 0 {
		t.Errorf("ExportPolls -1: %d polls answered 202", polls)
	}
}

func TestBulkAdvertised(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	r := do(t, http.MethodGet, sb.FHIRBase+"/metadata", http.Header{"Accept": {"application/fhir+json"}}, nil)
	var cs struct {
		Rest []struct {
			Operation []struct{ Name, Definition string } `json:"operation"`
		} `json:"rest"`
	}
	r.decode(t, &cs)
	if len(cs.Rest) != 1 || len(cs.Rest[0].Operation) != 1 || cs.Rest[0].Operation[0].Name != "export" ||
		cs.Rest[0].Operation[0].Definition != "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" {
		t.Errorf("CapabilityStatement operations: %+v", cs.Rest)
	}
}

func TestBulkRefusals(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	noPrefer := fhirHeader(token)
	post := bulkHeader(token)
	post.Set("Content-Type", "application/fhir+json")
	tests := []struct {
		name, method, path string
		header             http.Header
		body               string
		status             int
	}{
		{"no token", http.MethodGet, "/$export", http.Header{"Accept": {"application/fhir+json"}, "Prefer": {"respond-async"}}, "", http.StatusUnauthorized},
		{"no Prefer", http.MethodGet, "/$export", noPrefer, "", http.StatusBadRequest},
		{"no Accept", http.MethodGet, "/$export", http.Header{"Authorization": {"Bearer " + token}, "Prefer": {"respond-async"}}, "", http.StatusNotAcceptable},
		{"unknown type", http.MethodGet, "/$export?_type=Encounter", bulkHeader(token), "", http.StatusBadRequest},
		{"unknown format", http.MethodGet, "/$export?_outputFormat=text/csv", bulkHeader(token), "", http.StatusBadRequest},
		{"bad _since", http.MethodGet, "/$export?_since=yesterday", bulkHeader(token), "", http.StatusBadRequest},
		{"unknown group", http.MethodGet, "/Group/nope/$export", bulkHeader(token), "", http.StatusNotFound},
		{"POST not Parameters", http.MethodPost, "/$export", post, `{"resourceType":"Patient"}`, http.StatusBadRequest},
		{"POST form", http.MethodPost, "/$export", bulkHeader(token), `_type=Patient`, http.StatusBadRequest},
		{"PUT", http.MethodPut, "/$export", bulkHeader(token), "", http.StatusMethodNotAllowed},
		{"status of nothing", http.MethodGet, "/bulkstatus/nope", fhirHeader(token), "", http.StatusNotFound},
		{"PUT status", http.MethodPut, "/bulkstatus/nope", fhirHeader(token), "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			wantOutcome(t, do(t, tt.method, sb.FHIRBase+tt.path, tt.header, body), tt.status)
		})
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
