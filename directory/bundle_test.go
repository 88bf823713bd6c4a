package directory

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// orgSummary is what the bundle tests compare per organization.
type orgSummary struct {
	OID, Name string
	Active    bool
	Endpoints []endpointSummary
}

func summarizeOrgs(orgs []*Organization) []orgSummary {
	out := make([]orgSummary, 0, len(orgs))
	for _, o := range orgs {
		out = append(out, orgSummary{o.OID, o.Name, o.Active, summarize(o.Endpoints)})
	}
	return out
}

func TestParseR4Bundle(t *testing.T) {
	tests := []struct {
		name      string
		data      []byte
		wantOrgs  []orgSummary
		wantTotal int
		wantNext  string
	}{
		{
			name: "searchset page with contained and included endpoints",
			data: readTestdata(t, "sphd-r4-searchset.json"),
			wantOrgs: []orgSummary{
				{"2.16.840.1.113883.3.7204.1.2", "Example Regional Health", true, []endpointSummary{
					{"fhir-r4", "hl7-fhir-rest", "FHIR REST", "4.0.1", "active", "https://fhir.example-regional.test/r4"},
					{"ep-regional-xcpd", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://gw.example-regional.test/xcpd"},
				}},
				{"2.16.840.1.113883.3.7204.1.3", "Example Community Clinic", false, []endpointSummary{
					{"ep-clinic-stu3", "hl7-fhir-rest", "FHIR REST", "3.0.2", "active", "https://fhir.example-clinic.test/stu3"},
				}},
				{"2.16.840.1.113883.3.7204.2", "Example Hospital Without Endpoints", true, []endpointSummary{}},
			},
			wantTotal: 7,
			wantNext:  "https://directory.stage.carequality.org/fhir?_getpages=7c1f0b2e-d1a4-4f38-9b77-0a5e3c2d9f61&_getpagesoffset=3&_count=3&_pretty=true&_bundletype=searchset",
		},
		{
			name: "read-style bundle: the match only, no total, no next",
			data: readTestdata(t, "sphd-r4-bundle.json"),
			wantOrgs: []orgSummary{{"2.16.840.1.113883.3.7204.1.2", "Example Regional Health", true, []endpointSummary{
				{"ep-xcpd", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://gw.example-regional.test/xcpd"},
				{"ep-fhir-dstu2", "hl7-fhir-rest", "FHIR REST", "1.0.2", "active", "https://fhir.example-regional.test/dstu2"},
				{"ep-fhir-r4", "hl7-fhir-rest", "FHIR REST", "R4", "active", "https://fhir.example-regional.test/r4"},
			}}},
			wantTotal: 1,
		},
		{
			name:      "empty searchset",
			data:      []byte(`{"resourceType":"Bundle","type":"searchset","total":0,"link":[{"relation":"self","url":"https://d.test/fhir/Organization?name=zz"}]}`),
			wantOrgs:  []orgSummary{},
			wantTotal: 0,
		},
		{
			name: "no search modes: every Organization, no total",
			data: []byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Organization","id":"1.2.3"}},{"resource":null},{},{"resource":{"resourceType":"Organization","id":"1.2.4","active":false}}],
				"link":[{"relation":"NEXT","url":" https://d.test/fhir/Organization?page=2 "}]}`),
			wantOrgs:  []orgSummary{{"1.2.3", "", true, []endpointSummary{}}, {"1.2.4", "", false, []endpointSummary{}}},
			wantTotal: -1,
			wantNext:  "https://d.test/fhir/Organization?page=2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseR4Bundle(tt.data)
			if err != nil {
				t.Fatalf("ParseR4Bundle: %v", err)
			}
			if got := summarizeOrgs(b.Organizations); !reflect.DeepEqual(got, tt.wantOrgs) {
				t.Errorf("organizations:\n got %+v\nwant %+v", got, tt.wantOrgs)
			}
			if b.Total != tt.wantTotal || b.Next != tt.wantNext {
				t.Errorf("total %d next %q, want %d %q", b.Total, b.Next, tt.wantTotal, tt.wantNext)
			}
		})
	}
}

func TestParseSTU3BundleXML(t *testing.T) {
	b, err := ParseSTU3BundleXML(readTestdata(t, "cerner-stu3-searchset.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []orgSummary{
		{cernerOID, "Cerner Corporation", true, []endpointSummary{
			{"fhir-r4", "", "FHIR REST", "R4", "active", "https://fhir-ehr.stagingcerner.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"},
		}},
		{"2.16.840.1.113883.3.13.9", "Cerner Test Facility", false, []endpointSummary{
			{"cerner-test-xca", "ihe-xca", "XCA ITI-38", "2.0", "", "https://cq-test.example-cerner.test/xca/iti38"},
		}},
	}
	if got := summarizeOrgs(b.Organizations); !reflect.DeepEqual(got, want) {
		t.Errorf("organizations:\n got %+v\nwant %+v", got, want)
	}
	if b.Total != 5 || b.Next != "" {
		t.Errorf("total %d next %q, want 5 and none", b.Total, b.Next)
	}

	// The single-organization fixtures parse as one-match bundles too.
	b, err = ParseSTU3BundleXML(readTestdata(t, "cerner-stu3-bundle.xml"))
	if err != nil || len(b.Organizations) != 1 || b.Organizations[0].OID != cernerOID || b.Total != 1 {
		t.Fatalf("cerner-stu3-bundle.xml: %+v, %v", b, err)
	}
	b, err = ParseSTU3BundleXML([]byte(`<Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/><link><relation value="next"/><url value="https://d.test/fhir-stu3/Organization?_start=2"/></link></Bundle>`))
	if err != nil || len(b.Organizations) != 0 || b.Total != -1 || b.Next != "https://d.test/fhir-stu3/Organization?_start=2" {
		t.Fatalf("empty bundle with next link: %+v, %v", b, err)
	}
}

// TestBundleFHIRVersions checks that parsed FHIR endpoints say their
// version family and others do not.
func TestBundleFHIRVersions(t *testing.T) {
	b, err := ParseR4Bundle(readTestdata(t, "sphd-r4-searchset.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range b.Organizations {
		for _, ep := range o.Endpoints {
			got[ep.ID] = ep.FHIRVersion
		}
	}
	want := map[string]string{"fhir-r4": FHIRR4, "ep-regional-xcpd": "", "ep-clinic-stu3": FHIRSTU3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FHIRVersion by endpoint = %v, want %v", got, want)
	}
}

func TestParseBundleErrors(t *testing.T) {
	deepJSON := `{"resourceType":"Bundle","entry":[` + strings.Repeat(`{"x":[`, 40) + strings.Repeat(`]}`, 40) + `]}`
	deepXML := `<Bundle xmlns="http://hl7.org/fhir">` + strings.Repeat("<entry>", 70) + strings.Repeat("</entry>", 70) + `</Bundle>`
	tests := []struct {
		name    string
		r4      bool
		data    string
		wantIn  string
		wantErr error
	}{
		{name: "R4 empty", r4: true, data: "\ufeff \n", wantIn: "empty document"},
		{name: "R4 array", r4: true, data: `[{"resourceType":"Bundle"}]`, wantIn: "not a JSON object"},
		{name: "R4 organization, not bundle", r4: true, data: `{"resourceType":"Organization","id":"1.2.3"}`, wantIn: `resourceType is "Organization", want Bundle`},
		{name: "R4 no resourceType", r4: true, data: `{"type":"searchset"}`, wantIn: "no resourceType"},
		{name: "R4 truncated", r4: true, data: `{"resourceType":"Bundle","entry":[{"resource":`, wantIn: "invalid JSON"},
		{name: "R4 entry not a list", r4: true, data: `{"resourceType":"Bundle","entry":{"resource":{}}}`, wantIn: "invalid bundle"},
		{name: "R4 entry a number", r4: true, data: `{"resourceType":"Bundle","entry":[42]}`, wantIn: "invalid bundle"},
		{name: "R4 resource a string", r4: true, data: `{"resourceType":"Bundle","entry":[{"resource":"Organization"}]}`, wantIn: "invalid bundle entry 0"},
		{name: "R4 total a string", r4: true, data: `{"resourceType":"Bundle","total":"7"}`, wantIn: "invalid bundle"},
		{name: "R4 total negative", r4: true, data: `{"resourceType":"Bundle","total":-1}`, wantIn: "total is -1"},
		{name: "R4 total fractional", r4: true, data: `{"resourceType":"Bundle","total":1.5}`, wantIn: "invalid bundle"},
		{name: "R4 link not a list", r4: true, data: `{"resourceType":"Bundle","link":"next"}`, wantIn: "invalid bundle"},
		{name: "R4 transaction bundle", r4: true, data: `{"resourceType":"Bundle","type":"transaction"}`, wantIn: `bundle type is "transaction"`},
		{name: "R4 organization without OID", r4: true, data: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Organization","id":"1.2.3"},"search":{"mode":"match"}},{"resource":{"resourceType":"Organization","id":"acme"},"search":{"mode":"match"}}]}`, wantIn: "bundle entry 1: organization has no OID"},
		{name: "R4 organization name a number", r4: true, data: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Organization","id":"1.2.3","name":7}}]}`, wantIn: "bundle entry 0: invalid Organization"},
		{name: "R4 endpoint address a list", r4: true, data: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Endpoint","address":["x"]}}]}`, wantIn: "bundle entry 0: invalid Endpoint"},
		{name: "R4 too deep", r4: true, data: deepJSON, wantIn: "deeper than 64"},
		{name: "R4 brackets in strings do not count", r4: true, data: `{"resourceType":"Bundle","entry":[{"fullUrl":"` + strings.Repeat(`[{\"`, 100) + `","resource":{"resourceType":"Organization","id":"1.2.3"}}],"total":1}`, wantIn: ""},
		{name: "STU3 empty", data: "  ", wantIn: "empty document"},
		{name: "STU3 organization, not bundle", data: `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.3"/></Organization>`, wantIn: `root element is "Organization", want Bundle`},
		{name: "STU3 DOCTYPE", data: `<!DOCTYPE Bundle [<!ENTITY e SYSTEM "file:///etc/passwd">]><Bundle xmlns="http://hl7.org/fhir"/>`, wantIn: "DOCTYPE"},
		{name: "STU3 billion laughs", data: `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><Bundle xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Bundle>`, wantIn: "DOCTYPE"},
		{name: "STU3 wrong namespace", data: `<Bundle xmlns="urn:evil"/>`, wantIn: "namespace"},
		{name: "STU3 total not a number", data: `<Bundle xmlns="http://hl7.org/fhir"><total value="many"/></Bundle>`, wantIn: `total "many" is not a count`},
		{name: "STU3 total negative", data: `<Bundle xmlns="http://hl7.org/fhir"><total value="-3"/></Bundle>`, wantIn: "is not a count"},
		{name: "STU3 history bundle", data: `<Bundle xmlns="http://hl7.org/fhir"><type value="history"/></Bundle>`, wantIn: `bundle type is "history"`},
		{name: "STU3 unclosed", data: `<Bundle xmlns="http://hl7.org/fhir"><entry>`, wantIn: "invalid XML"},
		{name: "STU3 second root", data: `<Bundle xmlns="http://hl7.org/fhir"/><Bundle/>`, wantIn: "after the root element"},
		{name: "STU3 organization without OID", data: `<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Organization><name value="x"/></Organization></resource></entry></Bundle>`, wantIn: "bundle entry 0: organization has no OID"},
		{name: "STU3 too deep", data: deepXML, wantIn: "deeper than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				b      *Bundle
				err    error
				prefix string
			)
			if tt.r4 {
				b, err = ParseR4Bundle([]byte(tt.data))
				prefix = "directory: parse R4 bundle: "
			} else {
				b, err = ParseSTU3BundleXML([]byte(tt.data))
				prefix = "directory: parse STU3 bundle XML: "
			}
			if tt.wantIn == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %+v, want error", b)
			}
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix %q and %q", err, prefix, tt.wantIn)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
		})
	}
}

func TestParsersRejectOversizedDocuments(t *testing.T) {
	huge := make([]byte, MaxDocumentBytes+1)
	copy(huge, `{"resourceType":"Bundle"}`)
	for i := len(`{"resourceType":"Bundle"}`); i < len(huge); i++ {
		huge[i] = ' '
	}
	parsers := map[string]func([]byte) error{
		"ParseR4Organization":      func(b []byte) error { _, err := ParseR4Organization(b); return err },
		"ParseR4Bundle":            func(b []byte) error { _, err := ParseR4Bundle(b); return err },
		"ParseSTU3OrganizationXML": func(b []byte) error { _, err := ParseSTU3OrganizationXML(b); return err },
		"ParseSTU3BundleXML":       func(b []byte) error { _, err := ParseSTU3BundleXML(b); return err },
	}
	for name, parse := range parsers {
		if err := parse(huge); err == nil || !strings.Contains(err.Error(), "more than the") {
			t.Errorf("%s: error %v, want the size limit", name, err)
		}
	}
}

// TestParseBundleManyReferences guards the reference index: a
// document with many references to many Endpoint entries must not take
// quadratic time. It is bounded by the test timeout, not timed.
func TestParseBundleManyReferences(t *testing.T) {
	const n = 20000
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Organization","id":"1.2.3","endpoint":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"reference":"Endpoint/e` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString(`]},"search":{"mode":"match"}}`)
	for i := range n {
		b.WriteString(`,{"resource":{"resourceType":"Endpoint","id":"e` + strconv.Itoa(i) + `","address":"https://x.test/` + strconv.Itoa(i) + `"},"search":{"mode":"include"}}`)
	}
	b.WriteString(`]}`)
	bundle, err := ParseR4Bundle([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(bundle.Organizations[0].Endpoints); got != n {
		t.Errorf("%d endpoints, want %d", got, n)
	}
}
