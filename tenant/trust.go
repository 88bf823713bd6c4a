package tenant

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
)

// XPIdentity is the client identity issued for one TEFCA exchange
// purpose: a certificate whose SAN is urn:oid:<home community id>#<XP>.
type XPIdentity struct {
	// Identity names the identity (certificate and key).
	Identity string
	// ClientID is its client id at the partners.
	ClientID string
}

// WithExchangePurpose returns a copy of t for the TEFCA exchange purpose
// xp (e.g. "T-TREAT"), chosen by the caller: the identity issued for it,
// and hl7-b2b purpose_of_use holding exactly that XP code, as the TEFCA
// Facilitated FHIR SOP requires. "" returns t unchanged. The caller's
// policy must already allow xp.
//
// A TEFCA tenant whose purposes of use a caller asked for (WithPurposes)
// is held to TEFCA Facilitated FHIR here, whatever xp is: with xp, they
// must be exactly xp; without, exactly the exchange purpose of the
// certificate t signs with. Else the assertion would claim a purpose its
// certificate was not issued for, which TEFCA responders refuse.
func (t *Tenant) WithExchangePurpose(xp string) (*Tenant, error) {
	if xp == "" {
		if !t.purposesAsked {
			return t, nil
		}
		if err := t.B2B.ValidateTEFCA(t.certificateXP()); err != nil {
			return nil, tefcaRefusal(t.OID, fmt.Sprintf("purpose of use %s asked for, signed with identity %q issued for %s: %v; "+
				"choose another exchange purpose with X-Cqgate-Exchange-Purpose", strings.Join(t.B2B.PurposeOfUse, ", "),
				t.IdentityName(), cmp.Or(t.certificateXP(), "no single exchange purpose"), err))
		}
		return t, nil
	}
	switch {
	case !t.TEFCA:
		return nil, failure.Errorf(failure.Unsupported,
			"tenant: %s is not in the TEFCA trust community, so an exchange purpose cannot be chosen", t.OID)
	case !t.UDAP || t.B2B == nil:
		return nil, failure.Errorf(failure.Unsupported,
			"tenant: %s is not reached with UDAP B2B, so an exchange purpose cannot be asserted", t.OID)
	case xp == "T-IAS":
		// Individual Access Services need the individual's id_token in a
		// tefca_ias extension (Facilitated FHIR SOP v2.0 Table 4), which a
		// gateway acting for systems does not have.
		return nil, failure.Errorf(failure.Unsupported,
			"tenant: exchange purpose T-IAS needs a tefca_ias extension with the individual's id_token, which cqgate does not send")
	}
	id, ok := t.xps()[xp]
	if !ok {
		return nil, failure.Errorf(failure.Forbidden,
			"tenant: no identity is configured for TEFCA exchange purpose %q (identities.<name>.exchange_purpose)", xp)
	}
	pou := assertion.XPSystem + "#" + xp
	if t.purposesAsked && (len(t.B2B.PurposeOfUse) != 1 || t.B2B.PurposeOfUse[0] != pou) {
		return nil, tefcaRefusal(t.OID, fmt.Sprintf("purpose of use %s asked for is not exchange purpose %s chosen (X-Cqgate-Exchange-Purpose)",
			strings.Join(t.B2B.PurposeOfUse, ", "), xp))
	}
	c := *t
	b2b := *t.B2B
	b2b.PurposeOfUse = []string{pou}
	if err := b2b.ValidateTEFCA(xp); err != nil {
		return nil, failure.Errorf(failure.Misconfigured,
			"tenant: cqgate is misconfigured for %s (organizations.%s.udap): %w", t.OID, t.OID, err)
	}
	c.B2B = &b2b
	c.Identity, c.ClientID, c.ExchangePurpose = id.Identity, id.ClientID, xp
	return &c, nil
}

// tefcaRefusal refuses a token context a caller asked for that TEFCA
// Facilitated FHIR does not allow, naming the rule: the caller's request
// is invalid (400), as a purpose of use cqgate cannot assert is.
func tefcaRefusal(oid, why string) error {
	return failure.Errorf(failure.Invalid,
		"tenant: %s is in the TEFCA community, where hl7-b2b purpose_of_use must hold exactly one exchange purpose, "+
			"the one the signing certificate was issued for (TEFCA Facilitated FHIR SOP v2.0): %s", oid, why)
}

// certificateXP is the TEFCA exchange purpose the certificate t signs
// with was issued for: the one chosen (ExchangePurpose), else the one
// whose identity t uses; "" when its identity was issued for none.
func (t *Tenant) certificateXP() string {
	if t.ExchangePurpose != "" {
		return t.ExchangePurpose
	}
	for xp, id := range t.xps() {
		if t.Identity != "" && id.Identity == t.Identity {
			return xp
		}
	}
	return ""
}

// checkB2B checks the hl7-b2b context t asserts as the exchanger will
// (assertion.Exchanger.Claims): against the IG, and for a TEFCA tenant
// against TEFCA Facilitated FHIR with its certificate's exchange
// purpose.
func (t *Tenant) checkB2B() error {
	if t.TEFCA {
		return t.B2B.ValidateTEFCA(t.certificateXP())
	}
	return t.B2B.Validate()
}

// ExchangePurposes lists the exchange purposes t has identities for.
func (t *Tenant) ExchangePurposes() []string {
	out := make([]string, 0, len(t.xps()))
	for xp := range t.xps() {
		out = append(out, xp)
	}
	slices.Sort(out)
	return out
}

// askInSyntax records the SMART scope syntax the server advertises
// (scopes_supported, capabilities) when it advertises one only, and
// rewrites the configured scope in it.
func (t *Tenant) askInSyntax(scopesSupported, capabilities []string) {
	syntax := callerauth.ChooseSyntax(scopesSupported, capabilities)
	t.syntax = uint8(syntax)
	if syntax != callerauth.SyntaxAny {
		t.ScopeSyntax = syntax.String()
	}
	t.Scope = CanonicalScope(t.inSyntax(t.Scope))
}

// inSyntax is scope in the server's syntax. A conversion that would
// widen a scope (v2 to v1: "r" becomes "read") is not made: the scope is
// asked for as configured and the server judges it.
func (t *Tenant) inSyntax(scope string) string {
	if t.scopeSyntax() == callerauth.SyntaxAny {
		return scope
	}
	out, exact := callerauth.ConvertScopes(scope, t.scopeSyntax())
	if !exact {
		return scope
	}
	return out
}
