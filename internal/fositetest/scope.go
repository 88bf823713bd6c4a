package fositetest

import "strings"

// SMARTScopeStrategy is a fosite.ScopeStrategy for SMART on FHIR scopes
// ("<patient|user|system>/<Resource|*>.<permission|*>").
//
// A requested scope (needle) is allowed if a registered scope (haystack
// entry) equals it exactly, or if both are SMART scopes of the same context
// and the registered one has "*" as resource (system/*.read allows
// system/Patient.read) and/or "*" as permission (system/Patient.* allows
// system/Patient.read). Nothing else is inferred: system/Patient.read allows
// neither system/Patient.write nor system/*.read, and SMART v2 permission
// strings (".rs", ".cruds") match only exactly.
//
// fosite's built-in strategies do not fit: the v0.49 default,
// WildcardScopeStrategy, splits on "." and so does not let system/*.read
// allow system/Patient.read; HierarchicScopeStrategy has the same gap and
// additionally lets a registered "system/Patient" allow
// "system/Patient.read". ExactScopeStrategy is correct but ignores
// wildcards.
func SMARTScopeStrategy(haystack []string, needle string) bool {
	nc, nr, np, nok := splitSMART(needle)
	for _, h := range haystack {
		if h == needle {
			return true
		}
		if !nok {
			continue
		}
		hc, hr, hp, ok := splitSMART(h)
		if !ok || hc != nc {
			continue
		}
		if (hr == "*" || hr == nr) && (hp == "*" || hp == np) {
			return true
		}
	}
	return false
}

func splitSMART(s string) (context, resource, perm string, ok bool) {
	context, rest, ok := strings.Cut(s, "/")
	if !ok || (context != "patient" && context != "user" && context != "system") {
		return "", "", "", false
	}
	resource, perm, ok = strings.Cut(rest, ".")
	if !ok || resource == "" || perm == "" || strings.ContainsAny(perm, "./?") {
		return "", "", "", false
	}
	return context, resource, perm, true
}
