package directory

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// A record gives back exactly the Organization it was made from (the
// public form and its JSON), including nil against empty lists, empty
// strings and payload types that are empty strings; and it chooses the
// FHIR endpoint Organization does.
func TestRecordRoundTrip(t *testing.T) {
	sphd, err := os.ReadFile("testdata/sphd-r4-organization.json")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseR4Organization(sphd)
	if err != nil {
		t.Fatal(err)
	}
	fhir := Endpoint{ID: "f", Name: "FHIR", Address: "https://fhir.example/r4/", ConnectionType: "hl7-fhir-rest", Transaction: "FHIR REST", Version: "4.0.1", FHIRVersion: FHIRR4, Status: "active", PayloadMimeTypes: []string{"application/fhir+json", "application/fhir+xml"}}
	stu3 := Endpoint{Address: "https://fhir.example/stu3", Transaction: "FHIR", Version: "3.0.2", FHIRVersion: FHIRSTU3}
	for name, o := range map[string]*Organization{
		"sphd fixture":                     parsed,
		"empty":                            {},
		"no endpoints (nil)":               {OID: "1.2.3", Name: "N", Active: true},
		"no endpoints (empty)":             {OID: "1.2.3", Endpoints: []Endpoint{}},
		"last updated in a zone":           {OID: "1.2", LastUpdated: time.Date(2024, 3, 5, 18, 22, 41, 500, time.FixedZone("", -5*3600))},
		"payload types nil, empty, [\"\"]": {OID: "1.2", Endpoints: []Endpoint{{Address: "a"}, {Address: "b", PayloadMimeTypes: []string{}}, {PayloadMimeTypes: []string{""}}, {PayloadMimeTypes: []string{"", "x", ""}}}},
		"two FHIR versions":                {OID: "1.2", Name: "Two", Endpoints: []Endpoint{{ID: "xcpd", Address: "https://soap.example/xcpd", ConnectionType: "ihe-xcpd"}, stu3, fhir}},
	} {
		r := newRecord(o)
		got := r.organization()
		_, gotOff := got.LastUpdated.Zone()
		_, wantOff := o.LastUpdated.Zone()
		if !got.LastUpdated.Equal(o.LastUpdated) || gotOff != wantOff || got.LastUpdated.IsZero() != o.LastUpdated.IsZero() {
			t.Errorf("%s: last updated %v, want %v", name, got.LastUpdated, o.LastUpdated)
		}
		if o.LastUpdated.Location() == time.Local || o.LastUpdated.Round(0) != o.LastUpdated {
			// A local or monotonic time comes back as the same instant and
			// offset in a fixed zone (the same JSON): compare the rest.
			got.LastUpdated = o.LastUpdated
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("%s: record gives\n%#v\nwant\n%#v", name, got, o)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(o)
		if string(gj) != string(wj) {
			t.Errorf("%s: JSON %s, want %s", name, gj, wj)
		}
		e := &Entry{rec: r}
		for _, prefs := range [][]string{nil, {FHIRSTU3}, {"R5"}} {
			want := o.FHIREndpointRef(prefs)
			addr, ok := e.FHIRAddress(prefs)
			if ok != (want != nil) || (ok && addr != want.Address) {
				t.Errorf("%s: FHIRAddress(%v) = %q, %v; want %+v", name, prefs, addr, ok, want)
			}
		}
		if e.OID() != o.OID || e.Name() != o.Name || e.Active() != o.Active || e.EndpointCount() != len(o.Endpoints) {
			t.Errorf("%s: entry says %q %q %v %d", name, e.OID(), e.Name(), e.Active(), e.EndpointCount())
		}
	}
}

// A record is 64 bytes (its size class), its ends 4 bytes per boundary.
func TestRecordSize(t *testing.T) {
	if size := unsafe.Sizeof(record{}); size > 64 {
		t.Errorf("record is %d bytes, more than 64", size)
	}
}

// Every Endpoint field is kept by a record: a field added to Endpoint
// must be added to record (as its own string or a code) and here.
func TestRecordKeepsEveryEndpointField(t *testing.T) {
	const kept = "ID Name Address ConnectionType Transaction Version FHIRVersion Status PayloadMimeTypes"
	var names string
	typ := reflect.TypeFor[Endpoint]()
	for i := range typ.NumField() {
		if i > 0 {
			names += " "
		}
		names += typ.Field(i).Name
	}
	if names != kept {
		t.Errorf("Endpoint fields %q; record keeps %q", names, kept)
	}
	if typ := reflect.TypeFor[Organization](); typ.NumField() != 5 {
		t.Errorf("Organization has %d fields; record keeps OID, Name, Active, Endpoints, LastUpdated", typ.NumField())
	}
}

// FHIRAddress reads the record without building an Organization or an
// Endpoint: it allocates no more than choosing in the public form does
// (isHTTPURL's url.Parse).
func TestFHIRAddressBuildsNothing(t *testing.T) {
	o := &Organization{OID: "1.2", Endpoints: []Endpoint{{Address: "https://soap.example", ConnectionType: "ihe-xca"}, {Address: "https://fhir.example/r4", ConnectionType: "hl7-fhir-rest", Version: "4.0.1", FHIRVersion: FHIRR4, Status: "active"}}}
	e := NewEntry(o, SourceDirectory)
	prefs := []string{FHIRR4}
	public := testing.AllocsPerRun(100, func() { o.FHIREndpointRef(prefs) })
	compact := testing.AllocsPerRun(100, func() {
		if a, ok := e.FHIRAddress(prefs); !ok || a != "https://fhir.example/r4" {
			t.Fatalf("FHIRAddress = %q, %v", a, ok)
		}
	})
	if compact > public {
		t.Errorf("FHIRAddress allocates %v times, choosing in the public form %v", compact, public)
	}
}
