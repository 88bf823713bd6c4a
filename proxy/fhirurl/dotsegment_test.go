package fhirurl

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// resolved is what a client following u requests: u with its dot
// segments removed (RFC 3986 §5.2.4, as curl, browsers and urllib3 do
// before sending; WHATWG also takes %2e as '.').
func resolved(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(strings.NewReplacer("%2e", ".", "%2E", ".").Replace(u))
	if err != nil {
		t.Fatalf("parse %q: %v", u, err)
	}
	return (&url.URL{}).ResolveReference(p).String()
}

// A partner URL whose path climbs out of the base with dot segments is
// not under the base (RFC 3986 §5.2.4: .../tenant-guid/../other is
// .../other), and is not mapped: every URL Map gives stays under
// {public}/fhir/{oid}/ once a client removes its dot segments (mapped,
// "{base}/../x" would lead to another organization's route, or, with a
// public_url path prefix, another service on cqgate's public host).
func TestMapDotSegmentsStayUnderPublicBase(t *testing.T) {
	t.Parallel()
	const pub = "https://api.example/cqgate/fhir/2.16.840.1"
	m, err := NewMapper(partner, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		partner + "/../2.16.840.9/Patient/1",
		partner + "/../../../admin/keys",
		partner + "/%2e%2e/%2E%2E/../admin/keys",
		partner + "/Patient/../../../../admin/keys?x=1",
	} {
		out, ok := m.Map(in)
		if !ok {
			continue // left alone: fine
		}
		if got := resolved(t, out); !strings.HasPrefix(got, pub+"/") && got != pub {
			t.Errorf("Map(%q) = %q, which a client requests as %q: outside %s/", in, out, got, pub)
		}
	}

	// The same through the JSON and XML rewriters (a Bundle's next link).
	in := `{"link":[{"relation":"next","url":"` + partner + `/../../../admin/keys"}]}`
	var b bytes.Buffer
	w := NewJSONWriter(&b, m, 0)
	w.Write([]byte(in))
	w.Close()
	if strings.Contains(b.String(), "cqgate/fhir/2.16.840.1/../../../admin") {
		t.Errorf("JSON: %s", b.String())
	}
	b.Reset()
	x := NewXMLWriter(&b, m, 0)
	x.Write([]byte(`<link><url value="` + partner + `/../../../admin/keys"/></link>`))
	x.Close()
	if strings.Contains(b.String(), "cqgate/fhir/2.16.840.1/../../../admin") {
		t.Errorf("XML: %s", b.String())
	}
}
