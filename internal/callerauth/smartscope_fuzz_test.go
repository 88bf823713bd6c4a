package callerauth

import (
	"net/url"
	"testing"
)

// FuzzSMARTScope: parsing, converting and covering never panic; a parsed
// scope's v2 form parses back to the same scope, and its v1 form covers
// it.
func FuzzSMARTScope(f *testing.F) {
	for _, s := range []string{"system/Patient.read", "system/*.cruds", "system/Observation.rs?category=laboratory", "openid", "system/.r"} {
		f.Add(s, "GET", "/Patient/1")
	}
	f.Fuzz(func(t *testing.T, scope, method, path string) {
		if sc, ok := ParseScope(scope); ok {
			back, ok := ParseScope(sc.V2())
			if !ok || back.Perms != sc.Perms || back.Resource != sc.Resource || back.Context != sc.Context || back.Query != sc.Query {
				t.Fatalf("V2 %q of %q parses as %+v, %v", sc.V2(), scope, back, ok)
			}
			if v1, _ := sc.V1(); !ScopeCovers(v1, sc.V2()) && sc.Query == "" {
				t.Fatalf("V1 %q does not cover %q", v1, scope)
			}
		}
		_, _ = ConvertScopes(scope, SMARTv1)
		if in, err := RequestInteraction(method, path); err == nil {
			_ = GrantCovers(scope, "system", in, url.Values{"category": {"laboratory"}})
		}
	})
}
