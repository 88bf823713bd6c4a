package tenant

import (
	"testing"

	"github.com/cqgate/cqgate/assertion"
)

// rev-s8c: a caller's X-Purpose-Of-Use on an organization of the TEFCA
// community (without X-Cqgate-Exchange-Purpose) replaces hl7-b2b's
// purpose_of_use but keeps the identity of the configured XP, so the
// assertion is signed by the T-TREAT certificate (SAN ...#T-TREAT) while
// asserting T-PYMNT, or asserts two XPs at once. TEFCA (Facilitated FHIR
// SOP, as udap-trust.md and ValidateTEFCA say) wants exactly one XP, equal
// to the certificate's; udap-dotnet's TEFCA validator refuses both.
func TestRevS8CPurposesOfUseKeepTEFCAConsistent(t *testing.T) {
	treat, pay := assertion.XPSystem+"#T-TREAT", assertion.XPSystem+"#T-PYMNT"
	xps := map[string]XPIdentity{"T-TREAT": {Identity: "tefca-treat", ClientID: "c-treat"}, "T-PYMNT": {Identity: "tefca-pay", ClientID: "c-pay"}}
	xpOf := func(identity string) string {
		for xp, id := range xps {
			if id.Identity == identity {
				return xp
			}
		}
		return ""
	}
	tefca := &Tenant{OID: "1.3", UDAP: true, TEFCA: true, Identity: "tefca-treat", ClientID: "c-treat",
		B2B:             &assertion.B2B{OrganizationID: "urn:oid:1.2.3", OrganizationName: "Example Clinic NPI 1234567890", PurposeOfUse: []string{treat}},
		AllowedPurposes: []string{treat, pay},
		party:           newParty(xps, nil)}
	for _, purposes := range [][]string{{pay}, {treat, pay}} {
		got, err := tefca.WithPurposes(purposes)
		if err == nil {
			got, err = got.WithExchangePurpose("") // no X-Cqgate-Exchange-Purpose
		}
		if err != nil {
			continue // refusing is fine
		}
		if verr := got.B2B.ValidateTEFCA(xpOf(got.Identity)); verr != nil {
			t.Errorf("X-Purpose-Of-Use %v: the token request is signed by identity %s (client %s) with hl7-b2b purpose_of_use %v: %v",
				purposes, got.Identity, got.ClientID, got.B2B.PurposeOfUse, verr)
		}
	}
}
