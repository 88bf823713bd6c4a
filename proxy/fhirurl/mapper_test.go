package fhirurl

import "testing"

const (
	partner = "https://fhir.partner.example/r4/tenant-guid"
	public  = "https://cqgate.internal/fhir/2.16.840.1"
)

func newMapper(t testing.TB) *Mapper {
	t.Helper()
	m, err := NewMapper(partner, public)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMap(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{partner + "/Patient/1", public + "/Patient/1", true},
		{partner, public, true},
		{partner + "/", public + "/", true},
		{partner + "?_getpages=abc&_count=2", public + "?_getpages=abc&_count=2", true},
		{partner + "#frag", public + "#frag", true},
		{partner + "/Observation?patient=1&_count=2#x", public + "/Observation?patient=1&_count=2#x", true},
		{"HTTPS://FHIR.Partner.Example/r4/tenant-guid/Patient/1", public + "/Patient/1", true},
		{"https://fhir.partner.example:443/r4/tenant-guid/Patient/1", public + "/Patient/1", true},
		{"https://fhir.partner.example:/r4/tenant-guid/Patient/1", public + "/Patient/1", true},
		// the path is case-sensitive and must end on a segment boundary
		{"https://fhir.partner.example/R4/tenant-guid/Patient/1", "", false},
		{partner + "2/Patient/1", "", false},
		{partner + "-x", "", false},
		// other origins
		{"http://fhir.partner.example/r4/tenant-guid/Patient/1", "", false},
		{"https://fhir.partner.example:8443/r4/tenant-guid/Patient/1", "", false},
		{"https://evil.example/r4/tenant-guid/Patient/1", "", false},
		{"https://fhir.partner.example.evil.example/r4/tenant-guid", "", false},
		{"https://user@fhir.partner.example/r4/tenant-guid/Patient/1", "", false},
		{"https://evil.example\\@fhir.partner.example/r4/tenant-guid", "", false},
		{"https://fhir.partner.example:abc/r4/tenant-guid", "", false},
		// not absolute URLs
		{"Patient/1", "", false},
		{"/r4/tenant-guid/Patient/1", "", false},
		{"//fhir.partner.example/r4/tenant-guid/Patient/1", "", false},
		{" " + partner, "", false},
		{"", "", false},
		{"https://", "", false},
		{"urn:uuid:0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca", "", false},
	}
	for _, tt := range tests {
		got, ok := m.Map(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Map(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if m.Matches(tt.in) != tt.ok {
			t.Errorf("Matches(%q) = %v", tt.in, !tt.ok)
		}
	}
}

func TestMapPorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, in string
		ok       bool
	}{
		{"http://127.0.0.1:8080/fhir", "http://127.0.0.1:8080/fhir/Patient/1", true},
		{"http://127.0.0.1:8080/fhir", "http://127.0.0.1/fhir/Patient/1", false},
		{"http://h.example:80/fhir", "http://h.example/fhir/Patient/1", true},
		{"http://h.example/fhir", "http://h.example:80/fhir/Patient/1", true},
		{"http://h.example/fhir", "http://h.example:080/fhir/Patient/1", true},
		{"http://[::1]:9000/", "http://[::1]:9000/Patient/1", true},
		{"http://[::1]:9000/", "http://[::1]/Patient/1", false},
		{"https://h.example", "https://h.example/Patient/1", true},
		{"https://h.example", "https://h.example", true},
		{"https://h.example", "https://h.examplex/Patient", false},
	}
	for _, tt := range tests {
		m, err := NewMapper(tt.base, public)
		if err != nil {
			t.Fatalf("NewMapper(%q): %v", tt.base, err)
		}
		if _, ok := m.Map(tt.in); ok != tt.ok {
			t.Errorf("base %q: Map(%q) ok = %v, want %v", tt.base, tt.in, ok, tt.ok)
		}
	}
}

func TestNewMapperRefuses(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"", "fhir.partner.example/r4", "ftp://h.example/r4", "https:///r4", "https://u:p@h.example/r4",
		"https://h.example/r4?x=1", "https://h.example/r4#f", "mailto:a@b", "https://h.example:x/r4", "%zz",
	} {
		if _, err := NewMapper(bad, public); err == nil {
			t.Errorf("NewMapper(%q, public): no error", bad)
		}
		if _, err := NewMapper(partner, bad); err == nil {
			t.Errorf("NewMapper(partner, %q): no error", bad)
		}
	}
}

func TestMapHeader(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{partner + "/Patient/1/_history/2", public + "/Patient/1/_history/2", true},
		{"/r4/tenant-guid/Patient/1/_history/2", public + "/Patient/1/_history/2", true},
		{"/r4/tenant-guid", public, true},
		{"/r4/tenant-guid?x", public + "?x", true},
		{"/r4/tenant-guid2/Patient/1", "", false},
		{"/other/Patient/1", "", false},
		{"//evil.example/r4/tenant-guid/Patient/1", "", false},
		{"Patient/1/_history/2", "", false},
		{"https://evil.example/r4/tenant-guid/Patient/1", "", false},
	}
	for _, tt := range tests {
		got, ok := m.MapHeader(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("MapHeader(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if got, want := m.PartnerBase(), partner; got != want {
		t.Errorf("PartnerBase %q", got)
	}
	if got := m.PublicBase(); got != public {
		t.Errorf("PublicBase %q", got)
	}
}
