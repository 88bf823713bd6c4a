package fhirstub

// The FHIR documents the stub serves, as plain maps: the benchmark needs
// their shape, not a FHIR model.

const (
	sphd          = "https://sequoiaproject.org/fhir/sphd/"
	extOAuthURIs  = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	connTypeCodes = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
)

type obj = map[string]any

// organization is an R4 directory entry in the sphd profile's shape with
// one active FHIR R4 endpoint at fhirBase.
func organization(oid, fhirBase string) obj {
	return obj{
		"resourceType": "Organization",
		"id":           oid,
		"meta":         obj{"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"},
		"identifier": []any{obj{
			"use":    "official",
			"type":   obj{"coding": []any{obj{"system": sphd + "CodeSystem/SequoiaIdentifierCodes", "code": "HCID"}}},
			"system": "urn:ietf:rfc:3986",
			"value":  "urn:oid:" + oid,
		}},
		"active": true,
		"type":   []any{obj{"coding": []any{obj{"system": sphd + "CodeSystem/OrganizationType", "code": "Implementer"}}}},
		"name":   "Benchmark Health " + oid,
		"contained": []any{obj{
			"resourceType": "Endpoint",
			"id":           "fhir-r4",
			"extension": []any{
				obj{"url": sphd + "StructureDefinition/Transaction", "valueCodeableConcept": obj{
					"coding": []any{obj{"system": sphd + "CodeSystem/TransactionCodes", "code": "FHIR REST"}},
				}},
				obj{"url": sphd + "StructureDefinition/Version", "valueString": "4.0.1"},
			},
			"status":          "active",
			"connectionType":  obj{"system": connTypeCodes, "code": "hl7-fhir-rest"},
			"name":            "FHIR R4",
			"payloadMimeType": []any{"application/fhir+json"},
			"address":         fhirBase,
		}},
		"endpoint": []any{obj{"reference": "#fhir-r4", "type": "Endpoint"}},
	}
}

// capabilityStatement advertises tokenURL as both the SMART token URL
// and Cerner's carequality-token.
func capabilityStatement(tokenURL string) obj {
	return obj{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2025-01-01T00:00:00Z",
		"kind":         "instance",
		"fhirVersion":  "4.0.1",
		"format":       []any{"application/fhir+json"},
		"rest": []any{obj{
			"mode": "server",
			"security": obj{
				"extension": []any{obj{
					"url": extOAuthURIs,
					"extension": []any{
						obj{"url": "token", "valueUri": tokenURL},
						obj{"url": "carequality-token", "valueUri": tokenURL},
					},
				}},
				"service": []any{obj{"coding": []any{obj{
					"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
				}}}},
			},
			"resource": []any{obj{"type": "Patient", "interaction": []any{obj{"code": "read"}}}},
		}},
	}
}

// patientResource is a made-up Patient with the given id; pad lengthens
// its narrative.
func patientResource(id, pad string) obj {
	return obj{
		"resourceType": "Patient",
		"id":           id,
		"meta":         obj{"versionId": "7", "lastUpdated": "2025-02-03T04:05:06.000Z"},
		"text": obj{
			"status": "generated",
			"div":    `<div xmlns="http://www.w3.org/1999/xhtml"><p>Quinn Example-Bench, born 1970-01-02</p>` + pad + `</div>`,
		},
		"identifier": []any{
			obj{"use": "usual", "type": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}}, "text": "MRN"}, "system": "urn:oid:2.999.7.1.99", "value": "MRN-000451"},
			obj{"use": "official", "system": "http://hl7.org/fhir/sid/us-ssn", "value": "000-00-0000"},
		},
		"active": true,
		"name": []any{
			obj{"use": "official", "text": "Quinn Example-Bench", "family": "Example-Bench", "given": []any{"Quinn", "R."}},
			obj{"use": "nickname", "given": []any{"Q"}},
		},
		"telecom": []any{
			obj{"system": "phone", "value": "555-0100", "use": "home"},
			obj{"system": "email", "value": "quinn@example.test", "use": "home"},
		},
		"gender":    "other",
		"birthDate": "1970-01-02",
		"address": []any{obj{
			"use": "home", "line": []any{"100 Benchmark Way", "Apt 2"}, "city": "Loopback", "state": "MO",
			"postalCode": "65000", "country": "USA", "period": obj{"start": "2010-01-01"},
		}},
		"maritalStatus": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "U", "display": "unmarried"}}},
		"communication": []any{obj{"language": obj{"coding": []any{obj{"system": "urn:ietf:bcp:47", "code": "en-US"}}}, "preferred": true}},
		"contact": []any{obj{
			"relationship": []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C"}}}},
			"name":         obj{"family": "Example-Bench", "given": []any{"Casey"}},
			"telecom":      []any{obj{"system": "phone", "value": "555-0101"}},
		}},
		"generalPractitioner":  []any{obj{"reference": "Practitioner/pr-1", "display": "Dr. Ada Sample"}},
		"managingOrganization": obj{"reference": "Organization/org-1", "display": "Benchmark Health"},
	}
}
