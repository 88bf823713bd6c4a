package callerauth

import (
	"errors"
	"net/url"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in       string
		ok       bool
		want     Scope
		v1       string
		v1Exact  bool
		v2       string
		asString string
	}{
		{in: "system/Patient.read", ok: true, want: Scope{"system", "Patient", PermV1Read, "", SMARTv1},
			v1: "system/Patient.read", v1Exact: true, v2: "system/Patient.rs", asString: "system/Patient.read"},
		{in: "system/Patient.write", ok: true, want: Scope{"system", "Patient", PermV1Write, "", SMARTv1},
			v1: "system/Patient.write", v1Exact: true, v2: "system/Patient.cud"},
		{in: "system/*.*", ok: true, want: Scope{"system", "*", PermAll, "", SMARTv1},
			v1: "system/*.*", v1Exact: true, v2: "system/*.cruds"},
		{in: "system/Patient.rs", ok: true, want: Scope{"system", "Patient", PermV1Read, "", SMARTv2},
			v1: "system/Patient.read", v1Exact: true, v2: "system/Patient.rs", asString: "system/Patient.rs"},
		{in: "system/Patient.cruds", ok: true, want: Scope{"system", "Patient", PermAll, "", SMARTv2},
			v1: "system/Patient.*", v1Exact: true, v2: "system/Patient.cruds"},
		{in: "system/Patient.r", ok: true, want: Scope{"system", "Patient", PermRead, "", SMARTv2},
			v1: "system/Patient.read", v1Exact: false, v2: "system/Patient.r"},
		{in: "system/Observation.cu", ok: true, want: Scope{"system", "Observation", PermCreate | PermUpdate, "", SMARTv2},
			v1: "system/Observation.write", v1Exact: false, v2: "system/Observation.cu"},
		{in: "system/Observation.crs", ok: true, want: Scope{"system", "Observation", PermCreate | PermRead | PermSearch, "", SMARTv2},
			v1: "system/Observation.*", v1Exact: false, v2: "system/Observation.crs"},
		{in: "system/Observation.rs?category=laboratory", ok: true,
			want: Scope{"system", "Observation", PermV1Read, "category=laboratory", SMARTv2},
			v1:   "system/Observation.read", v1Exact: false, v2: "system/Observation.rs?category=laboratory"},
		{in: "patient/*.rs", ok: true, want: Scope{"patient", "*", PermV1Read, "", SMARTv2},
			v1: "patient/*.read", v1Exact: true, v2: "patient/*.rs"},
		{in: "openid"}, {in: "launch/patient"}, {in: "system/Patient.readx"},
		{in: "system/Patient.sr"}, {in: "system/Patient.rr"}, {in: "system/Patient."}, {in: "other/Patient.read"},
		{in: "system/Pat-ient.read"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseScope(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseScope = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
			if !ok {
				return
			}
			if v1, exact := got.V1(); v1 != tc.v1 || exact != tc.v1Exact {
				t.Errorf("V1 = %q, %v; want %q, %v", v1, exact, tc.v1, tc.v1Exact)
			}
			if v2 := got.V2(); v2 != tc.v2 {
				t.Errorf("V2 = %q, want %q", v2, tc.v2)
			}
			if tc.asString != "" && got.String() != tc.asString {
				t.Errorf("String = %q, want %q", got.String(), tc.asString)
			}
			// The other syntax means the same: v2 → parse → same scope;
			// an exact v1 → parse → same permissions.
			if back, _ := ParseScope(got.V2()); back.Perms != got.Perms || back.Query != got.Query || back.Resource != got.Resource {
				t.Errorf("V2 round trip: %+v", back)
			}
			if v1, exact := got.V1(); exact {
				if back, _ := ParseScope(v1); back.Perms != got.Perms {
					t.Errorf("exact V1 round trip: %+v", back)
				}
			} else if !ScopeCovers(v1, got.V2()) {
				t.Errorf("inexact V1 %q does not cover %q", v1, got.V2())
			}
		})
	}
}

