package discovery

import (
	"strings"
	"testing"
)

const (
	tenant        = "0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"
	cernerToken   = "https://authorization.sandboxcerner.com/tenants/" + tenant + "/protocols/oauth2/profiles/smart-v1/token"
	cernerCQToken = "https://fhir-ehr.stagingcerner.com/beta/" + tenant + "/Authorization/token"
)

// cerner2019 is a CapabilityStatement in the shape Cerner's Dec-2019
// Carequality connectathon server advertised: standard oauth-uris with
// both token and carequality-token.
const cerner2019 = `{
  "resourceType": "CapabilityStatement",
  "status": "active",
  "date": "2019-12-02T19:27:24Z",
  "publisher": "Cerner",
  "kind": "instance",
  "software": {"name": "Cerner Millennium"},
  "implementation": {"description": "Cerner Connectathon", "url": "https://fhir-ehr.stagingcerner.com/beta/` + tenant + `"},
  "fhirVersion": "4.0.0",
  "format": ["json"],
  "rest": [
    {
      "mode": "server",
      "security": {
        "extension": [
          {
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
              {"url": "token", "valueUri": "` + cernerToken + `"},
              {"url": "authorize", "valueUri": "https://authorization.sandboxcerner.com/tenants/` + tenant + `/protocols/oauth2/profiles/smart-v1/personas/provider/authorize"},
              {"url": "revoke", "valueUri": "https://authorization.sandboxcerner.com/tenants/` + tenant + `/protocols/oauth2/profiles/smart-v1/token/revoke"},
              {"url": "carequality-token", "valueUri": "` + cernerCQToken + `"}
            ]
          }
        ],
        "cors": true,
        "service": [
          {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}], "text": "OAuth 2.0"}
        ]
      },
      "resource": [
        {"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]}
      ]
    }
  ]
}`

