package directory

import "testing"

func TestFHIREndpoint(t *testing.T) {
	const (
		r4   = "https://fhir.example.test/r4"
		dst2 = "https://fhir.example.test/dstu2"
		stu3 = "https://fhir.example.test/stu3"
	)
	fhir := func(id, version, addr string) Endpoint {
		return Endpoint{ID: id, Transaction: "FHIR REST", Version: version, Status: "active", Address: addr}
	}
	tests := []struct {
		name   string
		eps    []Endpoint
		wantID string // "" for no endpoint
	}{
		{name: "no endpoints"},
		{
			name: "IHE only",
			eps: []Endpoint{
				{ID: "pd", ConnectionType: "ihe-xcpd", Transaction: "XCPD ITI-55", Address: "https://gw.example.test/xcpd"},
				{ID: "dq", ConnectionType: "ihe-xca", Transaction: "XCA ITI-38", Address: "https://gw.example.test/xca"},
			},
		},
		{name: "transaction FHIR REST", eps: []Endpoint{fhir("a", "", r4)}, wantID: "a"},
		{name: "transaction any case", eps: []Endpoint{{ID: "a", Transaction: "fhir rest", Address: r4}}, wantID: "a"},
		{name: "transaction FHIR-REST", eps: []Endpoint{{ID: "a", Transaction: "FHIR-REST", Address: r4}}, wantID: "a"},
		{name: "transaction FHIR", eps: []Endpoint{{ID: "a", Transaction: "FHIR", Address: r4}}, wantID: "a"},
		{name: "connection type only", eps: []Endpoint{{ID: "a", ConnectionType: "hl7-fhir-rest", Address: r4}}, wantID: "a"},
		{name: "connection type any case", eps: []Endpoint{{ID: "a", ConnectionType: "HL7-FHIR-REST", Address: r4}}, wantID: "a"},
		{name: "FHIR transaction on an IHE connection type", eps: []Endpoint{{ID: "a", ConnectionType: "ihe-xca", Transaction: "FHIR REST", Address: r4}}},
		{name: "FHIR connection type with an XCA transaction", eps: []Endpoint{{ID: "a", ConnectionType: "hl7-fhir-rest", Transaction: "XCA ITI-38", Address: r4}}},
		{name: "unrelated transaction", eps: []Endpoint{{ID: "a", Transaction: "Direct", Address: r4}}},
		{name: "no transaction nor type", eps: []Endpoint{{ID: "a", Address: r4}}},
		{name: "status off", eps: []Endpoint{{ID: "a", Transaction: "FHIR REST", Status: "off", Address: r4}}},
		{name: "status error", eps: []Endpoint{{ID: "a", Transaction: "FHIR REST", Status: "error", Address: r4}}},
		{name: "status entered-in-error", eps: []Endpoint{{ID: "a", Transaction: "FHIR REST", Status: "Entered-In-Error", Address: r4}}},
		{name: "status suspended is usable", eps: []Endpoint{{ID: "a", Transaction: "FHIR REST", Status: "suspended", Address: r4}}, wantID: "a"},
		{name: "relative address", eps: []Endpoint{fhir("a", "4.0.1", "/r4")}},
		{name: "non-http address", eps: []Endpoint{fhir("a", "4.0.1", "ftp://fhir.example.test/r4")}},
		{name: "empty address", eps: []Endpoint{fhir("a", "4.0.1", "")}},
		{name: "garbage address", eps: []Endpoint{fhir("a", "4.0.1", "https://[::1")}},
		{name: "R4 4.0.1 preferred over DSTU2 before it", eps: []Endpoint{fhir("d", "DSTU2", dst2), fhir("r", "4.0.1", r4)}, wantID: "r"},
		{name: "R4 4.0 preferred over 1.0.2", eps: []Endpoint{fhir("d", "1.0.2", dst2), fhir("r", "4.0", r4)}, wantID: "r"},
		{name: "R4 label preferred over 3.0.1", eps: []Endpoint{fhir("s", "3.0.1", stu3), fhir("r", "r4", r4)}, wantID: "r"},
		{name: "unusable R4 falls back to usable DSTU2", eps: []Endpoint{fhir("d", "DSTU2", dst2), {ID: "r", Transaction: "FHIR REST", Version: "4.0.1", Status: "off", Address: r4}}, wantID: "d"},
		{name: "document order among non-R4", eps: []Endpoint{fhir("s", "3.0.1", stu3), fhir("d", "DSTU2", dst2)}, wantID: "s"},
		{name: "document order among R4", eps: []Endpoint{fhir("r1", "4.0.1", r4), fhir("r2", "R4", r4+"/b")}, wantID: "r1"},
		{
			name: "mixed directory entry",
			eps: []Endpoint{
				{ID: "pd", ConnectionType: "ihe-xcpd", Transaction: "XCPD ITI-55", Version: "2.0", Address: "https://gw.example.test/xcpd"},
				fhir("d", "DSTU2", dst2),
				{ID: "dr", ConnectionType: "ihe-xca", Transaction: "XCA ITI-39", Version: "2.0", Address: "https://gw.example.test/xca"},
				fhir("r", "4.0.1", r4),
			},
			wantID: "r",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := &Organization{OID: "1.2.3", Endpoints: tt.eps}
			got, ok := org.FHIREndpoint()
			if ok != (tt.wantID != "") || got.ID != tt.wantID {
				t.Errorf("FHIREndpoint() = %q, %v; want %q", got.ID, ok, tt.wantID)
			}
		})
	}
}

func TestFHIREndpointNilOrganization(t *testing.T) {
	var org *Organization
	if ep, ok := org.FHIREndpoint(); ok {
		t.Errorf("nil Organization: FHIREndpoint() = %+v, true; want false", ep)
	}
}
