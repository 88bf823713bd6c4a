package callerauth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ScopeSyntax is a SMART scope syntax.
type ScopeSyntax int

const (
	// SyntaxAny means no preference: scopes are sent as configured.
	SyntaxAny ScopeSyntax = iota
	// SMARTv1 is SMART App Launch 1.0: system/Patient.read, .write, .*.
	SMARTv1
	// SMARTv2 is SMART App Launch 2.x: system/Patient.rs, .cruds, with
	// an optional ?param=value restriction.
	SMARTv2
)

func (s ScopeSyntax) String() string {
	switch s {
	case SMARTv1:
		return "SMART v1"
	case SMARTv2:
		return "SMART v2"
	}
	return "any"
}

// Perm is a set of SMART v2 permissions.
type Perm uint8

// The SMART v2 permissions. v1 "read" is PermRead (rs), "write" PermWrite
// (cud), "*" PermAll.
const (
	PermCreate Perm = Perm(permC)
	PermRead   Perm = Perm(permR)
	PermUpdate Perm = Perm(permU)
	PermDelete Perm = Perm(permD)
	PermSearch Perm = Perm(permS)

	PermV1Read  = PermRead | PermSearch
	PermV1Write = PermCreate | PermUpdate | PermDelete
	PermAll     = PermV1Read | PermV1Write
)