func TestParseCapabilityStatement(t *testing.T) {
	tests := []struct {
		name       string
		data       string
		want       OAuthURIs
		wantURL    string
		wantSource Source
	}{
		{
			name: "Cerner 2019: token and carequality-token",
			data: cerner2019,
			want: OAuthURIs{
				Token:            cernerToken,
				CarequalityToken: cernerCQToken,
				Authorize:        "https://authorization.sandboxcerner.com/tenants/" + tenant + "/protocols/oauth2/profiles/smart-v1/personas/provider/authorize",
				Revoke:           "https://authorization.sandboxcerner.com/tenants/" + tenant + "/protocols/oauth2/profiles/smart-v1/token/revoke",
			},
			wantURL:    cernerCQToken,
			wantSource: SourceCarequalityToken,
		},
		{
			name: "token only, all sub-extensions",
			data: `{"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": {"extension": [
				{"url": "http://example.test/other", "valueBoolean": true},
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [
					{"url": "token", "valueUri": "https://auth.example.test/token"},
					{"url": "authorize", "valueUri": "https://auth.example.test/authorize"},
					{"url": "register", "valueUri": "https://auth.example.test/register"},
					{"url": "manage", "valueUri": "https://auth.example.test/manage"},
					{"url": "introspect", "valueUri": "https://auth.example.test/introspect"},
					{"url": "revoke", "valueUri": "https://auth.example.test/revoke"},
					{"url": "unknown-thing", "valueUri": "https://auth.example.test/unknown"}
				]}
			]}}]}`,
			want: OAuthURIs{
				Token:      "https://auth.example.test/token",
				Authorize:  "https://auth.example.test/authorize",
				Register:   "https://auth.example.test/register",
				Manage:     "https://auth.example.test/manage",
				Introspect: "https://auth.example.test/introspect",
				Revoke:     "https://auth.example.test/revoke",
			},
			wantURL:    "https://auth.example.test/token",
			wantSource: SourceToken,
		},
		{
			name: "valueUrl and valueString variants",
			data: `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [
					{"url": "token", "valueUrl": "https://auth.example.test/token"},
					{"url": "carequality-token", "valueString": " https://fhir.example.test/Authorization/token "}
				]}
			]}}]}`,
			want: OAuthURIs{
				Token:            "https://auth.example.test/token",
				CarequalityToken: "https://fhir.example.test/Authorization/token",
			},
			wantURL:    "https://fhir.example.test/Authorization/token",
			wantSource: SourceCarequalityToken,
		},
		{
			name: "DSTU2 Conformance, extension in the second rest entry",
			data: `{"resourceType": "Conformance", "rest": [{"mode": "client"}, {"mode": "server", "security": {"extension": [
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [
					{"url": "token", "valueUri": "https://auth.example.test/dstu2/token"}
				]}
			]}}]}`,
			want:       OAuthURIs{Token: "https://auth.example.test/dstu2/token"},
			wantURL:    "https://auth.example.test/dstu2/token",
			wantSource: SourceToken,
		},
		{
			name: "Cerner 2020 carequality-oauth-uris extension",
			data: `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [
					{"url": "token", "valueUri": "` + cernerToken + `"}
				]},
				{"url": "https://fhir-ehr.cerner.com/r4/StructureDefinition/carequality-oauth-uris", "extension": [
					{"url": "token", "valueUri": "` + cernerCQToken + `"},
					{"url": "register", "valueUri": "https://fhir-ehr.stagingcerner.com/beta/` + tenant + `/Authorization/register"}
				]}
			]}}]}`,
			want: OAuthURIs{
				Token:               cernerToken,
				CarequalityToken:    cernerCQToken,
				CarequalityRegister: "https://fhir-ehr.stagingcerner.com/beta/" + tenant + "/Authorization/register",
			},
			wantURL:    cernerCQToken,
			wantSource: SourceCarequalityToken,
		},
		{
			name: "oauth-uris without any token",
			data: `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [
				{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": [
					{"url": "authorize", "valueUri": "https://auth.example.test/authorize"}
				]}
			]}}]}`,
			want: OAuthURIs{Authorize: "https://auth.example.test/authorize"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapabilityStatement([]byte(tt.data))
			if err != nil {
				t.Fatalf("ParseCapabilityStatement: %v", err)
			}
			if *got != tt.want {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
			u, src, ok := got.TokenEndpoint()
			if u != tt.wantURL || src != tt.wantSource || ok != (tt.wantURL != "") {
				t.Errorf("TokenEndpoint() = %q, %q, %v; want %q, %q", u, src, ok, tt.wantURL, tt.wantSource)
			}
		})
	}
}

func TestParseCapabilityStatementErrors(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		wantIn string
	}{
		{name: "empty", data: "", wantIn: "empty document"},
		{name: "not JSON", data: "<CapabilityStatement xmlns=\"http://hl7.org/fhir\"/>", wantIn: "not a JSON object"},
		{name: "HTML", data: "<html><body>406 Not Acceptable</body></html>", wantIn: "not a JSON object"},
		{name: "truncated JSON", data: `{"resourceType": "CapabilityStatement", "rest": [`, wantIn: "invalid JSON"},
		{name: "no resourceType", data: `{"rest": []}`, wantIn: "no resourceType"},
		{name: "wrong resourceType", data: `{"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}`, wantIn: `resourceType is "OperationOutcome"`},
		{name: "no rest", data: `{"resourceType": "CapabilityStatement"}`, wantIn: "no " + ExtOAuthURIs},
		{name: "no security", data: `{"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}`, wantIn: "no " + ExtOAuthURIs},
		{
			name:   "other security extensions only",
			data:   `{"resourceType": "CapabilityStatement", "rest": [{"security": {"extension": [{"url": "http://example.test/x", "valueUri": "https://a.example.test/token"}]}}]}`,
			wantIn: "no " + ExtOAuthURIs,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapabilityStatement([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseCapabilityStatement = %+v, want error", got)
			}
			if !strings.HasPrefix(err.Error(), "discovery: parse CapabilityStatement: ") || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q, want prefix and %q", err, tt.wantIn)
			}
		})
	}
}

func TestTokenEndpointNil(t *testing.T) {
	var u *OAuthURIs
	if url, src, ok := u.TokenEndpoint(); ok || url != "" || src != "" {
		t.Errorf("nil OAuthURIs: TokenEndpoint() = %q, %q, %v", url, src, ok)
	}
}
