package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTrust(t *testing.T) {
	tests := []struct {
		name string
		tune func(c *Config)
		want []string // substrings of problems; none: valid
	}{
		{name: "a community and an organization in it", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"cq": {URI: "urn:oid:1.2.3", TrustAnchors: []string{"/etc/cq.pem"}, Revocation: "soft"}}
			c.Client.Community = "cq"
			c.Organizations = map[string]Organization{"1.2.3.4": {Community: "cq"}}
		}},
		{name: "community problems", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"cq": {URI: "not a uri", Revocation: "lenient"}}
		}, want: []string{"udap.communities.cq.uri:", "udap.communities.cq.trust_anchors:", `udap.communities.cq.revocation: "lenient" must be hard or soft`}},
		{name: "unknown community names", tune: func(c *Config) {
			c.Client.Community = "nowhere"
			c.Organizations = map[string]Organization{"1.2.3.4": {Community: "elsewhere"}}
		}, want: []string{`client.community: "nowhere" is not one of`, `organizations.1.2.3.4.community: "elsewhere" is not one of`}},
		{name: "no identity issued in the organization's community", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"cq": {TrustAnchors: []string{"/etc/cq.pem"}}}
			c.Organizations = map[string]Organization{"1.2.3.4": {Community: "cq"}}
		}, want: []string{`organizations.1.2.3.4.community: no identity was issued in community "cq"`}},
		{name: "an identity of another community", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"cq": {TrustAnchors: []string{"/etc/cq.pem"}}}
			c.Identities = map[string]Identity{"ehx": {ClientID: "x", Community: "cq", Keys: Keys{Source: "pem", PEM: PEMKeys{CertificateFile: "a", PrivateKeyFile: "b"}}}}
			c.Organizations = map[string]Organization{"1.2.3.4": {Identity: "ehx"}}
		}, want: []string{`organizations.1.2.3.4.identity: "ehx" was issued in community "cq", not in the organization's community ""`}},
		{name: "exchange purposes", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"cq": {TrustAnchors: []string{"/etc/cq.pem"}}}
			c.Identities = map[string]Identity{
				"xp1": {ClientID: "x", Community: "cq", ExchangePurpose: "T-TREAT", Keys: Keys{Source: "pem", PEM: PEMKeys{CertificateFile: "a", PrivateKeyFile: "b"}}},
				"xp2": {ClientID: "x", ExchangePurpose: "TREAT", JKU: "/jwks.json", Keys: Keys{Source: "pem", PEM: PEMKeys{CertificateFile: "a", PrivateKeyFile: "b"}}},
			}
			c.Inbound.Callers = map[string]Caller{"svc": {Organizations: []string{"*"}, ExchangePurposes: []string{"T-NOPE"}}}
		}, want: []string{"identities.xp1.exchange_purpose: needs community to name the TEFCA community",
			`identities.xp2.exchange_purpose: "TREAT" is not a TEFCA exchange purpose code`, "identities.xp2.jku:",
			`inbound.callers.svc.exchange_purposes[0]: "T-NOPE" is not a TEFCA exchange purpose code`}},
		{name: "the TEFCA community by its URI", tune: func(c *Config) {
			c.UDAP.Communities = map[string]Community{"tefca": {URI: TEFCAURI, TrustAnchors: []string{"/etc/t.pem"}, HomeCommunityID: "urn:oid:2.999"}}
			c.Identities = map[string]Identity{"xp": {ClientID: "urn:oid:2.999#T-TREAT", Community: "tefca", ExchangePurpose: "T-TREAT",
				Issuer: "urn:oid:2.999#T-TREAT", Keys: Keys{Source: "pem", PEM: PEMKeys{CertificateFile: "a", PrivateKeyFile: "b"}}}}
			c.Organizations = map[string]Organization{"1.2.3.4": {Community: "tefca"}}
		}},
		{name: "a TEFCA organization asserting its identity's exchange purpose", tune: func(c *Config) {
			tefcaIdentities(c)
			c.Organizations = map[string]Organization{"1.2.3.4": {Community: "tefca", UDAP: OrgUDAP{Enabled: true,
				OrganizationID: "urn:oid:2.999.1", OrganizationName: "Clinic NPI 1234567890", PurposeOfUse: []string{xp("T-PYMNT")},
				AllowedPurposes: []string{xp("T-PYMNT"), xp("T-TREAT")}}}}
		}},
		// TEFCA Facilitated FHIR: exactly one purpose of use, the
		// exchange purpose of the certificate the assertion is signed
		// with; allowed purposes only XPs cqgate has an identity for.
		{name: "a TEFCA organization asserting what TEFCA refuses", tune: func(c *Config) {
			tefcaIdentities(c)
			c.Organizations = map[string]Organization{
				"1.2.3.4": {Community: "tefca", Identity: "treat", UDAP: OrgUDAP{OrganizationID: "urn:oid:2.999.1",
					PurposeOfUse:    []string{xp("T-PYMNT")},
					AllowedPurposes: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT", xp("T-HCO"), xp("T-IAS"), xp("T-TREAT")}}},
				"1.2.3.5": {Community: "tefca", UDAP: OrgUDAP{Enabled: true, OrganizationID: "urn:oid:2.999.1", OrganizationName: "Clinic",
					PurposeOfUse: []string{xp("T-TREAT"), xp("T-PYMNT")}}},
			}
		}, want: []string{
			`organizations.1.2.3.4.udap: organization_name is required (TEFCA Facilitated FHIR; signed with identity "treat")`,
			`organizations.1.2.3.4.udap: purpose_of_use "urn:oid:2.16.840.1.113883.3.7204.1.5.2.1#T-PYMNT" is not the certificate's exchange purpose T-TREAT`,
			`organizations.1.2.3.4.udap.allowed_purposes[0]: "urn:oid:2.16.840.1.113883.5.8#TREAT" is not an exchange purpose`,
			`organizations.1.2.3.4.udap.allowed_purposes[1]: "urn:oid:2.16.840.1.113883.3.7204.1.5.2.1#T-HCO" can never be asserted: no identity of community "tefca" was issued for T-HCO`,
			`organizations.1.2.3.4.udap.allowed_purposes[2]: T-IAS needs a tefca_ias extension`,
			`organizations.1.2.3.5.udap: purpose_of_use must hold exactly one exchange purpose, not 2`,
		}},
		{name: "negative bounds", tune: func(c *Config) {
			c.UDAP.Revocation.Timeout = -1
			c.Keys.JWKS.Overlap = -1
			c.Keys.ExpiryWarningDays = -1
		}, want: []string{"udap.revocation.timeout:", "keys.jwks.overlap:", "keys.expiry_warning_days:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.tune(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v", err)
			}
			for _, w := range tt.want {
				found := false
				for _, p := range ve.Problems {
					found = found || strings.Contains(p, w)
				}
				if !found {
					t.Errorf("no problem contains %q in %q", w, ve.Problems)
				}
			}
		})
	}
}

// xp is the TEFCA purpose of use of exchange purpose code.
func xp(code string) string { return "urn:oid:2.16.840.1.113883.3.7204.1.5.2.1#" + code }

// tefcaIdentities configures the TEFCA community and an identity for
// each of T-TREAT and T-PYMNT.
func tefcaIdentities(c *Config) {
	c.UDAP.Communities = map[string]Community{"tefca": {URI: TEFCAURI, TrustAnchors: []string{"/etc/t.pem"}, HomeCommunityID: "urn:oid:2.999"}}
	c.Identities = map[string]Identity{}
	for name, code := range map[string]string{"treat": "T-TREAT", "pay": "T-PYMNT"} {
		c.Identities[name] = Identity{ClientID: "urn:oid:2.999#" + code, Community: "tefca", ExchangePurpose: code,
			Issuer: "urn:oid:2.999#" + code, Keys: Keys{Source: "pem", PEM: PEMKeys{CertificateFile: "a", PrivateKeyFile: "b"}}}
	}
}
