package directory

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const cernerOID = "2.16.840.1.113883.3.13.1"

func TestParseSTU3OrganizationXML(t *testing.T) {
	const cernerR4 = "https://fhir-ehr.stagingcerner.com/beta/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"
	tests := []struct {
		name        string
		data        []byte
		wantUpdated time.Time
		wantEPs     []endpointSummary
		wantFHIR    string
	}{
		{
			name:        "organization root",
			data:        readTestdata(t, "cerner-stu3-organization.xml"),
			wantUpdated: time.Date(2019, 11, 20, 15, 4, 5, 123_000_000, time.UTC),
			wantEPs: []endpointSummary{
				{"XCPD-ITI-55", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://cq.example-cerner.test/xcpd/iti55"},
				{"XCA-ITI-38", "ihe-xca", "XCA ITI-38", "2.0", "active", "https://cq.example-cerner.test/xca/iti38"},
				{"XCA-ITI-39", "ihe-xca", "XCA ITI-39", "2.0", "active", "https://cq.example-cerner.test/xca/iti39"},
				{"FHIR-R4", "hl7-fhir-rest", "FHIR REST", "4.0.1", "active", cernerR4},
			},
			wantFHIR: cernerR4,
		},
		{
			name:        "searchset bundle root, sphd-stu3 EndpointMain",
			data:        readTestdata(t, "cerner-stu3-bundle.xml"),
			wantUpdated: time.Date(2020, 8, 26, 7, 1, 58, 246_000_000, time.UTC),
			wantEPs: []endpointSummary{
				{"pd", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://cq.example-cerner.test/xcpd/iti55"},
				{"fhir-dstu2", "", "FHIR REST", "DSTU2", "active", "https://fhir-open.stagingcerner.com/dstu2/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"},
				{"fhir-r4", "", "FHIR REST", "R4", "active", "https://fhir-ehr.stagingcerner.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"},
			},
			wantFHIR: "https://fhir-ehr.stagingcerner.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, err := ParseSTU3OrganizationXML(tt.data)
			if err != nil {
				t.Fatalf("ParseSTU3OrganizationXML: %v", err)
			}
			if org.OID != cernerOID || org.Name != "Cerner Corporation" || !org.Active {
				t.Errorf("got OID %q name %q active %v", org.OID, org.Name, org.Active)
			}
			if !org.LastUpdated.Equal(tt.wantUpdated) {
				t.Errorf("LastUpdated = %v, want %v", org.LastUpdated, tt.wantUpdated)
			}
			if got := summarize(org.Endpoints); !reflect.DeepEqual(got, tt.wantEPs) {
				t.Errorf("endpoints:\n got %+v\nwant %+v", got, tt.wantEPs)
			}
			ep, ok := org.FHIREndpoint()
			if !ok || ep.Address != tt.wantFHIR {
				t.Errorf("FHIREndpoint() = %q, %v; want %q", ep.Address, ok, tt.wantFHIR)
			}
		})
	}
}

func TestParseSTU3OrganizationXMLVariants(t *testing.T) {
	tests := []struct {
		name       string
		xml        string
		wantOID    string
		wantActive bool
	}{
		{
			name:       "identifier wins over id",
			xml:        `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.3"/><identifier><system value="http://www.hl7.org/oid/"/><value value="urn:oid:1.2.4"/></identifier></Organization>`,
			wantOID:    "1.2.4",
			wantActive: true,
		},
		{
			name:       "bare OID under the HL7 OID system",
			xml:        `<Organization xmlns="http://hl7.org/fhir"><identifier><system value="http://www.hl7.org/oid/"/><value value="1.2.5"/></identifier><active value="false"/></Organization>`,
			wantOID:    "1.2.5",
			wantActive: false,
		},
		{
			name:       "id when no identifier is an OID",
			xml:        `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.6"/><identifier><system value="http://hl7.org/fhir/sid/us-npi"/><value value="1234567893"/></identifier></Organization>`,
			wantOID:    "1.2.6",
			wantActive: true,
		},
		{
			name:       "no namespace (Metriport template), comments and processing instruction around",
			xml:        "<?xml version=\"1.0\"?>\n<!-- c --><Organization><identifier><value value=\"URN:OID:1.2.7\"/></identifier></Organization>\n<!-- trailing -->\n",
			wantOID:    "1.2.7",
			wantActive: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, err := ParseSTU3OrganizationXML([]byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			if org.OID != tt.wantOID || org.Active != tt.wantActive {
				t.Errorf("got OID %q active %v, want %q %v", org.OID, org.Active, tt.wantOID, tt.wantActive)
			}
		})
	}
}

func TestParseSTU3OrganizationXMLErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantIn  string
		wantErr error
	}{
		{name: "empty", data: "", wantIn: "empty document"},
		{name: "JSON", data: `{"resourceType": "Organization"}`, wantIn: "not XML"},
		{name: "HTML", data: "<!DOCTYPE html><html><body>Service Unavailable</body></html>", wantIn: "DOCTYPE"},
		{
			name:   "external entity",
			data:   `<?xml version="1.0"?><!DOCTYPE Organization [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Organization xmlns="http://hl7.org/fhir"><name value="&xxe;"/></Organization>`,
			wantIn: "DOCTYPE",
		},
		{
			name:   "undeclared entity without DOCTYPE",
			data:   `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.3"/><name value="&xxe;"/></Organization>`,
			wantIn: "invalid XML",
		},
		{name: "unclosed", data: `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.3"/>`, wantIn: "invalid XML"},
		{name: "wrong root", data: `<OperationOutcome xmlns="http://hl7.org/fhir"/>`, wantIn: `root element is "OperationOutcome"`},
		{name: "wrong namespace", data: `<Organization xmlns="urn:example"><id value="1.2.3"/></Organization>`, wantIn: "namespace"},
		{name: "no OID", data: `<Organization xmlns="http://hl7.org/fhir"><id value="cerner"/></Organization>`, wantIn: "no OID"},
		{name: "second root", data: `<Organization xmlns="http://hl7.org/fhir"><id value="1.2.3"/></Organization><Organization/>`, wantIn: "after the root element"},
		{name: "empty bundle", data: `<Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/><total value="0"/></Bundle>`, wantIn: "no Organization", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, err := ParseSTU3OrganizationXML([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseSTU3OrganizationXML = %+v, want error", org)
			}
			if !strings.HasPrefix(err.Error(), "directory: parse STU3 organization XML: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix and %q", err, tt.wantIn)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
		})
	}
}

