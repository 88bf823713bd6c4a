package callerauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

const (
	treat   = "urn:oid:2.16.840.1.113883.5.8#TREAT"
	payment = "urn:oid:2.16.840.1.113883.5.8#HPAYMT"
	spiffe  = "spiffe://cluster.local/ns/ops/sa/ops"
)

func testPolicy(t testing.TB) *callerauth.Policy {
	t.Helper()
	p, err := callerauth.NewPolicy(map[string]callerauth.Rule{
		"billing-svc": {
			Organizations:    []string{"2.16.840.1.113883.3.*", "1.2.3.4"},
			Scopes:           []string{"system/*.read"},
			PurposesOfUse:    []string{treat},
			ExchangePurposes: []string{"T-TREAT"},
		},
		"writer": {
			Organizations: []string{"*"},
			Methods:       []string{"GET", "post", " DELETE "},
			Scopes:        []string{"system/Patient.*", "system/*.rs", "system/Observation.rs?category=laboratory", "openid"},
		},
		"head-only": {Organizations: []string{"1.2.3.4"}, Methods: []string{"HEAD"}},
		"anything":  {Organizations: []string{"*"}, Methods: []string{"*"}},
		"anonymous": {Organizations: []string{"*"}},
		spiffe:      {Organizations: []string{"urn:oid:1.2.3.4", "2.*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyAuthorize(t *testing.T) {
	p := testPolicy(t)
	billing := &callerauth.Identity{Name: "billing-svc", Method: callerauth.MethodAPIKey}
	writer := &callerauth.Identity{Name: "writer", Method: callerauth.MethodMTLS}
	headOnly := &callerauth.Identity{Name: "head-only", Method: callerauth.MethodAPIKey}
	anything := &callerauth.Identity{Name: "anything", Method: callerauth.MethodAPIKey}
	anon := &callerauth.Identity{Name: "anonymous", Method: callerauth.MethodNone}
	ops := &callerauth.Identity{Name: spiffe, Method: callerauth.MethodMTLS}
	get := func(oid string) callerauth.Request {
		return callerauth.Request{OID: oid, Method: "GET", FHIRPath: "/Patient/1"}
	}
	req := func(method, path string) callerauth.Request {
		return callerauth.Request{OID: "1.2.3.4", Method: method, FHIRPath: path}
	}
	scoped := func(scope string) callerauth.Request {
		return callerauth.Request{OID: "1.2.3.4", Method: "GET", Scope: scope}
	}
	pou := func(v ...string) callerauth.Request {
		return callerauth.Request{OID: "1.2.3.4", Method: "GET", PurposesOfUse: v}
	}
	xp := func(code string) callerauth.Request {
		return callerauth.Request{OID: "1.2.3.4", Method: "GET", ExchangePurpose: code}
	}

	tests := []struct {
		name     string
		id       *callerauth.Identity
		req      callerauth.Request
		wantRule string // "" to allow
		reason   string
	}{
		// Exchange purposes.
		{"allowed exchange purpose", billing, xp("T-TREAT"), "", ""},
		{"other exchange purpose", billing, xp("T-PYMNT"), "callers.billing-svc.exchange_purposes", `exchange purpose "T-PYMNT" is not allowed`},
		{"no exchange purposes configured", writer, xp("T-TREAT"), "callers.writer.exchange_purposes", ""},
		{"no exchange purpose chosen", writer, xp(""), "", ""},
		// Organizations.
		{"prefix matches a child", billing, get("2.16.840.1.113883.3.7"), "", ""},
		{"prefix matches a descendant", billing, get("2.16.840.1.113883.3.7.1.2"), "", ""},
		{"prefix stops at arc boundaries", billing, get("2.16.840.1.113883.31"), "callers.billing-svc.organizations", `organization "2.16.840.1.113883.31" is not allowed`},
		{"prefix does not match its own node", billing, get("2.16.840.1.113883.3"), "callers.billing-svc.organizations", ""},
		{"prefix does not match a parent", billing, get("2.16.840.1.113883"), "callers.billing-svc.organizations", ""},
		{"exact OID", billing, get("1.2.3.4"), "", ""},
		{"exact OID as URN", billing, get("urn:oid:1.2.3.4"), "", ""},
		{"exact OID as upper-case URN", billing, get("URN:OID:1.2.3.4"), "", ""},
		{"exact OID is not a prefix", billing, get("1.2.3.45"), "callers.billing-svc.organizations", ""},
		{"exact OID does not match its child", billing, get("1.2.3.4.5"), "callers.billing-svc.organizations", ""},
		{"exact OID does not match its parent", billing, get("1.2.3"), "callers.billing-svc.organizations", ""},
		{"no OID", billing, get(""), "callers.billing-svc.organizations", "no organization given"},
		{"star matches all", anon, get("1.3.6.1.4.1.99"), "", ""},
		{"short prefix", ops, get("2.999.1"), "", ""},
		{"URN in the configuration", ops, get("1.2.3.4"), "", ""},
		{"URI caller elsewhere", ops, get("1.3.6"), "callers." + spiffe + ".organizations", ""},
		// Methods.
		{"default allows GET", billing, req("GET", "/Patient/1"), "", ""},
		{"default allows HEAD", billing, req("HEAD", "/Patient/1"), "", ""},
		{"default refuses POST", billing, req("POST", "/Patient"), "callers.billing-svc.methods", `method "POST" is not allowed`},
		{"default refuses PUT", billing, req("PUT", "/Patient/1"), "callers.billing-svc.methods", ""},
		{"default refuses DELETE", billing, req("DELETE", "/Patient/1"), "callers.billing-svc.methods", ""},
		{"default refuses PATCH", billing, req("PATCH", "/Patient/1"), "callers.billing-svc.methods", ""},
		{"POST _search is a read", billing, req("POST", "/Patient/_search"), "", ""},
		{"POST _search without leading slash", billing, req("POST", "Patient/_search"), "", ""},
		{"system-level POST _search", billing, req("POST", "/_search"), "", ""},
		{"POST _search with trailing slash", billing, req("POST", "/Patient/_search/"), "", ""},
		{"compartment POST _search", billing, req("POST", "/Patient/1/Observation/_search"), "", ""},
		{"POST of an operation is not a read", billing, req("POST", "/Patient/1/$everything"), "callers.billing-svc.methods", ""},
		{"POST to a resource named like _search", billing, req("POST", "/Patient/x_search"), "callers.billing-svc.methods", ""},
		{"lower-case method is not GET", billing, req("get", "/Patient/1"), "callers.billing-svc.methods", ""},
		{"explicit POST", writer, req("POST", "/Patient"), "", ""},
		{"explicit DELETE", writer, req("DELETE", "/Patient/1"), "", ""},
		{"explicit list refuses PUT", writer, req("PUT", "/Patient/1"), "callers.writer.methods", ""},
		{"explicit list without HEAD", writer, req("HEAD", "/Patient/1"), "callers.writer.methods", ""},
		{"HEAD only refuses GET", headOnly, req("GET", "/Patient/1"), "callers.head-only.methods", ""},
		{"HEAD only refuses POST _search", headOnly, req("POST", "/Patient/_search"), "callers.head-only.methods", "POST _search counts as GET"},
		{"star allows PATCH", anything, req("PATCH", "/Patient/1"), "", ""},
		// Scopes.
		{"no scope requested", billing, scoped(""), "", ""},
		{"wildcard resource", billing, scoped("system/Patient.read"), "", ""},
		{"the wildcard itself", billing, scoped("system/*.read"), "", ""},
		{"several scopes", billing, scoped("system/Patient.read  system/Observation.read"), "", ""},
		{"v1 read covers v2 rs", billing, scoped("system/Patient.rs"), "", ""},
		{"v1 read covers v2 r", billing, scoped("system/Patient.r"), "", ""},
		{"read does not cover write", billing, scoped("system/Patient.write"), "callers.billing-svc.scopes", `scope "system/Patient.write" is not allowed`},
		{"read does not cover cruds", billing, scoped("system/Patient.cruds"), "callers.billing-svc.scopes", ""},
		{"one bad scope among good ones", billing, scoped("system/Patient.read system/Patient.write"), "callers.billing-svc.scopes", "system/Patient.write"},
		{"other context", billing, scoped("user/Patient.read"), "callers.billing-svc.scopes", ""},
		{"non-SMART scope", billing, scoped("openid"), "callers.billing-svc.scopes", ""},
		{"v2 wildcard covers s", writer, scoped("system/Observation.s"), "", ""},
		{"v2 wildcard covers v1 read", writer, scoped("system/Condition.read"), "", ""},
		{"v2 wildcard does not cover c", writer, scoped("system/Observation.c"), "callers.writer.scopes", ""},
		{"v2 wildcard covers any query", writer, scoped("system/Condition.rs?category=x"), "", ""},
		{"resource star covers c", writer, scoped("system/Patient.c"), "", ""},
		{"resource star covers write", writer, scoped("system/Patient.write"), "", ""},
		{"granted query, same query", writer, scoped("system/Observation.rs?category=laboratory"), "", ""},
		{"letters out of order are not SMART", writer, scoped("system/Observation.sr"), "callers.writer.scopes", ""},
		{"exact non-SMART scope", writer, scoped("openid"), "", ""},
		{"other non-SMART scope", writer, scoped("profile"), "callers.writer.scopes", ""},
		{"no scope rule: any scope", anon, scoped("system/*.write"), "", ""},
		// Purposes of use.
		{"allowed purpose", billing, pou(treat), "", ""},
		{"allowed purpose with spaces", billing, pou(" " + treat + " "), "", ""},
		{"purpose not allowed", billing, pou(payment), "callers.billing-svc.purposes_of_use", `purpose of use "` + payment + `" is not allowed`},
		{"comma list with one not allowed", billing, pou(treat + ", " + payment), "callers.billing-svc.purposes_of_use", ""},
		{"second header not allowed", billing, pou(treat, payment), "callers.billing-svc.purposes_of_use", ""},
		{"empty header values", billing, pou("", " , "), "", ""},
		{"no purposes configured", anon, pou(treat), "callers.anonymous.purposes_of_use", ""},
		// Callers.
		{"unknown caller", &callerauth.Identity{Name: "nobody", Method: callerauth.MethodAPIKey}, get("1.2.3.4"), "callers.nobody", "caller is not configured"},
		{"no identity", nil, get("1.2.3.4"), "callers", "no authenticated caller"},
		// Order: organizations are checked first.
		{"organizations before methods", billing, callerauth.Request{OID: "9.9", Method: "DELETE"}, "callers.billing-svc.organizations", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Authorize(tt.id, tt.req)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Authorize: %v", err)
				}
				return
			}
			var de *callerauth.DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DeniedError", err)
			}
			if de.Rule != tt.wantRule {
				t.Errorf("Rule = %q, want %q", de.Rule, tt.wantRule)
			}
			if tt.id != nil && de.Caller != tt.id.Name {
				t.Errorf("Caller = %q, want %q", de.Caller, tt.id.Name)
			}
			if !strings.Contains(de.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", de.Reason, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "callerauth: caller ") || !strings.Contains(err.Error(), "denied by "+tt.wantRule+": ") {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules map[string]callerauth.Rule
		want  []string
	}{
		{name: "no organizations", rules: map[string]callerauth.Rule{"a": {}}, want: []string{"callers.a.organizations: empty"}},
		{name: "bad OID", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"1.2.x"}}}, want: []string{`callers.a.organizations[0]: "1.2.x" is not an OID`}},
		{name: "one arc", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"1"}}}, want: []string{"organizations[0]"}},
		{name: "leading zero", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"1.02.3"}}}, want: []string{"organizations[0]"}},
		{name: "wildcard mid-OID", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"1.2.*.4"}}}, want: []string{"organizations[0]"}},
		{name: "wildcard without dot", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"1.2*"}}}, want: []string{"organizations[0]"}},
		{name: "bare dot-star", rules: map[string]callerauth.Rule{"a": {Organizations: []string{".*"}}}, want: []string{`".*" is not an OID prefix`}},
		{name: "bad method", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"*"}, Methods: []string{"GET", "FETCH"}}}, want: []string{`callers.a.methods[1]: "FETCH"`}},
		{name: "scope with space", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"*"}, Scopes: []string{"system/*.read system/*.write"}}}, want: []string{"callers.a.scopes[0]"}},
		{name: "empty purpose", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"*"}, PurposesOfUse: []string{""}}}, want: []string{"callers.a.purposes_of_use[0]"}},
		{name: "purpose with comma", rules: map[string]callerauth.Rule{"a": {Organizations: []string{"*"}, PurposesOfUse: []string{"a,b"}}}, want: []string{"purposes_of_use[0]"}},
		{name: "empty caller", rules: map[string]callerauth.Rule{"": {Organizations: []string{"*"}}}, want: []string{"empty caller name"}},
		{name: "all at once", rules: map[string]callerauth.Rule{"a": {}, "b": {Organizations: []string{"*"}, Methods: []string{"X"}}},
			want: []string{"callers.a.organizations", "callers.b.methods[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callerauth.NewPolicy(tt.rules)
			if err == nil {
				t.Fatal("NewPolicy succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestPolicyCallers(t *testing.T) {
	p := testPolicy(t)
	if got := strings.Join(p.Callers(), ","); got != "anonymous,anything,billing-svc,head-only,"+spiffe+",writer" {
		t.Errorf("Callers = %s", got)
	}
	if !p.Has("billing-svc") || p.Has("nobody") {
		t.Error("Has is wrong")
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		allowed, requested string
		want               bool
	}{
		{"system/*.read", "", true},
		{"system/*.read", "system/Patient.read", true},
		{"system/*.read", "system/Patient.read system/Observation.rs", true},
		{"system/*.read", "system/Patient.write", false},
		{"system/Patient.read system/Observation.read", "system/Observation.read", true},
		{"system/Patient.read", "system/*.read", false},
		{"system/*.*", "system/Patient.cruds", true},
		{"system/*.cruds", "system/Patient.write", true},
		{"system/*.cud", "system/Patient.write", true},
		{"system/*.cud", "system/Patient.read", false},
		{"system/*.rs", "patient/Patient.rs", false},
		{"", "system/Patient.read", false},
		{"launch/patient", "launch/patient", true},
		{"system/Patient.read-only", "system/Patient.read", false},
		{"system/*.rs?category=a", "system/Observation.rs?category=b", false},
		{"system/*.rs?category=a", "system/Observation.rs", false},
		{"system/Patient.rr", "system/Patient.r", false},
		{"system/Pat1ent.read", "system/Pat1ent.read", true}, // not SMART, but identical
	}
	for _, tt := range tests {
		if got := callerauth.ScopeCovers(tt.allowed, tt.requested); got != tt.want {
			t.Errorf("ScopeCovers(%q, %q) = %v, want %v", tt.allowed, tt.requested, got, tt.want)
		}
	}
}

// allowedRequest is a typical request that passes every check.
var allowedRequest = callerauth.Request{
	OID:           "2.16.840.1.113883.3.13.1",
	Method:        "POST",
	FHIRPath:      "/Observation/_search",
	Scope:         "system/Observation.read system/Patient.rs",
	PurposesOfUse: []string{treat},
}

func TestAuthorizeDoesNotAllocate(t *testing.T) {
	p := testPolicy(t)
	id := &callerauth.Identity{Name: "billing-svc", Method: callerauth.MethodAPIKey}
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Authorize(id, allowedRequest); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Authorize allocates %v times per allowed request, want 0", allocs)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	p := testPolicy(b)
	id := &callerauth.Identity{Name: "billing-svc", Method: callerauth.MethodAPIKey}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Authorize(id, allowedRequest); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidScope(t *testing.T) {
	for s, want := range map[string]bool{
		"":                                      true,
		"system/Patient.read":                   true,
		"system/Patient.rs?x=1 system/Obs.read": true,
		"system/Patient.rs?x=1\tsystem/Patient.cud": false,
		"a\nb":     false,
		"a\u00a0b": false,
		`a"b`:      false,
		`a\b`:      false,
	} {
		if got := callerauth.ValidScope(s); got != want {
			t.Errorf("ValidScope(%q) = %v, want %v", s, got, want)
		}
	}
}
