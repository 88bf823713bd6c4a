package sandbox

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Sequoia (sphd) R4 directory vocabulary.
const (
	sphdTransactionURL   = "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction"
	sphdVersionURL       = "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version"
	sphdTransactionCodes = "https://sequoiaproject.org/fhir/sphd/CodeSystem/TransactionCodes"
	sphdIdentifierCodes  = "https://sequoiaproject.org/fhir/sphd/CodeSystem/SequoiaIdentifierCodes"
	sphdOrganizationType = "https://sequoiaproject.org/fhir/sphd/CodeSystem/OrganizationType"
	endpointConnTypes    = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	ihePayloadTypes      = "urn:oid:1.3.6.1.4.1.19376.1.2.3"
)

// organizationName is the sandbox organization's name in the directory.
const organizationName = "cqgate Sandbox Hospital"

// fakeSOAPHost is where the organization's IHE SOAP endpoints claim to
// be; .invalid (RFC 2606) never resolves.
const fakeSOAPHost = "https://xca.sandbox.cqgate.invalid"

// directoryLastUpdated is the organization's fixed meta.lastUpdated.
const directoryLastUpdated = "2024-01-15T12:00:00Z"

// R4 JSON shapes of the directory answer.
type (
	organization struct {
		ResourceType string       `json:"resourceType"`
		ID           string       `json:"id"`
		Meta         meta         `json:"meta"`
		Contained    []endpoint   `json:"contained"`
		Identifier   []identifier `json:"identifier"`
		Active       bool         `json:"active"`
		Type         []codeable   `json:"type"`
		Name         string       `json:"name"`
		Address      []address    `json:"address"`
		Endpoint     []reference  `json:"endpoint"`
	}

	endpoint struct {
		ResourceType    string        `json:"resourceType"`
		ID              string        `json:"id"`
		Extension       []extensionCC `json:"extension"`
		Status          string        `json:"status"`
		ConnectionType  coding        `json:"connectionType"`
		Name            string        `json:"name"`
		PayloadType     []codeable    `json:"payloadType"`
		PayloadMimeType []string      `json:"payloadMimeType"`
		Address         string        `json:"address"`
	}

	meta struct {
		VersionID   string `json:"versionId,omitempty"`
		LastUpdated string `json:"lastUpdated"`
	}

	identifier struct {
		Use    string    `json:"use,omitempty"`
		Type   *codeable `json:"type,omitempty"`
		System string    `json:"system"`
		Value  string    `json:"value"`
	}

	coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}

	codeable struct {
		Coding []coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}

	// extensionCC is an extension whose value is a string or a
	// CodeableConcept.
	extensionCC struct {
		URL                  string    `json:"url"`
		ValueString          string    `json:"valueString,omitempty"`
		ValueCodeableConcept *codeable `json:"valueCodeableConcept,omitempty"`
	}

	address struct {
		Use        string   `json:"use,omitempty"`
		Line       []string `json:"line,omitempty"`
		City       string   `json:"city,omitempty"`
		State      string   `json:"state,omitempty"`
		PostalCode string   `json:"postalCode,omitempty"`
		Country    string   `json:"country,omitempty"`
	}

	reference struct {
		Reference string `json:"reference"`
		Type      string `json:"type,omitempty"`
	}
)

// handleOrganization serves GET {DirectoryURL}/Organization/{oid}.
func (s *Sandbox) handleOrganization(w http.ResponseWriter, r *http.Request) {
	if !s.directoryRequestOK(w, r) {
		return
	}
	oid := r.PathValue("oid")
	if oid != s.OID {
		writeOutcome(w, http.StatusNotFound, issueNotFound, "Organization/"+oid+" is not in the sandbox directory")
		return
	}
	writeJSON(w, http.StatusOK, mediaFHIRJSON, s.organization())
}

// directoryKeyOK reports whether the request carries the API key, in the
// Authorization header or the _apiKey query parameter.
func (s *Sandbox) directoryKeyOK(r *http.Request) bool {
	var got string
	if scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "api-key") {
		got = strings.TrimSpace(key)
	} else {
		got = r.URL.Query().Get("_apiKey")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.APIKey)) == 1
}

