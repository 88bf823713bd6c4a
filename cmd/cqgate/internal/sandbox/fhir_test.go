package sandbox_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
)

// searchBundle is the part of a searchset Bundle the tests read.
type searchBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// resourceHead is the type and id of a resource.
type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

func TestFHIRRead(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	tests := []struct {
		path   string
		status int
		typ    string
	}{
		{"/Patient/1316024", http.StatusOK, "Patient"},
		{"/Patient/12724066", http.StatusOK, "Patient"},
		{"/Patient/12742400", http.StatusOK, "Patient"},
		{"/Observation/L-197301877", http.StatusOK, "Observation"},
		{"/Observation/M-197204410", http.StatusOK, "Observation"},
		{"/Patient/999999", http.StatusNotFound, ""},
		{"/Observation/1316024", http.StatusNotFound, ""},
		{"/Encounter/1", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			r := do(t, http.MethodGet, sb.FHIRBase+tt.path, fhirHeader(token), nil)
			if tt.status != http.StatusOK {
				wantOutcome(t, r, tt.status)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var h resourceHead
			r.decode(t, &h)
			wantID := tt.path[strings.LastIndex(tt.path, "/")+1:]
			if h.ResourceType != tt.typ || h.ID != wantID {
				t.Errorf("got %s/%s, want %s/%s", h.ResourceType, h.ID, tt.typ, wantID)
			}
		})
	}
}