func TestConvertScopes(t *testing.T) {
	tests := []struct {
		in    string
		to    ScopeSyntax
		want  string
		exact bool
	}{
		{"system/Patient.read system/Observation.read", SMARTv2, "system/Patient.rs system/Observation.rs", true},
		{"system/Patient.rs openid system/Observation.cruds", SMARTv1, "system/Patient.read openid system/Observation.*", true},
		{"system/Patient.r system/Patient.s", SMARTv1, "system/Patient.read", false},
		{"system/Patient.rs?identifier=x", SMARTv1, "system/Patient.read", false},
		{"system/Patient.read  system/Patient.rs", SMARTv2, "system/Patient.rs", true},
		{"system/Patient.read system/Observation.rs", SyntaxAny, "system/Patient.read system/Observation.rs", true},
		{"", SMARTv1, "", true},
	}
	for _, tc := range tests {
		got, exact := ConvertScopes(tc.in, tc.to)
		if got != tc.want || exact != tc.exact {
			t.Errorf("ConvertScopes(%q, %v) = %q, %v; want %q, %v", tc.in, tc.to, got, exact, tc.want, tc.exact)
		}
	}
}

func TestChooseSyntax(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		caps   []string
		want   ScopeSyntax
	}{
		{"v1 scopes only", []string{"openid", "system/Patient.read", "system/*.read"}, nil, SMARTv1},
		{"v2 scopes only", []string{"system/Patient.rs", "system/Observation.rs?category=laboratory"}, nil, SMARTv2},
		{"both", []string{"system/Patient.read", "system/Patient.rs"}, nil, SyntaxAny},
		{"none", []string{"openid", "udap"}, nil, SyntaxAny},
		{"nothing advertised", nil, nil, SyntaxAny},
		{"capability v2 wins over scopes", []string{"system/Patient.read"}, []string{"permission-v2"}, SMARTv2},
		{"capability v1", nil, []string{"client-confidential-asymmetric", "permission-v1"}, SMARTv1},
		{"both capabilities", nil, []string{"permission-v1", "permission-v2"}, SyntaxAny},
	}
	for _, tc := range tests {
		if got := ChooseSyntax(tc.scopes, tc.caps); got != tc.want {
			t.Errorf("%s: ChooseSyntax = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRequestInteraction(t *testing.T) {
	tests := []struct {
		method, path string
		want         Interaction
		undetermined bool
		bad          bool
	}{
		{method: "GET", path: "/Patient/123", want: Interaction{"read", "Patient", PermRead}},
		{method: "HEAD", path: "/Patient/123", want: Interaction{"read", "Patient", PermRead}},
		{method: "GET", path: "/Patient/123/_history/2", want: Interaction{"vread", "Patient", PermRead}},
		{method: "GET", path: "/Patient/123/_history", want: Interaction{"history-instance", "Patient", PermRead}},
		{method: "GET", path: "/Patient", want: Interaction{"search-type", "Patient", PermSearch}},
		{method: "GET", path: "Patient/", want: Interaction{"search-type", "Patient", PermSearch}},
		{method: "POST", path: "/Patient/_search", want: Interaction{"search-type", "Patient", PermSearch}},
		{method: "GET", path: "/Patient/_history", want: Interaction{"history-type", "Patient", PermSearch}},
		{method: "GET", path: "/Patient/123/Observation", want: Interaction{"search-compartment", "Observation", PermSearch}},
		{method: "POST", path: "/Patient/123/Observation/_search", want: Interaction{"search-compartment", "Observation", PermSearch}},
		{method: "GET", path: "/Patient/123/*", want: Interaction{"search-compartment", "*", PermSearch}},
		{method: "GET", path: "/", want: Interaction{"search-system", "*", PermSearch}},
		{method: "POST", path: "/_search", want: Interaction{"search-system", "*", PermSearch}},
		{method: "GET", path: "/_history", want: Interaction{"history-system", "*", PermSearch}},
		{method: "GET", path: "/metadata", want: Interaction{Name: "capabilities"}},
		{method: "POST", path: "/Observation", want: Interaction{"create", "Observation", PermCreate}},
		{method: "PUT", path: "/Observation/9", want: Interaction{"update", "Observation", PermUpdate}},
		{method: "PUT", path: "/Observation", want: Interaction{"update", "Observation", PermUpdate}},
		{method: "PATCH", path: "/Observation/9", want: Interaction{"patch", "Observation", PermUpdate}},
		{method: "DELETE", path: "/Observation/9", want: Interaction{"delete", "Observation", PermDelete}},
		{method: "DELETE", path: "/Observation", want: Interaction{"delete", "Observation", PermDelete}},
		{method: "POST", path: "/", undetermined: true},
		{method: "GET", path: "/Patient/123/$everything", undetermined: true},
		{method: "POST", path: "/$export", undetermined: true},
		{method: "GET", path: "/patient/123", bad: true},
		{method: "POST", path: "/Patient/123", bad: true},
		{method: "GET", path: "/Patient/_foo", bad: true},
		{method: "DELETE", path: "/", bad: true},
		{method: "GET", path: "/Patient/1/2/3/4/5", bad: true},
		{method: "GET", path: "/Patient/1/2/3/4/5/$op", undetermined: true}, // an operation past the segments kept
	}
	for _, tc := range tests {
		got, err := RequestInteraction(tc.method, tc.path)
		switch {
		case tc.undetermined:
			if !errors.Is(err, ErrUndetermined) {
				t.Errorf("%s %s: %v, want ErrUndetermined", tc.method, tc.path, err)
			}
		case tc.bad:
			if err == nil || errors.Is(err, ErrUndetermined) {
				t.Errorf("%s %s: %+v, %v; want an error", tc.method, tc.path, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s %s = %+v, %v; want %+v", tc.method, tc.path, got, err, tc.want)
		}
	}
}

func TestGrantCovers(t *testing.T) {
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	tests := []struct {
		granted, method, path, query string
		want                         bool
	}{
		{"system/Patient.read", "GET", "/Patient/1", "", true},
		{"system/Patient.rs", "GET", "/Patient", "name=x", true},
		{"system/Patient.r", "GET", "/Patient", "name=x", false},
		{"system/Patient.s", "GET", "/Patient/1", "", false},
		{"system/Patient.read", "POST", "/Patient", "", false},
		{"system/Patient.write", "POST", "/Patient", "", true},
		{"system/Patient.c", "PUT", "/Patient/1", "", false},
		{"system/Patient.u", "PATCH", "/Patient/1", "", true},
		{"system/Patient.cruds", "DELETE", "/Patient/1", "", true},
		{"system/*.read", "GET", "/Observation/1", "", true},
		{"system/*.rs", "GET", "/", "_type=Patient", true},
		{"system/Patient.rs", "GET", "/", "_type=Patient", false},
		{"system/Patient.read system/Observation.read", "GET", "/Patient/1/Observation", "", true},
		{"system/Patient.read", "GET", "/Patient/1/Observation", "", false},
		{"patient/Patient.read", "GET", "/Patient/1", "", false},
		{"user/*.*", "GET", "/Patient/1", "", false},
		{"openid fhirUser", "GET", "/Patient/1", "", false},
		{"", "GET", "/metadata", "", true},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation", "category=laboratory&patient=1", true},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation", "category=vital-signs", false},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation", "category=laboratory,vital-signs", false},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation", "patient=1", false},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation", "category:not=laboratory", false},
		{"system/Observation.rs?category=laboratory", "GET", "/Observation/1", "", false},
		{"system/Observation.rs?category=laboratory system/Observation.r", "GET", "/Observation/1", "", true},
	}
	for _, tc := range tests {
		in, err := RequestInteraction(tc.method, tc.path)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if got := GrantCovers(tc.granted, "system", in, q(tc.query)); got != tc.want {
			t.Errorf("GrantCovers(%q, %s %s?%s) = %v, want %v", tc.granted, tc.method, tc.path, tc.query, got, tc.want)
		}
		if got := ParseGrant(tc.granted).Covers("system", in, q(tc.query)); got != tc.want {
			t.Errorf("ParseGrant(%q).Covers(%s %s?%s) = %v, want %v", tc.granted, tc.method, tc.path, tc.query, got, tc.want)
		}
	}
}

// A grant is SMART when one of its scopes is.
func TestParseGrantSmart(t *testing.T) {
	for _, tc := range []struct {
		granted string
		want    bool
	}{
		{"", false},
		{"openid fhirUser", false},
		{"custom-scope system/Patient.readx", false},
		{"openid system/Patient.read", true},
		{"  system/*.rs  ", true},
	} {
		if got := ParseGrant(tc.granted).Smart(); got != tc.want {
			t.Errorf("ParseGrant(%q).Smart() = %v, want %v", tc.granted, got, tc.want)
		}
	}
}
