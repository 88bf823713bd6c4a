package tenant

import (
	"testing"

	"github.com/cqgate/cqgate/assertion"
)

func TestTokenContext(t *testing.T) {
	b2b := &assertion.B2B{OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}
	base := Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example/r4", TokenURL: "https://auth.example/token", ClientID: "c", Scope: "system/*.read", B2B: b2b}
	key := func(mod func(*Tenant)) assertion.Key {
		c := base
		mod(&c)
		return c.TokenKey()
	}
	same := key(func(*Tenant) {})
	if same.Identity != "default" || same.Resource != base.FHIRBase {
		t.Fatalf("key %+v", same)
	}
	if r := base.TokenRequest(); r.B2B != nil {
		t.Error("B2B asserted without UDAP")
	}
	for name, mod := range map[string]func(*Tenant){
		"identity": func(c *Tenant) { c.Identity = "other" },
		"scope":    func(c *Tenant) { c.Scope = "system/Patient.read" },
		"base":     func(c *Tenant) { c.FHIRBase = "https://fhir.example/r5" },
		"client":   func(c *Tenant) { c.ClientID = "d" },
		"b2b":      func(c *Tenant) { c.UDAP = true },
	} {
		if key(mod) == same {
			t.Errorf("%s: same token context", name)
		}
	}
}
