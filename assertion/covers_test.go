package assertion

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestTokenCovers(t *testing.T) {
	tests := []struct {
		name, granted, requested, method, path string
		query                                  string
		ok                                     bool
	}{
		{"v1 read covers read", "system/Patient.read", "", "GET", "/Patient/1", "", true},
		{"v1 read covers search", "system/Patient.read", "", "GET", "/Patient", "name=x", true},
		{"v2 rs covers search", "system/*.rs", "", "GET", "/Observation", "", true},
		{"v2 r does not cover search", "system/Observation.r", "", "GET", "/Observation", "", false},
		{"read does not cover create", "system/Patient.read", "", "POST", "/Patient", "", false},
		{"other resource", "system/Patient.rs", "", "GET", "/Observation/1", "", false},
		{"restricted search with the value", "system/Observation.rs?category=laboratory", "", "GET", "/Observation", "category=laboratory", true},
		{"restricted search without it", "system/Observation.rs?category=laboratory", "", "GET", "/Observation", "", false},
		{"no scope in the response: the requested one", "", "system/Patient.read", "GET", "/Patient/1", "", true},
		{"no scope in the response, requested not covering", "", "system/Patient.read", "DELETE", "/Patient/1", "", false},
		{"capabilities need nothing", "system/Patient.read", "", "GET", "/metadata", "", true},
		{"operations cannot be judged", "system/Patient.read", "", "POST", "/Patient/$match", "", true},
		{"transactions cannot be judged", "system/Patient.read", "", "POST", "/", "", true},
		{"a grant with no SMART scope cannot be judged", "custom-scope", "", "DELETE", "/Patient/1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A token of its own, and one a Cache handed out (its grant
			// parsed at the first call and kept), asked twice.
			cached := &Token{Scope: tt.granted}
			cached.prebuild()
			for _, tok := range []*Token{{Scope: tt.granted}, cached, cached} {
				err := tok.Covers(tt.requested, tt.method, tt.path, tt.query)
				var se *ScopeError
				switch {
				case tt.ok && err != nil:
					t.Fatalf("Covers = %v, want nil", err)
				case !tt.ok && (!errors.As(err, &se) || !strings.Contains(err.Error(), tt.path)):
					t.Fatalf("Covers = %v, want a ScopeError naming %s", err, tt.path)
				}
			}
		})
	}
}

// A cached token's grant is parsed once, and again only when the
// requested scope it stands for (no scope in the response) changes.
func TestTokenCoversKeepsTheParsedGrant(t *testing.T) {
	tok := &Token{}
	tok.prebuild()
	if err := tok.Covers("system/Patient.read", "GET", "/Patient/1", ""); err != nil {
		t.Fatal(err)
	}
	first := tok.pre.grant.Load()
	if first == nil || first.Scope != "system/Patient.read" {
		t.Fatalf("grant kept: %+v", first)
	}
	if err := tok.Covers("system/Patient.read", "GET", "/Patient/2", ""); err != nil || tok.pre.grant.Load() != first {
		t.Errorf("the same grant was parsed again (%v)", err)
	}
	if err := tok.Covers("system/Observation.read", "GET", "/Patient/1", ""); err == nil {
		t.Errorf("another requested scope was judged by the first grant")
	}
}

// BenchmarkTokenCovers is the per-request cost of the granted-scope
// check, for a token of its own and for one a Cache handed out.
func BenchmarkTokenCovers(b *testing.B) {
	for _, cached := range []bool{false, true} {
		b.Run(map[bool]string{false: "uncached", true: "cached"}[cached], func(b *testing.B) {
			tok := &Token{Scope: "system/Patient.read system/Observation.rs system/Encounter.read"}
			if cached {
				tok.prebuild()
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := tok.Covers("", "GET", "/Observation", "patient=123&category=laboratory"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Covers is on every forwarded request (tokens.enforce_granted_scope):
// a covered read allocates nothing (RequestInteraction keeps the path's
// segments on the stack).
func TestTokenCoversAllocations(t *testing.T) {
	tok := &Token{Scope: "openid system/Patient.read system/Observation.rs"}
	if err := tok.Covers("", http.MethodGet, "/Patient/123", ""); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = tok.Covers("", http.MethodGet, "/Patient/123", "") }); n > 0 {
		t.Errorf("a covered read allocates %v times, want 0", n)
	}
	cached := &Token{Scope: tok.Scope}
	cached.prebuild()
	if n := testing.AllocsPerRun(100, func() { _ = cached.Covers("", http.MethodGet, "/Patient/123", "") }); n > 0 {
		t.Errorf("a covered read with a cached token allocates %v times, want 0", n)
	}
}

// only a next page ([base]?_getpages=… with HAPI's paging
// parameters) is left to the server; a system-wide search that merely
// carries _getpages besides search parameters is not a page and must be
// held to the grant (a server other than HAPI ignores _getpages and
// searches every type).
func TestGetpagesIsNotAPassForASearch(t *testing.T) {
	tok := &Token{Scope: "system/Observation.read"}
	for _, q := range []string{"_type=Patient&_getpages=x", "_getpages=x&_type=Patient&name=smith", "_getpages=x&_id=1"} {
		var se *ScopeError
		if err := tok.Covers("", "GET", "", q); !errors.As(err, &se) {
			t.Errorf("GET [base]?%s under system/Observation.read: %v, want a *ScopeError", q, err)
		}
	}
	// HAPI's own next link stays a page.
	if err := tok.Covers("", "GET", "", "_getpages=abc&_getpagesoffset=20&_count=20&_format=json&_pretty=true&_bundletype=searchset"); err != nil {
		t.Errorf("HAPI next link: %v", err)
	}
}
