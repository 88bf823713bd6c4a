package directory

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// endpointSummary is what the parser tests compare per endpoint.
type endpointSummary struct {
	ID, ConnectionType, Transaction, Version, Status, Address string
}

func summarize(eps []Endpoint) []endpointSummary {
	out := make([]endpointSummary, 0, len(eps))
	for _, e := range eps {
		out = append(out, endpointSummary{e.ID, e.ConnectionType, e.Transaction, e.Version, e.Status, e.Address})
	}
	return out
}

func TestParseR4Organization(t *testing.T) {
	const oid = "2.16.840.1.113883.3.7204.1.2"
	tests := []struct {
		name        string
		data        []byte
		wantOID     string
		wantName    string
		wantActive  bool
		wantUpdated time.Time
		wantEPs     []endpointSummary
		wantFHIR    string // FHIREndpoint().Address, "" for none
	}{
		{
			name:        "sphd organization with contained endpoints",
			data:        readTestdata(t, "sphd-r4-organization.json"),
			wantOID:     oid,
			wantName:    "Example Regional Health",
			wantActive:  true,
			wantUpdated: time.Date(2024, 3, 5, 18, 22, 41, 500_000_000, time.UTC),
			wantEPs: []endpointSummary{
				{"fhir-dstu2", "hl7-fhir-rest", "FHIR REST", "DSTU2", "active", "https://fhir.example-regional.test/dstu2/"},
				{"fhir-r4-retired", "hl7-fhir-rest", "FHIR REST", "4.0.1", "off", "https://old-fhir.example-regional.test/r4"},
				{"xcpd", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://gw.example-regional.test/xcpd"},
				{"xca-query", "ihe-xca", "XCA ITI-38", "2.0", "active", "https://gw.example-regional.test/xca/query"},
				{"fhir-r4", "hl7-fhir-rest", "FHIR REST", "4.0.1", "active", "https://fhir.example-regional.test/r4/"},
			},
			wantFHIR: "https://fhir.example-regional.test/r4/",
		},
		{
			name:        "searchset bundle with included endpoints",
			data:        readTestdata(t, "sphd-r4-bundle.json"),
			wantOID:     oid,
			wantName:    "Example Regional Health",
			wantActive:  true,
			wantUpdated: time.Date(2024, 3, 5, 18, 22, 41, 0, time.UTC),
			wantEPs: []endpointSummary{
				{"ep-xcpd", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://gw.example-regional.test/xcpd"},
				{"ep-fhir-dstu2", "hl7-fhir-rest", "FHIR REST", "1.0.2", "active", "https://fhir.example-regional.test/dstu2"},
				{"ep-fhir-r4", "hl7-fhir-rest", "FHIR REST", "R4", "active", "https://fhir.example-regional.test/r4"},
			},
			wantFHIR: "https://fhir.example-regional.test/r4",
		},
		{
			name: "id not an OID: identifier urn:oid, STU3-era EndpointMain extension, inactive",
			data: []byte(`{
				"resourceType": "Organization",
				"id": "update-success-example2",
				"identifier": [
					{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
					{"use": "official", "system": "urn:ietf:rfc:3986", "value": "urn:oid:2.5.5.5"}
				],
				"active": false,
				"name": "Eric Hospital",
				"contained": [
					{"resourceType": "Location", "id": "orgloc", "position": {"longitude": -97.7, "latitude": 30.4}},
					{
						"resourceType": "Endpoint", "id": "orgEndpoint",
						"extension": [{
							"url": "https://sequoiaproject.org/fhir/sphd-stu3/StructureDefinition/EndpointMain",
							"extension": [
								{"url": "Transaction", "valueString": "XCPD ITI-55"},
								{"url": "Actor", "valueCodeableConcept": {"coding": [{"code": "Responding Gateway"}]}},
								{"url": "Version", "valueString": "2.0"}
							]
						}],
						"status": "active",
						"connectionType": {"system": "http://hl7.org/fhir/endpoint-connection-type", "code": "ihe-xcpd"},
						"payloadMimeType": ["application/xml"],
						"address": "https://carequality.test.com/xcpd/v1/xcpd"
					}
				]
			}`),
			wantOID:  "2.5.5.5", // the IG example's 5.5.5.5 is not a valid OID (first arc > 2)
			wantName: "Eric Hospital",
			wantEPs: []endpointSummary{
				{"orgEndpoint", "ihe-xcpd", "XCPD ITI-55", "2.0", "active", "https://carequality.test.com/xcpd/v1/xcpd"},
			},
		},
		{
			name: "minimal organization: active assumed, R5-style connectionType list, unknown fields",
			data: []byte("\ufeff" + `{
				"resourceType": "Organization",
				"id": "1.2.3.4",
				"someFutureField": {"nested": [1, 2, {"deep": true}]},
				"contained": [{
					"resourceType": "Endpoint", "id": "e",
					"connectionType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"}]}],
					"address": "http://fhir.example.test/base"
				}]
			}`),
			wantOID:    "1.2.3.4",
			wantActive: true,
			wantEPs:    []endpointSummary{{"e", "hl7-fhir-rest", "", "", "", "http://fhir.example.test/base"}},
			wantFHIR:   "http://fhir.example.test/base",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, err := ParseR4Organization(tt.data)
			if err != nil {
				t.Fatalf("ParseR4Organization: %v", err)
			}
			if org.OID != tt.wantOID || org.Name != tt.wantName || org.Active != tt.wantActive {
				t.Errorf("got OID %q name %q active %v, want %q %q %v", org.OID, org.Name, org.Active, tt.wantOID, tt.wantName, tt.wantActive)
			}
			if !org.LastUpdated.Equal(tt.wantUpdated) {
				t.Errorf("LastUpdated = %v, want %v", org.LastUpdated, tt.wantUpdated)
			}
			if got := summarize(org.Endpoints); !reflect.DeepEqual(got, tt.wantEPs) {
				t.Errorf("endpoints:\n got %+v\nwant %+v", got, tt.wantEPs)
			}
			ep, ok := org.FHIREndpoint()
			if ok != (tt.wantFHIR != "") || ep.Address != tt.wantFHIR {
				t.Errorf("FHIREndpoint() = %q, %v; want %q", ep.Address, ok, tt.wantFHIR)
			}
		})
	}
}

func TestParseR4OrganizationPayloadMimeTypes(t *testing.T) {
	org, err := ParseR4Organization(readTestdata(t, "sphd-r4-organization.json"))
	if err != nil {
		t.Fatal(err)
	}
	ep, ok := org.FHIREndpoint()
	if !ok {
		t.Fatal("no FHIR endpoint")
	}
	want := []string{"application/fhir+json", "application/fhir+xml"}
	if !reflect.DeepEqual(ep.PayloadMimeTypes, want) || ep.Name != "FHIR R4" {
		t.Errorf("FHIR endpoint = %+v, want name FHIR R4 and mime types %v", ep, want)
	}
}

func TestParseR4OrganizationErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantIn  string // substring of the error
		wantErr error  // wrapped sentinel, if any
	}{
		{name: "empty", data: "  \n", wantIn: "empty document"},
		{name: "XML", data: `<?xml version="1.0"?><Organization xmlns="http://hl7.org/fhir"/>`, wantIn: "not a JSON object"},
		{name: "JSON array", data: `[{"resourceType":"Organization"}]`, wantIn: "not a JSON object"},
		{name: "truncated JSON", data: `{"resourceType": "Organization", "id": "1.2`, wantIn: "invalid JSON"},
		{name: "no resourceType", data: `{"id": "1.2.3"}`, wantIn: "no resourceType"},
		{name: "wrong resourceType", data: `{"resourceType": "Patient", "id": "1.2.3"}`, wantIn: `resourceType is "Patient"`},
		{name: "OperationOutcome", data: `{"resourceType": "OperationOutcome", "issue": []}`, wantIn: "want Organization or Bundle"},
		{name: "no OID", data: `{"resourceType": "Organization", "id": "abc", "identifier": [{"value": "urn:uuid:x"}]}`, wantIn: "no OID"},
		{name: "wrong field type", data: `{"resourceType": "Organization", "id": "1.2.3", "name": 42}`, wantIn: "invalid Organization"},
		{name: "empty bundle", data: `{"resourceType": "Bundle", "type": "searchset", "total": 0}`, wantIn: "no Organization", wantErr: ErrNotFound},
		{
			name:   "bundle with two matches",
			data:   `{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Organization", "id": "1.2.3"}, "search": {"mode": "match"}}, {"resource": {"resourceType": "Organization", "id": "1.2.4"}, "search": {"mode": "match"}}]}`,
			wantIn: "2 matching Organizations",
		},
		{
			name:   "bad contained endpoint",
			data:   `{"resourceType": "Organization", "id": "1.2.3", "contained": [{"resourceType": "Endpoint", "address": ["x"]}]}`,
			wantIn: "invalid Endpoint",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org, err := ParseR4Organization([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseR4Organization = %+v, want error", org)
			}
			if !strings.HasPrefix(err.Error(), "directory: parse R4 organization: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix and %q", err, tt.wantIn)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
		})
	}
}