// String is the permission set in v2 letters ("rs", "cruds").
func (p Perm) String() string {
	var b strings.Builder
	for i, c := range "cruds" {
		if p&(1<<i) != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Scope is a parsed SMART clinical scope: context/Resource.permissions,
// with a v2 query restriction.
type Scope struct {
	// Context is "patient", "user" or "system".
	Context string
	// Resource is a FHIR resource type or "*".
	Resource string
	Perms    Perm
	// Query is the v2 restriction after "?", e.g. "category=laboratory".
	Query string
	// Syntax is the syntax the scope was written in.
	Syntax ScopeSyntax
}

// ParseScope parses one SMART clinical scope in either syntax. ok is false
// for anything else ("openid", "launch/patient", "system/Patient.readx").
func ParseScope(s string) (sc Scope, ok bool) {
	p := parseScope(s)
	if !p.smart {
		return Scope{}, false
	}
	scope, _, _ := strings.Cut(s, "?")
	_, perm, _ := strings.Cut(scope, ".")
	syn := SMARTv2
	if perm == "read" || perm == "write" || perm == "*" {
		syn = SMARTv1
	}
	return Scope{Context: p.context, Resource: p.resource, Perms: Perm(p.perms), Query: p.query, Syntax: syn}, true
}

// V2 writes the scope in SMART v2 syntax; it is exact.
func (s Scope) V2() string {
	out := s.Context + "/" + s.Resource + "." + s.Perms.String()
	if s.Query != "" {
		out += "?" + s.Query
	}
	return out
}

// V1 writes the scope in SMART v1 syntax. v1 has no query restrictions
// and only "read" (rs), "write" (cud) and "*" (cruds), so exact is false
// when the v1 scope is broader than s: it dropped a query, or widened the
// permissions (v2 "r" becomes "read", "cu" "write", "rsc" "*").
func (s Scope) V1() (scope string, exact bool) {
	var perm string
	switch {
	case s.Perms&^PermV1Read == 0:
		perm = "read"
	case s.Perms&^PermV1Write == 0:
		perm = "write"
	default:
		perm = "*"
	}
	widened := map[string]Perm{"read": PermV1Read, "write": PermV1Write, "*": PermAll}[perm]
	return s.Context + "/" + s.Resource + "." + perm, s.Query == "" && widened == s.Perms
}

// String writes the scope in the syntax it was parsed from (v2 when
// built by hand).
func (s Scope) String() string {
	if s.Syntax == SMARTv1 {
		v1, _ := s.V1()
		return v1
	}
	return s.V2()
}

// ConvertScopes rewrites every SMART clinical scope of the space-separated
// scope in the syntax to (SyntaxAny leaves it as it is); other tokens are
// kept. Tokens that become equal are sent once. exact is false when a
// conversion to v1 widened a scope (see Scope.V1): check the result
// against what the caller may have (ScopeCovers) before asking for it.
func ConvertScopes(scope string, to ScopeSyntax) (out string, exact bool) {
	exact = true
	var toks []string
	for _, tok := range strings.Fields(scope) {
		if sc, ok := ParseScope(tok); ok && to != SyntaxAny {
			switch to {
			case SMARTv1:
				var e bool
				tok, e = sc.V1()
				exact = exact && e
			case SMARTv2:
				tok = sc.V2()
			}
		}
		if !slices.Contains(toks, tok) {
			toks = append(toks, tok)
		}
	}
	return strings.Join(toks, " "), exact
}

// ChooseSyntax picks the syntax to ask a server in from what it
// advertises: its SMART capabilities ("permission-v1", "permission-v2";
// smart-configuration) and the scopes in its scopes_supported (UDAP or
// smart-configuration). A server that advertises one syntax only gets
// that syntax; one that advertises both, or neither, SyntaxAny.
func ChooseSyntax(scopesSupported, capabilities []string) ScopeSyntax {
	v1 := slices.Contains(capabilities, "permission-v1")
	v2 := slices.Contains(capabilities, "permission-v2")
	if !v1 && !v2 {
		for _, s := range scopesSupported {
			if sc, ok := ParseScope(s); ok {
				switch sc.Syntax {
				case SMARTv1:
					v1 = true
				case SMARTv2:
					v2 = true
				}
			}
		}
	}
	switch {
	case v1 && !v2:
		return SMARTv1
	case v2 && !v1:
		return SMARTv2
	}
	return SyntaxAny
}

// Interaction is a FHIR interaction a request performs, with the SMART
// permission it needs.
type Interaction struct {
	// Name is the FHIR interaction: read, vread, history-instance,
	// history-type, search-type, search-system, history-system,
	// search-compartment, create, update, patch, delete, capabilities.
	Name string
	// Resource is the resource type acted on, or "*" for system-level
	// interactions.
	Resource string
	// Perm is the permission it needs; zero for capabilities (no scope
	// needed).
	Perm Perm
}

// ErrUndetermined is RequestInteraction's error for requests whose
// resource types cannot be told from the method and path: batches and
// transactions (POST to the base) and $operations.
var ErrUndetermined = errors.New("callerauth: the FHIR interaction cannot be determined from the method and path")

// RequestInteraction tells which FHIR interaction a request to the FHIR
// path (after /fhir/{oid}, e.g. "/Patient/123") performs, and so which
// SMART permission it needs: GET of an instance (or a version, or its
// history) r; search (GET of a type, a compartment or the base, POST
// _search) and type-level history s; POST of a type c; PUT and PATCH u;
// DELETE d. GET /metadata needs none. Batches, transactions and
// $operations wrap ErrUndetermined.
func RequestInteraction(method, fhirPath string) (Interaction, error) {
	// The path's segments, the first few of them kept on the stack (a
	// REST interaction has at most four): this runs on every request.
	var kept [5]string
	segs, n := kept[:0], 0
	if trimmed := strings.Trim(fhirPath, "/"); trimmed != "" {
		for rest, more := trimmed, true; more; n++ {
			var s string
			s, rest, more = strings.Cut(rest, "/")
			if strings.HasPrefix(s, "$") {
				return Interaction{}, fmt.Errorf("%w: operation %s", ErrUndetermined, quote(s))
			}
			if len(segs) < len(kept) {
				segs = append(segs, s)
			}
		}
	}
	if method == "HEAD" {
		method = "GET"
	}
	bad := func() (Interaction, error) {
		return Interaction{}, fmt.Errorf("callerauth: %s %s is not a FHIR REST interaction", method, quote(fhirPath))
	}
	if n == 0 {
		switch method {
		case "GET":
			return Interaction{Name: "search-system", Resource: "*", Perm: PermSearch}, nil
		case "POST":
			return Interaction{}, fmt.Errorf("%w: batch or transaction", ErrUndetermined)
		}
		return bad()
	}
	switch {
	case n == 1 && segs[0] == "metadata" && method == "GET":
		return Interaction{Name: "capabilities"}, nil
	case n == 1 && segs[0] == "_history" && method == "GET":
		return Interaction{Name: "history-system", Resource: "*", Perm: PermSearch}, nil
	case n == 1 && segs[0] == "_search" && method == "POST":
		return Interaction{Name: "search-system", Resource: "*", Perm: PermSearch}, nil
	}
	typ := segs[0]
	if !resourceType(typ) {
		return bad()
	}
	switch n {
	case 1:
		switch method {
		case "GET":
			return Interaction{Name: "search-type", Resource: typ, Perm: PermSearch}, nil
		case "POST":
			return Interaction{Name: "create", Resource: typ, Perm: PermCreate}, nil
		case "PUT": // conditional update
			return Interaction{Name: "update", Resource: typ, Perm: PermUpdate}, nil
		case "PATCH":
			return Interaction{Name: "patch", Resource: typ, Perm: PermUpdate}, nil
		case "DELETE": // conditional delete
			return Interaction{Name: "delete", Resource: typ, Perm: PermDelete}, nil
		}
	case 2:
		switch {
		case segs[1] == "_search" && method == "POST":
			return Interaction{Name: "search-type", Resource: typ, Perm: PermSearch}, nil
		case segs[1] == "_history" && method == "GET":
			return Interaction{Name: "history-type", Resource: typ, Perm: PermSearch}, nil
		case strings.HasPrefix(segs[1], "_"):
			return bad()
		}
		switch method {
		case "GET":
			return Interaction{Name: "read", Resource: typ, Perm: PermRead}, nil
		case "PUT":
			return Interaction{Name: "update", Resource: typ, Perm: PermUpdate}, nil
		case "PATCH":
			return Interaction{Name: "patch", Resource: typ, Perm: PermUpdate}, nil
		case "DELETE":
			return Interaction{Name: "delete", Resource: typ, Perm: PermDelete}, nil
		}
	case 3:
		switch {
		case segs[2] == "_history" && method == "GET":
			return Interaction{Name: "history-instance", Resource: typ, Perm: PermRead}, nil
		case resourceType(segs[2]) && method == "GET": // Patient/123/Observation
			return Interaction{Name: "search-compartment", Resource: segs[2], Perm: PermSearch}, nil
		case segs[2] == "*" && method == "GET":
			return Interaction{Name: "search-compartment", Resource: "*", Perm: PermSearch}, nil
		}
	case 4:
		switch {
		case segs[2] == "_history" && method == "GET":
			return Interaction{Name: "vread", Resource: typ, Perm: PermRead}, nil
		case resourceType(segs[2]) && segs[3] == "_search" && method == "POST":
			return Interaction{Name: "search-compartment", Resource: segs[2], Perm: PermSearch}, nil
		}
	}
	return bad()
}

// resourceType reports whether s looks like a FHIR resource type: an
// upper-case letter, then letters.
func resourceType(s string) bool {
	return s != "" && s[0] >= 'A' && s[0] <= 'Z' && validResource(s)
}

// GrantCovers reports whether the space-separated granted scope (the
// scope of a token response, v1 or v2 syntax) covers the interaction in
// context ("system" for backend services): some SMART scope of that
// context for the resource (or "*") with the needed permission. A scope
// with a v2 query restriction covers only searches whose query carries
// every restricted parameter with the same value; reads, writes and
// deletes it never covers, since the resource's contents are unknown
// before the request. An interaction needing no permission (capabilities)
// is always covered.
func GrantCovers(granted, context string, in Interaction, query url.Values) bool {
	if in.Perm == 0 {
		return true
	}
	for tok := range strings.FieldsSeq(granted) {
		if sc, ok := ParseScope(tok); ok && sc.covers(context, in, query) {
			return true
		}
	}
	return false
}

// covers reports whether the scope alone covers the interaction in
// context (GrantCovers).
func (sc Scope) covers(context string, in Interaction, query url.Values) bool {
	if sc.Context != context || sc.Perms&in.Perm != in.Perm {
		return false
	}
	if sc.Resource != "*" && sc.Resource != in.Resource {
		return false
	}
	return sc.Query == "" || in.Perm == PermSearch && queryWithin(sc.Query, query)
}

// Grant is a granted scope parsed once, to check many requests against
// (a token's, for every request sent with it): its SMART clinical
// scopes. It is immutable.
type Grant struct {
	// Scope is the granted scope as given.
	Scope  string
	scopes []Scope
}

// ParseGrant parses a space-separated granted scope.
func ParseGrant(granted string) *Grant {
	g := &Grant{Scope: granted}
	for tok := range strings.FieldsSeq(granted) {
		if sc, ok := ParseScope(tok); ok {
			g.scopes = append(g.scopes, sc)
		}
	}
	return g
}

// Smart reports whether the grant holds a SMART clinical scope.
func (g *Grant) Smart() bool { return len(g.scopes) > 0 }

// Covers is GrantCovers for the parsed grant.
func (g *Grant) Covers(context string, in Interaction, query url.Values) bool {
	if in.Perm == 0 {
		return true
	}
	for _, sc := range g.scopes {
		if sc.covers(context, in, query) {
			return true
		}
	}
	return false
}

// queryWithin reports whether query carries every parameter of the
// scope's restriction with one of the restriction's values.
func queryWithin(restriction string, query url.Values) bool {
	want, err := url.ParseQuery(restriction)
	if err != nil || len(want) == 0 {
		return false
	}
	for k, vs := range want {
		got := query[k]
		if len(got) == 0 {
			return false
		}
		for _, g := range got {
			// Every value the request asks for must be allowed; a
			// comma-separated value is an OR of its parts.
			for _, part := range strings.Split(g, ",") {
				if !slices.Contains(vs, part) {
					return false
				}
			}
		}
	}
	return true
}
