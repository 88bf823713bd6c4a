package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// directoryServer answers as the Carequality directories do: R4 JSON under
// /fhir (API key in an "Authorization: api-key" header) and STU3 XML under
// /fhir-stu3/1.0.1 (apikey and _format=xml in the query). It knows one
// organization, Cerner's connectathon OID, with SOAP endpoints and one
// FHIR REST endpoint.
type directoryServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newDirectoryServer(t *testing.T, fhirBase string) *directoryServer {
	d := &directoryServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/Organization/{oid}", func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		if r.Header.Get("Authorization") != "api-key "+dirAPIKey {
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"security"}]}`, http.StatusForbidden)
			return
		}
		if r.PathValue("oid") != cernerOID {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, strings.ReplaceAll(r4Organization, "{{FHIR_BASE}}", fhirBase))
	})
	mux.HandleFunc("GET /fhir-stu3/1.0.1/Organization/{oid}", func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		q := r.URL.Query()
		if q.Get("apikey") != dirAPIKey || q.Get("_format") != "xml" {
			http.Error(w, "bad key or format", http.StatusForbidden)
			return
		}
		if r.PathValue("oid") != cernerOID {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+xml")
		fmt.Fprint(w, strings.ReplaceAll(stu3Organization, "{{FHIR_BASE}}", fhirBase))
	})
	d.Server = httptest.NewServer(mux)
	t.Cleanup(d.Close)
	return d
}

// r4Organization is in the shape of the Sequoia/Carequality R4 directory
// (sphd): id = OID, HCID identifier, contained Endpoints with the
// Transaction and Version extensions.
const r4Organization = `{
  "resourceType": "Organization",
  "id": "2.16.840.1.113883.3.13.1",
  "meta": {"versionId": "7", "lastUpdated": "2026-10-01T12:00:00Z"},
  "contained": [
    {"resourceType": "Endpoint", "id": "XCPD-ITI-55", "status": "active",
     "extension": [{"url": "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction",
                    "valueCodeableConcept": {"coding": [{"system": "https://sequoiaproject.org/fhir/sphd/CodeSystem/TransactionCodes", "code": "XCPD ITI-55"}]}},
                   {"url": "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version", "valueString": "2.0"}],
     "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "ihe-xcpd"},
     "name": "Cerner XCPD Responding Gateway", "payloadType": [{"text": "none"}],
     "address": "https://soap.example.cerner.com/xcpd"},
    {"resourceType": "Endpoint", "id": "XCA-ITI-38", "status": "active",
     "extension": [{"url": "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction",
                    "valueCodeableConcept": {"coding": [{"code": "XCA ITI-38"}]}}],
     "connectionType": {"code": "ihe-xca"}, "name": "Cerner XCA Query", "payloadType": [{"text": "none"}],
     "address": "https://soap.example.cerner.com/xca/query"},
    {"resourceType": "Endpoint", "id": "FHIR-R4", "status": "active",
     "extension": [{"url": "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Transaction",
                    "valueCodeableConcept": {"coding": [{"code": "FHIR REST"}]}},
                   {"url": "https://sequoiaproject.org/fhir/sphd/StructureDefinition/Version", "valueString": "4.0.1"}],
     "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
     "name": "Cerner FHIR R4", "payloadType": [{"text": "none"}], "payloadMimeType": ["application/fhir+json"],
     "address": "{{FHIR_BASE}}"}
  ],
  "identifier": [{"use": "official",
                  "type": {"coding": [{"system": "https://sequoiaproject.org/fhir/sphd/CodeSystem/SequoiaIdentifierCodes", "code": "HCID"}]},
                  "system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.3.13.1"}],
  "active": true,
  "type": [{"coding": [{"system": "https://sequoiaproject.org/fhir/sphd/CodeSystem/OrganizationType", "code": "Implementer"}]}],
  "name": "Cerner Connectathon",
  "endpoint": [{"reference": "#XCPD-ITI-55"}, {"reference": "#XCA-ITI-38"}, {"reference": "#FHIR-R4"}]
}`

// stu3Organization is in the shape of the legacy STU3 directory's XML
// (the EndpointMain complex extension with relative sub-extension urls).
const stu3Organization = `<?xml version="1.0" encoding="UTF-8"?>
<Organization xmlns="http://hl7.org/fhir">
  <id value="2.16.840.1.113883.3.13.1"/>
  <meta><versionId value="3"/><lastUpdated value="2026-10-01T12:00:00.000+00:00"/></meta>
  <contained>
    <Endpoint>
      <id value="XCPD-ITI-55"/>
      <extension url="https://sequoiaproject.org/StructureDefinition/Endpoint/main/1.0.0">
        <extension url="Transaction"><valueString value="XCPD ITI-55"/></extension>
        <extension url="Actor"><valueString value="Responding Gateway"/></extension>
        <extension url="Version"><valueString value="2.0"/></extension>
      </extension>
      <identifier><type><text value="HCID"/></type><value value="urn:oid:2.16.840.1.113883.3.13.1"/></identifier>
      <status value="active"/>
      <connectionType><system value="http://hl7.org/fhir/endpoint-connection-type"/><code value="ihe-xcpd"/></connectionType>
      <name value="Cerner XCPD"/>
      <payloadType><coding><system value="urn:oid:1.3.6.1.4.1.19376.1.2.3"/><code value="urn:ihe:iti:xds-b:2007"/></coding></payloadType>
      <address value="https://soap.example.cerner.com/xcpd"/>
    </Endpoint>
  </contained>
  <contained>
    <Endpoint>
      <id value="FHIR-REST"/>
      <extension url="https://sequoiaproject.org/StructureDefinition/Endpoint/main/1.0.0">
        <extension url="Transaction"><valueString value="FHIR REST"/></extension>
        <extension url="Version"><valueString value="4.0.1"/></extension>
      </extension>
      <status value="active"/>
      <connectionType><system value="http://hl7.org/fhir/endpoint-connection-type"/><code value="hl7-fhir-rest"/></connectionType>
      <name value="Cerner FHIR"/>
      <payloadType><text value="none"/></payloadType>
      <address value="{{FHIR_BASE}}"/>
    </Endpoint>
  </contained>
  <identifier>
    <use value="official"/>
    <system value="http://www.hl7.org/oid/"/>
    <value value="urn:oid:2.16.840.1.113883.3.13.1"/>
  </identifier>
  <active value="true"/>
  <type><coding><system value="http://hl7.org/fhir/organization-type"/><code value="Implementer"/></coding></type>
  <name value="Cerner Connectathon"/>
</Organization>`
