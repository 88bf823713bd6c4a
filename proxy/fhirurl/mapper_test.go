package fhirurl

import (
	"strings"
	"testing"
	"unsafe"
)

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
		// A network-path reference to the partner: the caller would
		// resolve it to the partner's host.
		{"//fhir.partner.example/r4/tenant-guid/Patient/1/_history/2", public + "/Patient/1/_history/2", true},
		{"//FHIR.Partner.Example:443/r4/tenant-guid", public, true},
		{"//fhir.partner.example/r4/tenant-guid/../other", "", false},
		// An absolute path that climbs out of the base.
		{"/r4/tenant-guid/../../other/Patient/1", "", false},
		{"/r4/tenant-guid/%2e%2e/x", "", false},
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

// TestRewriterStringsShareOneArray checks that a Rewriter keeps its
// Mapper by value and every string of it in one backing array (one
// pointer-holding object per organization, not one per string), none of
// them part of the arguments it was made from.
func TestRewriterStringsShareOneArray(t *testing.T) {
	for _, tt := range []struct{ partner, public string }{
		{"https://fhir.partner.example/r4/tenant-guid", "https://cqgate.internal/fhir/2.16.840.1"},
		{"HTTP://Fhir.Partner.Example:8080", "http://cqgate.internal:8443/a/fhir/2.16.840.1"},
		{"https://fhir.partner.example:443/r4/", "https://cqgate.internal/fhir/1.2&3<4"},
	} {
		rw, err := NewRewriter(strings.Clone(tt.partner), strings.Clone(tt.public))
		if err != nil {
			t.Fatalf("NewRewriter(%q): %v", tt.partner, err)
		}
		m := rw.Mapper()
		if m != &rw.m {
			t.Fatal("Mapper() is not the Rewriter's own Mapper")
		}
		base := unsafe.StringData(m.exact)
		size := len(m.exact) + len(m.public) + len(m.publicJSON) + len(m.publicXML)
		for name, s := range map[string]string{
			"scheme": m.scheme, "host": m.host, "hostname": m.hostname, "path": m.path,
			"exact": m.exact, "public": m.public, "publicJSON": m.publicJSON, "publicXML": m.publicXML,
		} {
			if s == "" {
				continue
			}
			off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(base))
			if off > uintptr(size) || off+uintptr(len(s)) > uintptr(size) {
				t.Errorf("%s: %q is not in the Mapper's one backing array", tt.partner, name)
			}
		}
		if got, want := m.PartnerBase(), m.scheme+"://"+m.host+m.path; got != want {
			t.Errorf("PartnerBase() = %q, want %q", got, want)
		}
	}
}
