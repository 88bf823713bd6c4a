package sandbox

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestAcceptsJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept   string // "-" for no Accept header
		query    string
		lenient  bool
		explicit bool
	}{
		{"-", "", true, false},
		{"*/*", "", true, false},
		{"application/*", "", true, false},
		{"application/fhir+json", "", true, true},
		{"application/json", "", true, true},
		{"application/json+fhir", "", true, true},
		{"APPLICATION/FHIR+JSON", "", true, true},
		{"application/fhir+json;q=0", "", false, false},
		{"application/fhir+json;q=0.5", "", true, true},
		{"application/fhir+xml", "", false, false},
		{"text/html, application/xml;q=0.9", "", false, false},
		{"-", "_format=json", true, true},
		{"-", "_format=application/fhir%2Bjson", true, true},
		{"application/fhir+json", "_format=xml", false, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/x?"+tt.query, nil)
		if tt.accept != "-" {
			r.Header.Set("Accept", tt.accept)
		}
		if got := acceptsJSON(r, lenient); got != tt.lenient {
			t.Errorf("Accept %q, %q: lenient = %v, want %v", tt.accept, tt.query, got, tt.lenient)
		}
		if got := acceptsJSON(r, explicit); got != tt.explicit {
			t.Errorf("Accept %q, %q: explicit = %v, want %v", tt.accept, tt.query, got, tt.explicit)
		}
	}
}

func TestEmbeddedDataset(t *testing.T) {
	t.Parallel()
	ds, err := loadDataset()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.patients) != 3 || len(ds.observations) != 7 {
		t.Errorf("%d patients and %d observations, want 3 and 7", len(ds.patients), len(ds.observations))
	}
}

func TestParseDatasetErrors(t *testing.T) {
	t.Parallel()
	const (
		patient = `{"resourceType":"Patient","id":"1","name":[{"family":"Doe"}]}`
		obs     = `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/%s"}}`
	)
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"misnamed file", map[string]string{"Patient-2.json": patient}, "should be named Patient-1.json"},
		{"dangling subject", map[string]string{"Patient-1.json": patient, "Observation-o1.json": strings.Replace(obs, "%s", "9", 1)}, "not in the data set"},
		{"subject not a patient", map[string]string{"Patient-1.json": patient, "Observation-o1.json": strings.Replace(obs, "Patient/%s", "Group/1", 1)}, "not a Patient reference"},
		{"no id", map[string]string{"Patient-.json": `{"resourceType":"Patient"}`}, "no id"},
		{"nameless patient", map[string]string{"Patient-1.json": `{"resourceType":"Patient","id":"1"}`}, "no name"},
		{"unsupported type", map[string]string{"Encounter-1.json": `{"resourceType":"Encounter","id":"1"}`}, "unsupported resourceType"},
		{"invalid JSON", map[string]string{"Patient-1.json": `{"resourceType":`}, "unexpected end"},
		{"no patients", map[string]string{}, "no Patient"},
	}
	for _, tt := range tests {
		fsys := fstest.MapFS{"data": &fstest.MapFile{Mode: fs.ModeDir | 0o755}}
		for name, content := range tt.files {
			fsys["data/"+name] = &fstest.MapFile{Data: []byte(content)}
		}
		_, err := parseDataset(fsys, "data")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestStateReplayAndExpiry(t *testing.T) {
	t.Parallel()
	st := newState()
	now := time.Now()
	exp := now.Add(time.Minute)
	if !st.useJTI("jti-0123456789abcdef", exp, now) {
		t.Fatal("first use refused")
	}
	if st.useJTI("jti-0123456789abcdef", exp, now.Add(time.Second)) {
		t.Fatal("replay accepted")
	}
	// After exp the assertion is dead anyway and its jti is forgotten.
	later := exp.Add(sweepInterval)
	if !st.useJTI("jti-0123456789abcdef", later.Add(time.Minute), later) {
		t.Error("jti of an expired assertion still blocked")
	}

	st.issue("tok", issuedToken{scope: "s", expires: now.Add(time.Minute)}, now)
	if _, ok := st.lookup("tok", now); !ok {
		t.Error("fresh token not found")
	}
	if _, ok := st.lookup("tok", now.Add(time.Minute)); ok {
		t.Error("expired token accepted")
	}
	st.issue("other", issuedToken{expires: later.Add(time.Hour)}, later.Add(2*sweepInterval))
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.tokens["tok"]; ok {
		t.Error("expired token not swept")
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:0":    true,
		"127.0.0.2:8080": true,
		"[::1]:0":        true,
		"localhost:0":    true,
		"0.0.0.0:0":      false,
		":0":             false,
		"[::]:0":         false,
		"10.0.0.1:0":     false,
		"example.com:0":  false,
		"127.0.0.1":      false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