func TestFHIRSearch(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	tests := []struct {
		query    string
		wantIDs  []string
		wantSelf string // query of the self link
	}{
		{"Patient?name=peters", []string{"1316024"}, "name=peters"},
		{"Patient?name=PETERS", []string{"1316024"}, "name=PETERS"},
		{"Patient?name=tim", []string{"1316024"}, "name=tim"},
		{"Patient?name=smart", []string{"12724066"}, "name=smart"},
		{"Patient?name=an", []string{"12724066", "12742400"}, "name=an"},
		{"Patient?name=peters,ramirez", []string{"12742400", "1316024"}, "name=peters%2Cramirez"},
		{"Patient?name=nobody", nil, "name=nobody"},
		{"Patient?_id=12742400", []string{"12742400"}, "_id=12742400"},
		{"Patient?_id=12742400&name=peters", nil, "_id=12742400&name=peters"},
		{"Patient?name=peters&_count=10", []string{"1316024"}, "_count=10&name=peters"},
		{"Observation?patient=1316024", []string{"L-197301877", "L-197301878", "L-197301879", "L-197301880"}, "patient=1316024"},
		{"Observation?patient=Patient/12724066", []string{"M-197198653", "M-197198654"}, "patient=Patient%2F12724066"},
		{"Observation?subject=Patient/1316024", []string{"L-197301877", "L-197301878", "L-197301879", "L-197301880"}, "subject=Patient%2F1316024"},
		{"Observation?patient=12742400", []string{"M-197204410"}, "patient=12742400"},
		{"Observation?patient=999999", nil, "patient=999999"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			r := do(t, http.MethodGet, sb.FHIRBase+"/"+tt.query, fhirHeader(token), nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var b searchBundle
			r.decode(t, &b)
			if b.ResourceType != "Bundle" || b.Type != "searchset" || b.Total != len(tt.wantIDs) {
				t.Errorf("Bundle %s/%s total %d, want searchset with %d", b.ResourceType, b.Type, b.Total, len(tt.wantIDs))
			}
			typ, _, _ := strings.Cut(tt.query, "?")
			wantSelf := sb.FHIRBase + "/" + typ + "?" + tt.wantSelf
			if len(b.Link) == 0 || b.Link[0].Relation != "self" || b.Link[0].URL != wantSelf {
				t.Errorf("link = %+v, want self %s", b.Link, wantSelf)
			}
			for _, l := range b.Link[1:] {
				if l.Relation != "first" || !strings.Contains(tt.query, "_count") {
					t.Errorf("one page only, but link %+v", l)
				}
			}
			var ids []string
			for _, e := range b.Entry {
				var h resourceHead
				if err := json.Unmarshal(e.Resource, &h); err != nil {
					t.Fatal(err)
				}
				if h.ResourceType != typ || e.FullURL != sb.FHIRBase+"/"+typ+"/"+h.ID || e.Search.Mode != "match" {
					t.Errorf("entry fullUrl %q, %s/%s, mode %q", e.FullURL, h.ResourceType, h.ID, e.Search.Mode)
				}
				ids = append(ids, h.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("ids %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestFHIRRefusals(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	patient := sb.FHIRBase + "/Patient/1316024"
	tests := []struct {
		name      string
		method    string
		url       string
		header    http.Header
		status    int
		issueCode string
	}{
		{"no token", http.MethodGet, patient, http.Header{"Accept": {"application/fhir+json"}}, http.StatusUnauthorized, "login"},
		{"unknown token", http.MethodGet, patient, fhirHeader("bm90LWEtdG9rZW4"), http.StatusUnauthorized, "login"},
		{"basic auth", http.MethodGet, patient, http.Header{"Accept": {"application/fhir+json"}, "Authorization": {"Basic " + token}}, http.StatusUnauthorized, "login"},
		{"no Accept", http.MethodGet, patient, http.Header{"Authorization": {"Bearer " + token}}, http.StatusNotAcceptable, "not-supported"},
		{"Accept */*", http.MethodGet, patient, http.Header{"Accept": {"*/*"}, "Authorization": {"Bearer " + token}}, http.StatusNotAcceptable, "not-supported"},
		{"Accept XML", http.MethodGet, patient, http.Header{"Accept": {"application/fhir+xml"}, "Authorization": {"Bearer " + token}}, http.StatusNotAcceptable, "not-supported"},
		{"Accept JSON with q=0", http.MethodGet, patient, http.Header{"Accept": {"application/fhir+json;q=0, */*"}, "Authorization": {"Bearer " + token}}, http.StatusNotAcceptable, "not-supported"},
		{"_format=xml", http.MethodGet, patient + "?_format=xml", fhirHeader(token), http.StatusNotAcceptable, "not-supported"},
		{"POST", http.MethodPost, sb.FHIRBase + "/Patient", fhirHeader(token), http.StatusMethodNotAllowed, "not-supported"},
		{"DELETE", http.MethodDelete, patient, fhirHeader(token), http.StatusMethodNotAllowed, "not-supported"},
		{"search without parameters", http.MethodGet, sb.FHIRBase + "/Patient", fhirHeader(token), http.StatusBadRequest, "required"},
		{"search with empty name", http.MethodGet, sb.FHIRBase + "/Patient?name=", fhirHeader(token), http.StatusBadRequest, "invalid"},
		{"Observation search without patient", http.MethodGet, sb.FHIRBase + "/Observation?code=8867-4", fhirHeader(token), http.StatusBadRequest, "required"},
		{"other tenant", http.MethodGet, sb.URL + "/fhir/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/Patient/1316024", fhirHeader(token), http.StatusNotFound, "not-found"},
		{"unknown path", http.MethodGet, sb.URL + "/nope", nil, http.StatusNotFound, "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, tt.method, tt.url, tt.header, nil)
			oo := wantOutcome(t, r, tt.status)
			if oo.Issue[0].Code != tt.issueCode {
				t.Errorf("issue code %q, want %q", oo.Issue[0].Code, tt.issueCode)
			}
			if tt.status == http.StatusUnauthorized {
				wa := r.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(wa, `Bearer realm="sandbox", error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q", wa)
				}
			}
		})
	}
}

func TestFHIRAcceptVariants(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	patient := sb.FHIRBase + "/Patient/1316024"
	for name, h := range map[string]http.Header{
		"application/json":        {"Accept": {"application/json"}, "Authorization": {"Bearer " + token}},
		"with charset":            {"Accept": {"application/fhir+json; charset=utf-8"}, "Authorization": {"Bearer " + token}},
		"one of several":          {"Accept": {"text/html, application/fhir+json;q=0.9, */*;q=0.1"}, "Authorization": {"Bearer " + token}},
		"bearer in lower case":    {"Accept": {"application/fhir+json"}, "Authorization": {"bearer " + token}},
		"_format=json, no Accept": {"Authorization": {"Bearer " + token}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			target := patient
			if strings.HasPrefix(name, "_format") {
				target += "?_format=json"
			}
			if r := do(t, http.MethodGet, target, h, nil); r.status != http.StatusOK {
				t.Errorf("status %d: %s", r.status, r.body)
			}
		})
	}
}

func TestFHIRTokenExpires(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{TokenLifetime: time.Second})
	token := accessToken(t, sb)
	patient := sb.FHIRBase + "/Patient/1316024"
	if r := do(t, http.MethodGet, patient, fhirHeader(token), nil); r.status != http.StatusOK {
		t.Fatalf("fresh token: status %d", r.status)
	}
	time.Sleep(1100 * time.Millisecond)
	r := do(t, http.MethodGet, patient, fhirHeader(token), nil)
	wantOutcome(t, r, http.StatusUnauthorized)
}

func TestFHIRTokenIsPerSandbox(t *testing.T) {
	t.Parallel()
	a := startSandbox(t, sandbox.Options{})
	b := startSandbox(t, sandbox.Options{})
	r := do(t, http.MethodGet, b.FHIRBase+"/Patient/1316024", fhirHeader(accessToken(t, a)), nil)
	wantOutcome(t, r, http.StatusUnauthorized)
}

// TestFHIRSearchPaging follows next links (absolute URLs on the sandbox
// base) through every page and back with previous.
func TestFHIRSearchPaging(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	token := accessToken(t, sb)
	links := func(b searchBundle) map[string]string {
		m := map[string]string{}
		for _, l := range b.Link {
			m[l.Relation] = l.URL
		}
		return m
	}
	get := func(target string) searchBundle {
		t.Helper()
		if !strings.HasPrefix(target, sb.FHIRBase+"/") {
			t.Fatalf("link %q is not on the sandbox base", target)
		}
		r := do(t, http.MethodGet, target, fhirHeader(token), nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", target, r.status, r.body)
		}
		var b searchBundle
		r.decode(t, &b)
		return b
	}
	// Three patients with "a" or "e" in a name: 12724066, 12742400, 1316024.
	target := sb.FHIRBase + "/Patient?name=a,e&_count=2"
	var ids []string
	var pages []searchBundle
	for target != "" && len(pages) < 5 {
		b := get(target)
		if b.Total != 3 {
			t.Errorf("total %d, want 3 on every page", b.Total)
		}
		for _, e := range b.Entry {
			ids = append(ids, e.FullURL[strings.LastIndex(e.FullURL, "/")+1:])
		}
		pages = append(pages, b)
		target = links(b)["next"]
	}
	if len(pages) != 2 || len(pages[0].Entry) != 2 || len(pages[1].Entry) != 1 {
		t.Fatalf("%d pages: %+v", len(pages), pages)
	}
	slices.Sort(ids)
	if want := []string{"12724066", "12742400", "1316024"}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	first, second := links(pages[0]), links(pages[1])
	if _, ok := first["previous"]; ok {
		t.Errorf("first page has a previous link: %v", first)
	}
	if second["previous"] != first["self"] || second["first"] != first["self"] {
		t.Errorf("second page previous %q, first %q; first page self %q", second["previous"], second["first"], first["self"])
	}
	if back := get(second["previous"]); len(back.Entry) != 2 || back.Entry[0].FullURL != pages[0].Entry[0].FullURL {
		t.Errorf("previous page differs: %+v", back.Entry)
	}

	obs := get(sb.FHIRBase + "/Observation?patient=1316024&_count=1")
	if len(obs.Entry) != 1 || obs.Total != 4 || links(obs)["next"] == "" {
		t.Errorf("Observation page: %d entries, total %d, links %v", len(obs.Entry), obs.Total, links(obs))
	}
	if zero := get(sb.FHIRBase + "/Observation?patient=1316024&_count=0"); len(zero.Entry) != 0 || zero.Total != 4 || links(zero)["next"] != "" {
		t.Errorf("_count=0: %d entries, total %d, links %v", len(zero.Entry), zero.Total, links(zero))
	}
	for _, bad := range []string{"_count=-1", "_count=x", "_offset=-2"} {
		r := do(t, http.MethodGet, sb.FHIRBase+"/Observation?patient=1316024&"+bad, fhirHeader(token), nil)
		wantOutcome(t, r, http.StatusBadRequest)
	}
}
