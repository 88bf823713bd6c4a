package directory

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// The fuzz targets' seed corpora are in testdata/fuzz/<FuzzName>/, made
// from the documents in testdata/ and hostile variants; `go test` runs
// them as regression tests.

func FuzzParseR4Organization(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		org, err := ParseR4Organization(data)
		if err != nil {
			checkParseError(t, err, "directory: parse R4 organization: ")
			return
		}
		checkOrganization(t, org, jsonStrings(t, data))
	})
}

func FuzzParseSTU3OrganizationXML(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		org, err := ParseSTU3OrganizationXML(data)
		if err != nil {
			checkParseError(t, err, "directory: parse STU3 organization XML: ")
			return
		}
		checkOrganization(t, org, xmlValues(t, data))
	})
}

func FuzzParseR4Bundle(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseR4Bundle(data)
		if err != nil {
			checkParseError(t, err, "directory: parse R4 bundle: ")
			return
		}
		checkBundle(t, b, jsonStrings(t, data))
	})
}

func FuzzParseSTU3BundleXML(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseSTU3BundleXML(data)
		if err != nil {
			checkParseError(t, err, "directory: parse STU3 bundle XML: ")
			return
		}
		checkBundle(t, b, xmlValues(t, data))
	})
}

func FuzzParseOID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		oid, err := ParseOID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidOID) || !strings.HasPrefix(err.Error(), "directory: invalid OID ") {
				t.Fatalf("ParseOID(%q) error %q", s, err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("ParseOID(%q): error of %d bytes", s, len(err.Error()))
			}
			return
		}
		if oid == "" || len(oid) > maxOIDLen || strings.Trim(oid, "0123456789.") != "" {
			t.Fatalf("ParseOID(%q) = %q: not a bare OID", s, oid)
		}
		if s != oid && !(len(s) == len(oidPrefix)+len(oid) && strings.EqualFold(s[:len(oidPrefix)], oidPrefix) && s[len(oidPrefix):] == oid) {
			t.Fatalf("ParseOID(%q) = %q: neither the input nor its urn:oid: form", s, oid)
		}
		for _, again := range []string{oid, "urn:oid:" + oid, "URN:OID:" + oid} {
			if got, err := ParseOID(again); err != nil || got != oid {
				t.Fatalf("ParseOID(%q) = %q, %v; want %q", again, got, err, oid)
			}
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	base, err := url.Parse("https://directory.example.test/fhir")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		if u, err := decodeR4Cursor(base, cursor); err != nil {
			checkCursorError(t, err)
		} else {
			if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil || u.Fragment != "" {
				t.Fatalf("R4 cursor %q leads to %s", cursor, u)
			}
			if !allowedSearchPath(base, u.EscapedPath()) {
				t.Fatalf("R4 cursor %q leads to path %q", cursor, u.EscapedPath())
			}
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil {
				t.Fatalf("R4 cursor %q: query %q does not parse: %v", cursor, u.RawQuery, err)
			}
			for name := range q {
				if isKeyParam(name) || strings.EqualFold(name, "_format") {
					t.Fatalf("R4 cursor %q sets %s", cursor, name)
				}
			}
			if strings.ContainsAny(u.String(), "\r\n\x00 #") {
				t.Fatalf("R4 cursor %q gives URL %q", cursor, u)
			}
			// The URL's own next link makes a cursor leading back to it.
			again, err := encodeR4Cursor(base, base, u.String(), "")
			if err != nil {
				t.Fatalf("R4 cursor %q: its URL %s is refused as a next link: %v", cursor, u, err)
			}
			if u2, err := decodeR4Cursor(base, again); err != nil || u2.String() != u.String() {
				t.Fatalf("R4 cursor %q: round trip gives %v, %v; want %s", cursor, u2, err, u)
			}
		}
		s, err := decodeSTU3Cursor(cursor)
		if err != nil {
			checkCursorError(t, err)
			return
		}
		if s.count < 1 || s.count > MaxPageSize || s.start < 1 || s.start > maxSTU3Start || checkName(s.name) != nil {
			t.Fatalf("STU3 cursor %q gives %+v", cursor, s)
		}
		if s.id != "" {
			if oid, err := ParseOID(s.id); err != nil || oid != s.id {
				t.Fatalf("STU3 cursor %q gives _id %q", cursor, s.id)
			}
		}
		s2, err := decodeSTU3Cursor(encodeSTU3Cursor(s))
		if err != nil || s2.name != s.name || s2.id != s.id || s2.count != s.count || s2.start != s.start || (s2.active == nil) != (s.active == nil) {
			t.Fatalf("STU3 cursor %q: round trip gives %+v, %v; want %+v", cursor, s2, err, s)
		}
	})
}

func checkCursorError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidQuery) || !strings.HasPrefix(err.Error(), "directory: invalid search: ") {
		t.Fatalf("cursor error %q does not wrap ErrInvalidQuery", err)
	}
	if len(err.Error()) > 400 {
		t.Fatalf("cursor error of %d bytes", len(err.Error()))
	}
}

func checkParseError(t *testing.T, err error, prefix string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || len(msg) == len(prefix) {
		t.Fatalf("error %q: want the prefix %q and a reason", msg, prefix)
	}
}

func checkBundle(t *testing.T, b *Bundle, values map[string]bool) {
	t.Helper()
	if b.Total < -1 {
		t.Fatalf("Total = %d", b.Total)
	}
	if b.Next != strings.TrimSpace(b.Next) || (b.Next != "" && !values[b.Next]) {
		t.Fatalf("Next %q is not in the document", b.Next)
	}
	for _, o := range b.Organizations {
		checkOrganization(t, o, values)
	}
}

// checkOrganization asserts the invariants of an accepted organization:
// a valid OID, and endpoint addresses that the document holds.
func checkOrganization(t *testing.T, org *Organization, values map[string]bool) {
	t.Helper()
	if org == nil {
		t.Fatal("nil organization without error")
	}
	if oid, err := ParseOID(org.OID); err != nil || oid != org.OID {
		t.Fatalf("accepted organization has OID %q (%v)", org.OID, err)
	}
	for _, ep := range org.Endpoints {
		if ep.Address != "" && !values[ep.Address] {
			t.Fatalf("endpoint address %q is not in the document", ep.Address)
		}
		if ep.FHIRVersion != "" && FHIRFamily(ep.Version) != ep.FHIRVersion {
			t.Fatalf("endpoint version %q has FHIRVersion %q", ep.Version, ep.FHIRVersion)
		}
	}
	if ep, ok := org.FHIREndpoint(); ok && !isHTTPURL(ep.Address) {
		t.Fatalf("FHIR endpoint address %q is not an http(s) URL", ep.Address)
	}
}

// jsonStrings returns every string value of a JSON document, trimmed.
func jsonStrings(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	var doc any
	if err := json.Unmarshal(bytes.TrimPrefix(data, []byte(utf8BOM)), &doc); err != nil {
		t.Fatalf("accepted document is not JSON: %v", err)
	}
	out := make(map[string]bool)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out[strings.TrimSpace(v)] = true
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// xmlValues returns every attribute value of an XML document, trimmed.
func xmlValues(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte(utf8BOM))))
	d.Strict = true
	out := make(map[string]bool)
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				out[strings.TrimSpace(a.Value)] = true
			}
		}
	}
}
