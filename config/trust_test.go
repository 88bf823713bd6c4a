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
