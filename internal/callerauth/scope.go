package callerauth

import "strings"

// SMART permissions as a bit set. SMART v1 "read" is v2 "rs", v1 "write"
// is v2 "cud", and "*" is every permission.
const (
	permC uint8 = 1 << iota
	permR
	permU
	permD
	permS

	permRead  = permR | permS
	permWrite = permC | permU | permD
	permAll   = permC | permR | permU | permD | permS
)

// scope is one parsed scope token. Parsing never allocates: the strings
// are substrings of raw.
type scope struct {
	raw      string
	smart    bool   // a SMART clinical scope: context/Resource.perm[?query]
	context  string // "patient", "user" or "system"
	resource string // a resource type or "*"
	query    string // SMART v2 granular query (after "?"), or ""
	perms    uint8
}

// parseScope parses a scope token. Anything that is not a SMART clinical
// scope ("openid", "launch/patient", "system/Patient.read-only") is kept
// as raw text and only ever matches itself.
func parseScope(s string) scope {
	sc := scope{raw: s}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return sc
	}
	rest, query, _ := strings.Cut(rest, "?")
	res, perm, ok := strings.Cut(rest, ".")
	if !ok || !validResource(res) {
		return sc
	}
	p, ok := parsePerms(perm)
	if !ok {
		return sc
	}
	sc.smart, sc.context, sc.resource, sc.query, sc.perms = true, ctx, res, query, p
	return sc
}

// parsePerms parses "read", "write", "*" (SMART v1) or a non-empty
// subsequence of "cruds" (SMART v2, letters in that order).
func parsePerms(s string) (uint8, bool) {
	switch s {
	case "read":
		return permRead, true
	case "write":
		return permWrite, true
	case "*":
		return permAll, true
	case "":
		return 0, false
	}
	const order = "cruds"
	var p uint8
	next := 0
	for i := 0; i < len(s); i++ {
		j := strings.IndexByte(order[next:], s[i])
		if j < 0 {
			return 0, false // unknown letter, repeated, or out of order
		}
		p |= 1 << (next + j)
		next += j + 1
	}
	return p, true
}

func validResource(s string) bool {
	if s == "*" {
		return true
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// covers reports whether a granted scope a allows a requested scope r.
func (a *scope) covers(r *scope) bool {
	if a.raw == r.raw {
		return true
	}
	return a.smart && r.smart &&
		a.context == r.context &&
		(a.resource == "*" || a.resource == r.resource) &&
		r.perms&^a.perms == 0 &&
		(a.query == "" || a.query == r.query)
}

// ValidScope reports whether s is an OAuth scope as RFC 6749 section 3.3
// writes one: scope tokens of printable ASCII but for '"' and '\',
// separated by spaces. Anything else (a tab, a control character) would
// be split differently by ScopeCovers and by whoever reads it next.
func ValidScope(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
		case c < 0x21 || c > 0x7e || c == '"' || c == '\\':
			return false
		}
	}
	return true
}

// ScopeCovers reports whether every token of the space-separated
// requested scope is allowed by some token of the space-separated
// allowed scope, by the rules Policy uses (see Rule.Scopes). An empty
// request is covered. It does not allocate; use it, for instance, to check
// that a scope a caller asks for stays within the organization's
// configured scope.
func ScopeCovers(allowed, requested string) bool {
	for rest := requested; rest != ""; {
		var tok string
		tok, rest, _ = strings.Cut(rest, " ")
		if tok == "" {
			continue
		}
		r := parseScope(tok)
		ok := false
		for arest := allowed; arest != "" && !ok; {
			var atok string
			atok, arest, _ = strings.Cut(arest, " ")
			if atok == "" {
				continue
			}
			a := parseScope(atok)
			ok = a.covers(&r)
		}
		if !ok {
			return false
		}
	}
	return true
}
