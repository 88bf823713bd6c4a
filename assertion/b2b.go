package assertion

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/cqgate/cqgate/internal/failure"
)

// B2BExtensionKey is the key of the B2B authorization extension object in
// a client assertion's "extensions" claim (UDAP Security IG §5.2.1.1).
const B2BExtensionKey = "hl7-b2b"

// B2BVersion is the only version of the B2B authorization extension
// object the IG defines.
const B2BVersion = "1"

// B2B is the HL7 B2B Authorization Extension Object of the UDAP Security
// IG (b2b.md §5.2.1.1): the context under which a client_credentials
// request is authorized. The JSON names are the IG's; empty members are
// omitted (Validate ensures the required ones are not empty, and the
// version is filled in when it is sent).
//
// An access token obtained with one B2B context may only be used in that
// context, which is why Digest is part of the token cache Key.
type B2B struct {
	// Version is "1"; empty means "1".
	Version string `json:"version,omitempty"`
	// SubjectName is the human-readable name of the human or non-human
	// requestor; required if known.
	SubjectName string `json:"subject_name,omitempty"`
	// SubjectID identifies a human requestor (in the US the individual
	// NPI, e.g. "urn:oid:2.16.840.1.113883.4.6#1234567890").
	SubjectID string `json:"subject_id,omitempty"`
	// SubjectRole is a code for the requestor's role (e.g. from the NUCC
	// Provider Taxonomy).
	SubjectRole string `json:"subject_role,omitempty"`
	// OrganizationName is the requesting organization's name.
	OrganizationName string `json:"organization_name,omitempty"`
	// OrganizationID identifies the requesting organization; required,
	// and a URI.
	OrganizationID string `json:"organization_id,omitempty"`
	// PurposeOfUse holds one or more codes, e.g.
	// "urn:oid:2.16.840.1.113883.5.8#TREAT"; required.
	PurposeOfUse []string `json:"purpose_of_use,omitempty"`
	// ConsentPolicy holds URIs of consent or other policies.
	ConsentPolicy []string `json:"consent_policy,omitempty"`
	// ConsentReference holds absolute URLs of FHIR Consent or
	// DocumentReference resources; only together with ConsentPolicy.
	ConsentReference []string `json:"consent_reference,omitempty"`
}

// Validate reports every way b falls short of the IG, in one *B2BError.
func (b *B2B) Validate() error {
	if problems := b.Problems(); len(problems) > 0 {
		return &B2BError{Problems: problems}
	}
	return nil
}

