package tenant

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/outcome"
)

func TestSameParty(t *testing.T) {
	for _, tt := range []struct {
		name, base, endpoint string
		allowed              []string
		want                 bool
	}{
		{"same origin", "https://fhir.example.org/r4", "https://fhir.example.org/oauth/token", nil, true},
		{"default port written out", "https://fhir.example.org/r4", "https://FHIR.example.org:443/token", nil, true},
		{"registrable domain (Cerner)", "https://fhir-ehr.cerner.com/r4/ec2458f2", "https://authorization.cerner.com/tenants/ec2458f2/token", nil, true},
		{"registrable domain, other port", "https://fhir.example.org/r4", "https://auth.example.org:8443/token", nil, true},
		{"registrable domain, scheme downgrade", "https://fhir.example.org/r4", "http://auth.example.org/token", nil, false},
		{"other domain", "https://fhir.partner-a.org/r4", "https://auth.partner-b.org/token", nil, false},
		{"public suffix is no registrable domain", "https://a.github.io/r4", "https://b.github.io/token", nil, false},
		{"multi-label public suffix", "https://a.example.co.uk/r4", "https://b.other.co.uk/token", nil, false},
		{"same IP, other port", "http://127.0.0.1:8443/r4", "http://127.0.0.1:9443/token", nil, false},
		{"same IP and port", "http://127.0.0.1:8443/r4", "http://127.0.0.1:8443/token", nil, true},
		{"IPv6 literal, other port", "http://[::1]:8443/r4", "http://[::1]:9443/token", nil, false},
		{"localhost, other port", "http://localhost:8443/r4", "http://localhost:9443/token", nil, false},
		{"allowed origin", "https://fhir.partner-a.org/r4", "https://auth.shared-idp.com/token", []string{"https://auth.shared-idp.com"}, true},
		{"allowed origin is exact (port)", "https://fhir.partner-a.org/r4", "https://auth.shared-idp.com:8443/token", []string{"https://auth.shared-idp.com"}, false},
		{"allowed IP origin", "http://127.0.0.1:8443/r4", "http://127.0.0.1:9443/token", []string{"http://127.0.0.1:9443"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := url.Parse(tt.base)
			e, _ := url.Parse(tt.endpoint)
			var allowed []string
			for _, a := range tt.allowed {
				o, err := ParseOrigin(a)
				if err != nil {
					t.Fatal(err)
				}
				allowed = append(allowed, o)
			}
			if got := sameParty(b, e, allowed); got != tt.want {
				t.Errorf("sameParty(%s, %s, %v) = %v, want %v", tt.base, tt.endpoint, allowed, got, tt.want)
			}
		})
	}
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Auth.Example.com":      "https://auth.example.com",
		"https://auth.example.com/":     "https://auth.example.com",
		"https://auth.example.com:443":  "https://auth.example.com",
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080",
		"https://[::1]:8443":            "https://[::1]:8443",
		"https://auth.example.com/path": "",
		"auth.example.com":              "",
		"ftp://auth.example.com":        "",
		"https://u:p@auth.example.com":  "",
	} {
		got, err := ParseOrigin(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestWithScopeCanonical(t *testing.T) {
	tn := &Tenant{OID: "1.2.3", Scope: "system/*.read"}
	for in, want := range map[string]string{
		"system/Patient.read":                                             "system/Patient.read",
		" system/Patient.read  system/Observation.read ":                  "system/Observation.read system/Patient.read",
		"system/Observation.read system/Patient.read system/Patient.read": "system/Observation.read system/Patient.read",
		"system/*.read ": "system/*.read",
	} {
		if got := tn.WithScope(in).Scope; got != want {
			t.Errorf("WithScope(%q).Scope = %q, want %q", in, got, want)
		}
	}
	if tn.WithScope(" system/*.read") != tn {
		t.Error("WithScope of the configured scope made a copy")
	}
}

// partyDisc answers like discovery would, with the given source, token
// URL and registration endpoint.
type partyDisc struct {
	source          discovery.Source
	token, register string
}

func (d partyDisc) Discover(_ context.Context, req discovery.Request) (*discovery.Result, error) {
	return &discovery.Result{TokenURL: d.token, Source: d.source, RegistrationEndpoint: d.register}, nil
}

// Every discovery source is held to the FHIR base's party; a configured
// token_url is the operator's word.
func TestResolveRefusesForeignEndpoints(t *testing.T) {
	const oid = "1.1"
	for _, tt := range []struct {
		name     string
		disc     partyDisc
		settings Settings
		refused  string // "" when resolved
	}{
		{"udap token on another domain", partyDisc{source: discovery.SourceUDAP, token: "https://idp.other.example/token"}, Settings{}, "https://idp.other.example"},
		{"smart-configuration token on another domain", partyDisc{source: discovery.SourceSMARTConfiguration, token: "https://idp.other.example/token"}, Settings{}, "https://idp.other.example"},
		{"generic token on another domain", partyDisc{source: discovery.SourceToken, token: "https://idp.other.example/token"}, Settings{}, "https://idp.other.example"},
		{"carequality-token on another domain", partyDisc{source: discovery.SourceCarequalityToken, token: "https://idp.other.example/token"}, Settings{}, "https://idp.other.example"},
		{"registration endpoint on another domain", partyDisc{source: discovery.SourceUDAP, token: "https://auth.example.org/token", register: "https://idp.other.example/register"}, Settings{}, "https://idp.other.example"},
		{"same registrable domain", partyDisc{source: discovery.SourceUDAP, token: "https://auth.example.org/token", register: "https://auth.example.org/register"}, Settings{}, ""},
		{"allowed origin", partyDisc{source: discovery.SourceSMARTConfiguration, token: "https://idp.other.example/token"}, Settings{AllowedTokenOrigins: []string{"https://idp.other.example"}}, ""},
		{"configured token URL", partyDisc{}, Settings{TokenURL: "https://idp.other.example/token"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Directory: stubDir{oid: org(oid, directory.Endpoint{Address: "https://fhir.example.org/r4", ConnectionType: "hl7-fhir-rest", Status: "active"})},
				Discovery: tt.disc, Orgs: map[string]Settings{oid: tt.settings}}
			tn, err := r.Resolve(context.Background(), oid)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				return
			}
			status, oo := outcome.FromError(err)
			if status != http.StatusBadGateway || !strings.Contains(oo.Issue[0].Diagnostics, tt.refused) ||
				!strings.Contains(oo.Issue[0].Diagnostics, "https://fhir.example.org") || tn != nil {
				t.Errorf("Resolve = %v, %v; want a 502 naming %s and https://fhir.example.org", tn, err, tt.refused)
			}
		})
	}
}

func TestWithPurposesCanonical(t *testing.T) {
	const treat, pay = "urn:oid:2.16.840.1.113883.5.8#TREAT", "urn:oid:2.16.840.1.113883.5.8#HPAYMT"
	tn := &Tenant{OID: "1.2.3", UDAP: true, B2B: &assertion.B2B{PurposeOfUse: []string{treat}}, AllowedPurposes: []string{treat, pay}}
	a, err := tn.WithPurposes([]string{treat, pay, treat})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tn.WithPurposes([]string{pay, treat})
	if err != nil {
		t.Fatal(err)
	}
	if a.B2B.Digest() != b.B2B.Digest() || len(a.B2B.PurposeOfUse) != 2 {
		t.Errorf("orderings of one set of purposes differ: %v / %v", a.B2B.PurposeOfUse, b.B2B.PurposeOfUse)
	}
	if tn.B2B.PurposeOfUse[0] != treat || len(tn.B2B.PurposeOfUse) != 1 {
		t.Errorf("the original tenant changed: %v", tn.B2B.PurposeOfUse)
	}
}
