package assertion

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestTokenCovers(t *testing.T) {
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	tests := []struct {
		name, granted, requested, method, path string
		query                                  url.Values
		ok                                     bool
	}{
		{"v1 read covers read", "system/Patient.read", "", "GET", "/Patient/1", nil, true},
		{"v1 read covers search", "system/Patient.read", "", "GET", "/Patient", q("name=x"), true},
		{"v2 rs covers search", "system/*.rs", "", "GET", "/Observation", nil, true},
		{"v2 r does not cover search", "system/Observation.r", "", "GET", "/Observation", nil, false},
		{"read does not cover create", "system/Patient.read", "", "POST", "/Patient", nil, false},
		{"other resource", "system/Patient.rs", "", "GET", "/Observation/1", nil, false},
		{"restricted search with the value", "system/Observation.rs?category=laboratory", "", "GET", "/Observation", q("category=laboratory"), true},
		{"restricted search without it", "system/Observation.rs?category=laboratory", "", "GET", "/Observation", nil, false},
		{"no scope in the response: the requested one", "", "system/Patient.read", "GET", "/Patient/1", nil, true},
		{"no scope in the response, requested not covering", "", "system/Patient.read", "DELETE", "/Patient/1", nil, false},
		{"capabilities need nothing", "system/Patient.read", "", "GET", "/metadata", nil, true},
		{"operations cannot be judged", "system/Patient.read", "", "POST", "/Patient/$match", nil, true},
		{"transactions cannot be judged", "system/Patient.read", "", "POST", "/", nil, true},
		{"a grant with no SMART scope cannot be judged", "custom-scope", "", "DELETE", "/Patient/1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &Token{Scope: tt.granted}
			err := tok.Covers(tt.requested, tt.method, tt.path, tt.query)
			var se *ScopeError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Covers = %v, want nil", err)
			case !tt.ok && (!errors.As(err, &se) || !strings.Contains(err.Error(), tt.path)):
				t.Fatalf("Covers = %v, want a ScopeError naming %s", err, tt.path)
			}
		})
	}
}