// Problems lists every way b falls short of the IG, each naming the
// member (organization_id, purpose_of_use, ...); none when b is valid.
// Configuration validation reports them one by one, under the settings
// of the same names.
func (b *B2B) Problems() []string {
	if b == nil {
		return []string{"it is nil"}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if b.Version != "" && b.Version != B2BVersion {
		add("version %q is not %q", b.Version, B2BVersion)
	}
	switch {
	case b.OrganizationID == "":
		add("organization_id is required (a URI naming the requesting organization)")
	case !isAbsoluteURI(b.OrganizationID):
		add("organization_id %q is not an absolute URI", b.OrganizationID)
	}
	if len(b.PurposeOfUse) == 0 {
		add("purpose_of_use needs at least one code")
	}
	for i, p := range b.PurposeOfUse {
		if strings.TrimSpace(p) == "" {
			add("purpose_of_use[%d] is empty", i)
		}
	}
	for i, p := range b.ConsentPolicy {
		if !isAbsoluteURI(p) {
			add("consent_policy[%d] %q is not an absolute URI", i, p)
		}
	}
	if len(b.ConsentReference) > 0 && len(b.ConsentPolicy) == 0 {
		add("consent_reference requires consent_policy")
	}
	for i, r := range b.ConsentReference {
		if checkURL("", r) != nil {
			add("consent_reference[%d] %q is not an absolute http(s) URL", i, r)
		}
	}
	return problems
}

// B2BError is an hl7-b2b context that falls short of the IG or, when
// TEFCA, of TEFCA Facilitated FHIR. The contexts cqgate asserts come
// from its configuration (a caller only picks among allowed purposes,
// and a TEFCA choice the tenant refuses first), so it is cqgate's
// misconfiguration: the caller is told every problem.
type B2BError struct {
	// TEFCA says the problems are TEFCA's (ValidateTEFCA), beyond the IG.
	TEFCA bool
	// Problems name the members (organization_id, purpose_of_use, ...).
	Problems []string
}

func (e *B2BError) Error() string {
	if e.TEFCA {
		return "assertion: hl7-b2b does not meet TEFCA Facilitated FHIR: " + strings.Join(e.Problems, "; ")
	}
	return "assertion: invalid hl7-b2b extension: " + strings.Join(e.Problems, "; ")
}

// Kind classifies an hl7-b2b context that cannot be sent as cqgate's
// own misconfiguration.
func (e *B2BError) Kind() failure.Kind { return failure.Misconfigured }

// isAbsoluteURI reports whether s is a URI with a scheme (RFC 3986
// absolute-URI, fragments allowed as the IG's "system#code" form uses
// them), such as "urn:oid:1.2.3" or "https://example.org/org/1".
func isAbsoluteURI(s string) bool {
	if strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && (u.Opaque != "" || u.Host != "" || u.Path != "")
}

// normalized returns a copy with the defaults applied, as it is sent.
func (b *B2B) normalized() B2B {
	n := *b
	if n.Version == "" {
		n.Version = B2BVersion
	}
	n.PurposeOfUse = slices.Clone(b.PurposeOfUse)
	n.ConsentPolicy = slices.Clone(b.ConsentPolicy)
	n.ConsentReference = slices.Clone(b.ConsentReference)
	return n
}

// Digest identifies the authorization context b asserts: the hex SHA-256
// of its JSON form as sent (defaults applied, members in the IG's order,
// list order kept). Equal contexts have equal digests; it is "" for a nil
// B2B. It reveals nothing of the context, so it can be logged.
func (b *B2B) Digest() string {
	if b == nil {
		return ""
	}
	// A struct of strings and string slices always marshals.
	raw, _ := json.Marshal(b.normalized())
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// TEFCA Facilitated FHIR (Sequoia/RCE SOP: Facilitated FHIR
// Implementation v2.0; SOP: Exchange Purposes v5.1).
const (
	// XPSystem is the code system of TEFCA exchange purposes; a TEFCA
	// purpose_of_use is XPSystem + "#" + code.
	XPSystem = "urn:oid:2.16.840.1.113883.3.7204.1.5.2.1"
	// TEFCAIASExtensionKey is the key of the TEFCA IAS authorization
	// extension object (Facilitated FHIR SOP v2.0 Table 4). cqgate does
	// not send it: it carries an individual's id_token.
	TEFCAIASExtensionKey = "tefca_ias"
)

// XPCodes are the exchange purpose codes of the SOP: Exchange Purposes
// v5.1, Table 1.
var XPCodes = []string{
	"T-TREAT", "T-TRTMNT", "T-PYMNT", "T-HCO", "T-HCO-CC", "T-HCO-HED", "T-HCO-QAI",
	"T-HCO-POP", "T-HCO-PTSAFETY", "T-HCO-PERF", "T-PH", "T-PH-ECR", "T-PH-ELR", "T-IAS",
	"T-GOVDTRM", "T-GOVDTRM-SSD", "T-GOVDTRM-ACP",
}

// ValidateTEFCA reports how b falls short of what TEFCA Facilitated FHIR
// asks of hl7-b2b for client_credentials, beyond Validate: the requesting
// organization's name and id (for Treatment XPs the RCE Directory
// Organization ResourceID, with the NPI or TIN appended to the name,
// Treatment XP SOP v2.0 §6.2, which only the operator can tell), and
// exactly one purpose_of_use, XPSystem#<code> with a code of XPCodes,
// equal to xp when xp is not empty (the XP of the certificate's SAN).
// The error is Validate's when b falls short of the IG, else a
// *B2BError with TEFCA set.
func (b *B2B) ValidateTEFCA(xp string) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if problems := b.TEFCAProblems(xp); len(problems) > 0 {
		return &B2BError{TEFCA: true, Problems: problems}
	}
	return nil
}

// TEFCAProblems lists how b falls short of TEFCA Facilitated FHIR beyond
// the IG (see ValidateTEFCA), each naming the member; none when it
// meets it. b must not be nil.
func (b *B2B) TEFCAProblems(xp string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(b.OrganizationName) == "" {
		add("organization_name is required")
	}
	switch {
	case len(b.PurposeOfUse) != 1:
		add("purpose_of_use must hold exactly one exchange purpose, not %d", len(b.PurposeOfUse))
	default:
		code, err := ExchangePurposeCode(b.PurposeOfUse[0])
		switch {
		case err != nil:
			add("purpose_of_use %v", err)
		case xp != "" && code != xp:
			add("purpose_of_use %q is not the certificate's exchange purpose %s", b.PurposeOfUse[0], xp)
		}
	}
	return problems
}

// ExchangePurposeCode returns the XP code of a TEFCA purpose of use
// (XPSystem#<code>, a code of XPCodes), or why it is not one.
func ExchangePurposeCode(purpose string) (string, error) {
	system, code, ok := strings.Cut(purpose, "#")
	switch {
	case !ok || system != XPSystem:
		return "", fmt.Errorf("%q is not an exchange purpose (%s#<code>)", purpose, XPSystem)
	case !slices.Contains(XPCodes, code):
		return "", fmt.Errorf("%q: code %q is not a TEFCA exchange purpose code", purpose, code)
	}
	return code, nil
}
