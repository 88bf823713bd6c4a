package sandbox

import (
	"net/http"
)

// oauthURIsURL is the SMART extension listing OAuth endpoints in a
// CapabilityStatement's rest.security.
const oauthURIsURL = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

// carequalityOAuthURIsURL is Cerner's separate extension for the
// Carequality token URL and registration endpoint.
const carequalityOAuthURIsURL = "https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris"

// capabilityDate is the CapabilityStatement's fixed date.
const capabilityDate = "2024-01-15T12:00:00Z"

// R4 JSON shapes of the CapabilityStatement.
type (
	capabilityStatement struct {
		ResourceType   string             `json:"resourceType"`
		Status         string             `json:"status"`
		Date           string             `json:"date"`
		Publisher      string             `json:"publisher"`
		Kind           string             `json:"kind"`
		Software       capSoftware        `json:"software"`
		Implementation capImplementation  `json:"implementation"`
		FHIRVersion    string             `json:"fhirVersion"`
		Format         []string           `json:"format"`
		Rest           []capabilityServer `json:"rest"`
	}

	capSoftware struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}

	capImplementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	}

	capabilityServer struct {
		Mode     string        `json:"mode"`
		Security capSecurity   `json:"security"`
		Resource []capResource `json:"resource"`
		// Operation lists the system-level operations ($export).
		Operation []capOperation `json:"operation,omitempty"`
	}

	capOperation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}

	capSecurity struct {
		Extension []uriExtension `json:"extension"`
		CORS      bool           `json:"cors"`
		Service   []codeable     `json:"service"`
	}

	// uriExtension is a complex extension or one whose value is a URI.
	uriExtension struct {
		URL       string         `json:"url"`
		Extension []uriExtension `json:"extension,omitempty"`
		ValueURI  string         `json:"valueUri,omitempty"`
	}

	capResource struct {
		Type        string           `json:"type"`
		Interaction []capInteraction `json:"interaction"`
		SearchParam []capSearchParam `json:"searchParam"`
	}

	capInteraction struct {
		Code string `json:"code"`
	}

	capSearchParam struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
)

// handleMetadata serves GET {FHIRBase}/metadata: no token is needed.
func (s *Sandbox) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, r, http.MethodGet)
		return
	}
	if !acceptsJSON(r, lenient) {
		writeNotAcceptable(w, lenient)
		return
	}
	writeJSON(w, http.StatusOK, mediaFHIRJSON, s.capabilityStatement())
}

// capabilityStatement advertises the SMART token URL in oauth-uris and
// the Carequality token URL with its registration endpoint in Cerner's
// carequality-oauth-uris extension (its 2020 shape); a Carequality client
// must pick the Carequality one.
func (s *Sandbox) capabilityStatement() capabilityStatement {
	readSearch := []capInteraction{{Code: "read"}, {Code: "search-type"}}
	return capabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         capabilityDate,
		Publisher:    "cqgate",
		Kind:         "instance",
		Software:     capSoftware{Name: "cqgate sandbox"},
		Implementation: capImplementation{
			Description: "cqgate sandbox tenant (Cerner-style FHIR R4 server for development and tests)",
			URL:         s.FHIRBase,
		},
		FHIRVersion: "4.0.1",
		Format:      []string{"json"},
		Rest: []capabilityServer{{
			Mode: "server",
			Security: capSecurity{
				Extension: []uriExtension{{
					URL: oauthURIsURL,
					Extension: []uriExtension{
						{URL: "token", ValueURI: s.PlainTokenURL},
						{URL: "authorize", ValueURI: s.authorizeURL},
					},
				}, {
					// Cerner's 2020 shape: the Carequality token URL and
					// its UDAP registration endpoint in their own
					// extension.
					URL: carequalityOAuthURIsURL,
					Extension: []uriExtension{
						{URL: "token", ValueURI: s.TokenURL},
						{URL: "register", ValueURI: s.RegisterURL},
					},
				}},
				CORS: true,
				Service: []codeable{{
					Coding: []coding{{
						System:  "http://terminology.hl7.org/CodeSystem/restful-security-service",
						Code:    "SMART-on-FHIR",
						Display: "SMART-on-FHIR",
					}},
					Text: "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
				}},
			},
			Resource: []capResource{
				{
					Type:        "Patient",
					Interaction: readSearch,
					SearchParam: []capSearchParam{{Name: "_id", Type: "token"}, {Name: "name", Type: "string"}},
				},
				{
					Type:        "Observation",
					Interaction: readSearch,
					SearchParam: []capSearchParam{{Name: "patient", Type: "reference"}, {Name: "subject", Type: "reference"}},
				},
			},
			Operation: []capOperation{{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}},
		}},
	}
}