// TestParseSTU3SharedTemplate renders the Metriport STU3 directory XML
// template kept in the workspace's shared fixtures (it is deliberately not
// copied into this repository) and parses the result.
func TestParseSTU3SharedTemplate(t *testing.T) {
	const name = "cq-stu3-directory-organization.xml.tmpl"
	path := findSharedFixture(t, name)
	if path == "" {
		t.Skipf("shared fixture %s not found in a shared/fixtures directory above the working directory; skipping", name)
	}
	tmpl, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orgTmpl := between(t, string(tmpl), "<Organization>", "</Organization>")
	rest := string(tmpl)[strings.Index(string(tmpl), orgTmpl)+len(orgTmpl):]
	epTmpl := between(t, rest, "<contained>", "</contained>")

	common := map[string]string{
		"oid":          "urn:oid:" + cernerOID,
		"orgName":      "Cerner Corporation",
		"contactName":  "Interoperability Operations",
		"email":        "interop@example-cerner.test",
		"phone":        "816-555-0100",
		"addressLine1": "2800 Rockcreek Parkway",
		"city":         "North Kansas City",
		"state":        "MO",
		"postalCode":   "64117",
		"lat":          "39.1428",
		"lon":          "-94.5730",
	}
	endpoints := []struct {
		slot, urlType, channelType, channelName, url string
	}{
		{"endpointXCPD", "XCPD ITI-55", "ihe-xcpd", "Patient Discovery", "https://cq.example-cerner.test/xcpd/iti55"},
		{"endpointDQ", "XCA ITI-38", "ihe-xca", "Query for Documents", "https://cq.example-cerner.test/xca/iti38"},
		{"endpointDR", "XCA ITI-39", "ihe-xca", "Retrieve Documents", "https://cq.example-cerner.test/xca/iti39"},
	}
	doc := orgTmpl
	for _, ep := range endpoints {
		vals := map[string]string{"urlType": ep.urlType, "channelType": ep.channelType, "channelName": ep.channelName, "url": ep.url}
		for k, v := range common {
			vals[k] = v
		}
		doc = strings.ReplaceAll(doc, "${"+ep.slot+"}", render(t, epTmpl, vals))
	}
	doc = render(t, doc, common)

	for _, variant := range []struct{ name, doc string }{
		{"as templated, no namespace", doc},
		{"with FHIR namespace", strings.Replace(doc, "<Organization>", `<Organization xmlns="http://hl7.org/fhir">`, 1)},
	} {
		t.Run(variant.name, func(t *testing.T) {
			org, err := ParseSTU3OrganizationXML([]byte(variant.doc))
			if err != nil {
				t.Fatalf("ParseSTU3OrganizationXML: %v\n%s", err, variant.doc)
			}
			if org.OID != cernerOID || org.Name != "Cerner Corporation" || !org.Active {
				t.Errorf("got OID %q name %q active %v", org.OID, org.Name, org.Active)
			}
			var want []endpointSummary
			for _, ep := range endpoints {
				want = append(want, endpointSummary{"", ep.channelType, ep.urlType, "2.0", "", ep.url})
			}
			if got := summarize(org.Endpoints); !reflect.DeepEqual(got, want) {
				t.Errorf("endpoints:\n got %+v\nwant %+v", got, want)
			}
			for _, ep := range org.Endpoints {
				if !reflect.DeepEqual(ep.PayloadMimeTypes, []string{"application/json"}) || ep.Name == "" {
					t.Errorf("endpoint %+v: want a name and payload mime type application/json", ep)
				}
			}
			if ep, ok := org.FHIREndpoint(); ok {
				t.Errorf("FHIREndpoint() = %+v, want none: the template only has IHE endpoints", ep)
			}
		})
	}
}

var placeholder = regexp.MustCompile(`\$\{([^}]*)\}`)

// render replaces every ${name} in s with vals[name]; names without a
// value get a plausible filler, logged.
func render(t *testing.T, s string, vals map[string]string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		if v, ok := vals[name]; ok {
			return v
		}
		if strings.HasPrefix(name, "endpoint") {
			return m // filled by the caller with rendered Endpoints
		}
		t.Logf("template placeholder ${%s} has no test value; using a filler", name)
		return "filler-" + regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(name, "-")
	})
}

// between returns the first substring of s from start through end.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	i := strings.Index(s, start)
	if i < 0 {
		t.Fatalf("template has no %s", start)
	}
	j := strings.Index(s[i:], end)
	if j < 0 {
		t.Fatalf("template has no %s after %s", end, start)
	}
	return s[i : i+j+len(end)]
}

// findSharedFixture walks up from the working directory looking for
// shared/fixtures/name; it returns "" when there is none.
func findSharedFixture(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "fixtures", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