// organization is the sandbox's directory entry: two IHE SOAP endpoints
// (XCPD, XCA) and one FHIR R4 endpoint at FHIRBase, contained and
// referenced, in the Sequoia R4 directory shape.
func (s *Sandbox) organization() organization {
	urnOID := "urn:oid:" + s.OID
	endpoints := []endpoint{
		soapEndpoint("xcpd", "ihe-xcpd", "XCPD ITI-55", "Patient Discovery", fakeSOAPHost+"/xcpd/iti55"),
		soapEndpoint("xca-query", "ihe-xca", "XCA ITI-38", "Query for Documents", fakeSOAPHost+"/xca/iti38"),
		{
			ResourceType: "Endpoint",
			ID:           "fhir-r4",
			Extension: []extensionCC{
				transactionExtension("FHIR REST"),
				{URL: sphdVersionURL, ValueString: "4.0.1"},
			},
			Status:          "active",
			ConnectionType:  coding{System: endpointConnTypes, Code: "hl7-fhir-rest"},
			Name:            "FHIR R4",
			PayloadType:     []codeable{{Coding: []coding{{System: "http://hl7.org/fhir/resource-types", Code: "Patient"}}}},
			PayloadMimeType: []string{mediaFHIRJSON},
			Address:         s.FHIRBase,
		},
	}
	refs := make([]reference, len(endpoints))
	for i, ep := range endpoints {
		refs[i] = reference{Reference: "#" + ep.ID, Type: "Endpoint"}
	}
	return organization{
		ResourceType: "Organization",
		ID:           s.OID,
		Meta:         meta{VersionID: "1", LastUpdated: directoryLastUpdated},
		Contained:    endpoints,
		Identifier: []identifier{{
			Use:    "official",
			Type:   &codeable{Coding: []coding{{System: sphdIdentifierCodes, Code: "HCID"}}},
			System: "urn:ietf:rfc:3986",
			Value:  urnOID,
		}},
		Active: true,
		Type:   []codeable{{Coding: []coding{{System: sphdOrganizationType, Code: "Implementer"}}}},
		Name:   organizationName,
		Address: []address{{
			Use: "work", Line: []string{"1 Sandbox Way"}, City: "Kansas City",
			State: "MO", PostalCode: "64106", Country: "US",
		}},
		Endpoint: refs,
	}
}

// soapEndpoint is an IHE SOAP endpoint of the organization.
func soapEndpoint(id, connType, transaction, name, addr string) endpoint {
	return endpoint{
		ResourceType: "Endpoint",
		ID:           id,
		Extension: []extensionCC{
			transactionExtension(transaction),
			{URL: sphdVersionURL, ValueString: "2.0"},
		},
		Status:          "active",
		ConnectionType:  coding{System: endpointConnTypes, Code: connType},
		Name:            name,
		PayloadType:     []codeable{{Coding: []coding{{System: ihePayloadTypes, Code: "urn:ihe:pcc:xphr:2007", Display: "Personal Health Records"}}}},
		PayloadMimeType: []string{"application/soap+xml"},
		Address:         addr,
	}
}

// transactionExtension is the sphd Transaction extension.
func transactionExtension(code string) extensionCC {
	return extensionCC{
		URL: sphdTransactionURL,
		ValueCodeableConcept: &codeable{Coding: []coding{{
			System: sphdTransactionCodes, Code: code,
		}}},
	}
}

// directoryRequestOK answers a directory request that is not a GET or
// HEAD, lacks the API key or does not accept JSON, and reports whether
// it may be served.
func (s *Sandbox) directoryRequestOK(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, r, http.MethodGet)
		return false
	}
	if !s.directoryKeyOK(r) {
		writeOutcome(w, http.StatusUnauthorized, issueLogin,
			`a valid directory API key is required: send "Authorization: api-key <key>" or _apiKey=<key>`)
		return false
	}
	if !acceptsJSON(r, lenient) {
		writeNotAcceptable(w, lenient)
		return false
	}
	return true
}
