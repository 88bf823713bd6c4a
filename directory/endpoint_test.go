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

func TestFHIRFamily(t *testing.T) {
	tests := map[string]string{
		"4.0.1": FHIRR4, "4.0.0": FHIRR4, "4.0": FHIRR4, "R4": FHIRR4, "r4": FHIRR4, " 4.0.1 ": FHIRR4, "v4.0.1": FHIRR4, "4.0.1-snapshot": FHIRR4,
		"3.0.2": FHIRSTU3, "3.0.1": FHIRSTU3, "3.0": FHIRSTU3, "STU3": FHIRSTU3, "stu3": FHIRSTU3, "R3": FHIRSTU3,
		"1.0.2": FHIRDSTU2, "1.0": FHIRDSTU2, "DSTU2": FHIRDSTU2, "dstu2": FHIRDSTU2, "R2": FHIRDSTU2,
		"4.3.0": FHIRR4B, "R4B": FHIRR4B, "5.0.0": FHIRR5, "R5": FHIRR5,
		"": "", "2.0": "", "4": "", "4.01": "", "40.1": "", "3.1": "", "1.1.0": "", "R6": "", "v": "", "FHIR": "",
	}
	for in, want := range tests {
		if got := FHIRFamily(in); got != want {
			t.Errorf("FHIRFamily(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFHIREndpointFor(t *testing.T) {
	ep := func(id, version, status string) Endpoint {
		return Endpoint{ID: id, Transaction: "FHIR REST", Version: version, Status: status, Address: "https://fhir.example.test/" + id}
	}
	mixed := []Endpoint{
		ep("dstu2", "1.0.2", "active"),
		ep("unknown", "", "active"),
		ep("stu3", "3.0.1", "active"),
		ep("r4-suspended", "4.0.1", "suspended"),
		ep("r4-nostatus", "R4", ""),
		ep("r4", "4.0.1", "active"),
		ep("r5", "5.0.0", "active"),
		{ID: "xca", ConnectionType: "ihe-xca", Version: "4.0.1", Status: "active", Address: "https://gw.example.test/xca"},
	}
	tests := []struct {
		name   string
		eps    []Endpoint
		prefs  []string
		wantID string
	}{
		{name: "default: R4, active first", eps: mixed, wantID: "r4"},
		{name: "empty prefs are the default", eps: mixed, prefs: []string{}, wantID: "r4"},
		{name: "STU3 first", eps: mixed, prefs: []string{"STU3", "R4"}, wantID: "stu3"},
		{name: "by version string", eps: mixed, prefs: []string{"1.0.2"}, wantID: "dstu2"},
		{name: "case-insensitive families", eps: mixed, prefs: []string{"dstu2"}, wantID: "dstu2"},
		{name: "R5 only", eps: mixed, prefs: []string{"R5"}, wantID: "r5"},
		{name: "unknown preferences are ignored", eps: mixed, prefs: []string{"R7", "nonsense", "STU3"}, wantID: "stu3"},
		{name: "no status before suspended", eps: []Endpoint{ep("a", "4.0.1", "suspended"), ep("b", "4.0.1", "")}, wantID: "b"},
		{name: "suspended R4 before active STU3", eps: []Endpoint{ep("s", "3.0.2", "active"), ep("r", "4.0.1", "suspended")}, wantID: "r"},
		{name: "preferred family missing: other known families before unknown", eps: []Endpoint{ep("u", "", "active"), ep("r5", "5.0.0", "active")}, prefs: []string{"R4"}, wantID: "r5"},
		{name: "families not preferred: document order", eps: []Endpoint{ep("s", "3.0.2", "active"), ep("d", "1.0.2", "active")}, prefs: []string{"R4"}, wantID: "s"},
		{name: "unknown version only", eps: []Endpoint{ep("u", "draft", "active")}, wantID: "u"},
		{name: "off endpoints never", eps: []Endpoint{ep("r", "4.0.1", "off")}, prefs: []string{"R4"}},
		{name: "IHE endpoints never, whatever their version", eps: mixed[7:], prefs: []string{"R4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := &Organization{OID: "1.2.3", Endpoints: tt.eps}
			got, ok := org.FHIREndpointFor(tt.prefs)
			if ok != (tt.wantID != "") || got.ID != tt.wantID {
				t.Errorf("FHIREndpointFor(%q) = %q, %v; want %q", tt.prefs, got.ID, ok, tt.wantID)
			}
		})
	}
	var nilOrg *Organization
	if _, ok := nilOrg.FHIREndpointFor([]string{"R4"}); ok {
		t.Error("nil Organization has an endpoint")
	}
	if got := DefaultFHIRVersions(); len(got) != 3 || got[0] != "R4" || got[1] != "STU3" || got[2] != "DSTU2" {
		t.Errorf("DefaultFHIRVersions() = %q", got)
	}
	DefaultFHIRVersions()[0] = "changed"
	if DefaultFHIRVersions()[0] != "R4" {
		t.Error("DefaultFHIRVersions shares its slice")
	}
}

func TestParsersFillFHIRVersion(t *testing.T) {
	org, err := ParseR4Organization(readTestdata(t, "sphd-r4-organization.json"))
	if err != nil {
		t.Fatal(err)
	}
	stu3, err := ParseSTU3OrganizationXML(readTestdata(t, "cerner-stu3-organization.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Organization{org, stu3} {
		for _, ep := range o.Endpoints {
			want := ""
			if isFHIRKind(&ep) {
				want = FHIRFamily(ep.Version)
			}
			if ep.FHIRVersion != want {
				t.Errorf("%s endpoint %s (version %q): FHIRVersion %q, want %q", o.OID, ep.ID, ep.Version, ep.FHIRVersion, want)
			}
		}
	}
	if ep, _ := org.FHIREndpoint(); ep.FHIRVersion != FHIRR4 {
		t.Errorf("R4 fixture's FHIR endpoint has FHIRVersion %q", ep.FHIRVersion)
	}
}
