package sandbox_test

import (
	"net/http"
	"testing"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
)

// directoryOrg is the part of the directory's Organization the tests read.
type directoryOrg struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Identifier []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	Contained []struct {
		ResourceType   string `json:"resourceType"`
		ID             string `json:"id"`
		Status         string `json:"status"`
		Address        string `json:"address"`
		ConnectionType struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"connectionType"`
		PayloadMimeType []string `json:"payloadMimeType"`
		Extension       []struct {
			URL                  string `json:"url"`
			ValueString          string `json:"valueString"`
			ValueCodeableConcept *struct {
				Coding []struct {
					Code string `json:"code"`
				} `json:"coding"`
			} `json:"valueCodeableConcept"`
		} `json:"extension"`
	} `json:"contained"`
	Endpoint []struct {
		Reference string `json:"reference"`
	} `json:"endpoint"`
}

func TestDirectory(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	org := sb.DirectoryURL + "/Organization/" + sandbox.OID
	accept := "application/fhir+json"
	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		status int
	}{
		{"no key", http.MethodGet, org, http.Header{"Accept": {accept}}, http.StatusUnauthorized},
		{"wrong key in header", http.MethodGet, org, http.Header{"Accept": {accept}, "Authorization": {"api-key nope"}}, http.StatusUnauthorized},
		{"wrong key in query", http.MethodGet, org + "?_apiKey=nope", http.Header{"Accept": {accept}}, http.StatusUnauthorized},
		{"bearer instead of api-key", http.MethodGet, org, http.Header{"Authorization": {"Bearer " + sb.APIKey}}, http.StatusUnauthorized},
		{"key in header", http.MethodGet, org, http.Header{"Accept": {accept}, "Authorization": {"api-key " + sb.APIKey}}, http.StatusOK},
		{"key in query", http.MethodGet, org + "?_apiKey=" + sb.APIKey, http.Header{"Accept": {accept}}, http.StatusOK},
		{"no Accept is fine", http.MethodGet, org + "?_apiKey=" + sb.APIKey, nil, http.StatusOK},
		{"unknown OID", http.MethodGet, sb.DirectoryURL + "/Organization/2.999.9.9", http.Header{"Authorization": {"api-key " + sb.APIKey}}, http.StatusNotFound},
		{"XML only", http.MethodGet, org, http.Header{"Accept": {"application/fhir+xml"}, "Authorization": {"api-key " + sb.APIKey}}, http.StatusNotAcceptable},
		{"POST", http.MethodPost, org, http.Header{"Authorization": {"api-key " + sb.APIKey}}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, tt.method, tt.url, tt.header, nil)
			if tt.status != http.StatusOK {
				wantOutcome(t, r, tt.status)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			checkOrganization(t, sb, r)
		})
	}
}

// checkOrganization checks the Sequoia R4 shape of the sandbox entry.
func checkOrganization(t *testing.T, sb *sandbox.Sandbox, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var o directoryOrg
	r.decode(t, &o)
	if o.ResourceType != "Organization" || o.ID != sandbox.OID || !o.Active ||
		o.Name != "cqgate Sandbox Hospital" || o.Meta.LastUpdated == "" {
		t.Errorf("organization header fields wrong: %s", r.body)
	}
	if len(o.Identifier) == 0 || o.Identifier[0].System != "urn:ietf:rfc:3986" || o.Identifier[0].Value != "urn:oid:"+sandbox.OID {
		t.Errorf("identifier = %+v", o.Identifier)
	}

	contained := map[string]bool{}
	transactions := map[string]string{} // transaction -> connection type
	for _, ep := range o.Contained {
		contained["#"+ep.ID] = true
		var tx, version string
		for _, x := range ep.Extension {
			switch x.URL {
			case "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction":
				if x.ValueCodeableConcept != nil && len(x.ValueCodeableConcept.Coding) > 0 {
					tx = x.ValueCodeableConcept.Coding[0].Code
				}
			case "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version":
				version = x.ValueString
			}
		}
		transactions[tx] = ep.ConnectionType.Code
		if tx == "FHIR REST" {
			if ep.Address != sb.FHIRBase || ep.Status != "active" || version != "4.0.1" ||
				ep.ConnectionType.System != "http://terminology.hl7.org/CodeSystem/endpoint-connection-type" ||
				len(ep.PayloadMimeType) != 1 || ep.PayloadMimeType[0] != "application/fhir+json" {
				t.Errorf("FHIR endpoint = %+v (version %q)", ep, version)
			}
		}
	}
	want := map[string]string{"XCPD ITI-55": "ihe-xcpd", "XCA ITI-38": "ihe-xca", "FHIR REST": "hl7-fhir-rest"}
	for tx, ct := range want {
		if transactions[tx] != ct {
			t.Errorf("endpoint with Transaction %q has connectionType %q, want %q", tx, transactions[tx], ct)
		}
	}
	if len(o.Endpoint) != len(o.Contained) {
		t.Errorf("%d endpoint references for %d contained endpoints", len(o.Endpoint), len(o.Contained))
	}
	for _, ref := range o.Endpoint {
		if !contained[ref.Reference] {
			t.Errorf("endpoint reference %q names no contained resource", ref.Reference)
		}
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{})
	r := do(t, http.MethodGet, sb.FHIRBase+"/metadata", http.Header{"Accept": {"application/fhir+json"}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var cs struct {
		ResourceType string   `json:"resourceType"`
		FHIRVersion  string   `json:"fhirVersion"`
		Format       []string `json:"format"`
		Rest         []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
				Service []struct {
					Coding []struct {
						Code string `json:"code"`
					} `json:"coding"`
				} `json:"service"`
			} `json:"security"`
		} `json:"rest"`
	}
	r.decode(t, &cs)
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || len(cs.Format) == 0 || cs.Format[0] != "json" {
		t.Errorf("CapabilityStatement header wrong: %s", r.body)
	}
	if len(cs.Rest) == 0 {
		t.Fatalf("no rest: %s", r.body)
	}
	sec := cs.Rest[0].Security
	if len(sec.Service) == 0 || len(sec.Service[0].Coding) == 0 || sec.Service[0].Coding[0].Code != "SMART-on-FHIR" {
		t.Errorf("security.service = %+v, want SMART-on-FHIR", sec.Service)
	}
	uris := map[string]string{}
	for _, x := range sec.Extension {
		prefix := ""
		switch x.URL {
		case "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris":
		case "https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris":
			prefix = "carequality-"
		default:
			continue
		}
		for _, sub := range x.Extension {
			uris[prefix+sub.URL] = sub.ValueURI
		}
	}
	want := map[string]string{
		"token":                sb.PlainTokenURL,
		"authorize":            sb.URL + "/tenants/" + sandbox.TenantID + "/personas/provider/authorize",
		"carequality-token":    sb.TokenURL,
		"carequality-register": sb.RegisterURL,
	}
	for k, v := range want {
		if uris[k] != v {
			t.Errorf("CapabilityStatement %s = %q, want %q", k, uris[k], v)
		}
	}

	// Discovery needs no token, but like every FHIR call it refuses XML.
	r = do(t, http.MethodGet, sb.FHIRBase+"/metadata", http.Header{"Accept": {"application/fhir+xml"}}, nil)
	wantOutcome(t, r, http.StatusNotAcceptable)
}
