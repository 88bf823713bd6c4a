package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/outcome"
)

type stubDir map[string]*directory.Organization

func (s stubDir) Lookup(_ context.Context, oid string) (*directory.Entry, error) {
	if oid == "9.9" {
		return nil, &directory.Error{URL: "https://dir/Organization/9.9", StatusCode: 500}
	}
	o, ok := s[oid]
	if !ok {
		return nil, fmt.Errorf("stub: %w", directory.ErrNotFound)
	}
	return directory.NewEntry(o, "directory"), nil
}

type stubDisc struct {
	calls int
	last  discovery.Request
	udap  bool
	algs  []string
	token string // overrides the token URL when set
	// scopes and caps are the advertised scopes_supported and
	// capabilities.
	scopes, caps []string
	// register and regAlgs are the UDAP registration endpoint and its
	// algorithms.
	register string
	regAlgs  []string
}

func (s *stubDisc) Discover(_ context.Context, req discovery.Request) (*discovery.Result, error) {
	s.calls++
	s.last = req
	base := req.FHIRBase
	if base == "https://broken.example/fhir" {
		return nil, &discovery.NoTokenURLError{FHIRBase: base, Attempts: []discovery.Attempt{{Source: discovery.SourceCarequalityToken,
			URL: base + "/metadata", Outcome: "failed: HTTP 503", Err: &discovery.Error{URL: base + "/metadata", StatusCode: 503}}}}
	}
	tok := base + "/Authorization/token"
	if s.token != "" {
		tok = s.token
	}
	return &discovery.Result{TokenURL: tok, Source: "carequality-token", UDAP: s.udap, SigningAlgorithms: s.algs,
		ScopesSupported: s.scopes, Capabilities: s.caps, RegistrationEndpoint: s.register, RegistrationSigningAlgorithms: s.regAlgs,
		Attempts: []discovery.Attempt{{Source: discovery.SourceCarequalityToken, URL: base + "/metadata", Outcome: "used", TokenURL: tok}}}, nil
}

func org(oid string, eps ...directory.Endpoint) *directory.Organization {
	return &directory.Organization{OID: oid, Name: "Org " + oid, Active: true, Endpoints: eps}
}

var (
	fhirEP = directory.Endpoint{Address: "https://fhir.example/r4/", ConnectionType: "hl7-fhir-rest", Transaction: "FHIR REST", Version: "4.0.1", Status: "active"}
	xcpdEP = directory.Endpoint{Address: "https://soap.example/xcpd", ConnectionType: "ihe-xcpd", Transaction: "XCPD ITI-55", Status: "active"}
)

func TestResolve(t *testing.T) {
	dir := stubDir{
		"1.1": org("1.1", xcpdEP, fhirEP),
		"1.2": org("1.2", xcpdEP),
		"1.3": org("1.3", fhirEP),
		"1.4": org("1.4", directory.Endpoint{Address: "https://broken.example/fhir", Transaction: "FHIR REST", Status: "active"}),
	}
	r := &Resolver{
		Directory: dir,
		Defaults:  Settings{ClientID: "gw.example.org", Scope: "system/*.read", Algorithm: jose.RS384},
		Orgs:      map[string]Settings{"1.3": {TokenURL: "https://auth.example/token", Scope: "system/Patient.read", Algorithm: jose.RS256}},
	}
	tests := []struct {
		oid        string
		wantStatus int // 0: success
		check      func(*testing.T, *Tenant, *stubDisc)
	}{
		{oid: "1.1", check: func(t *testing.T, tn *Tenant, d *stubDisc) {
			if tn.FHIRBase != "https://fhir.example/r4" || tn.TokenURL != "https://fhir.example/r4/Authorization/token" ||
				tn.TokenURLSource != "carequality-token" || tn.ClientID != "gw.example.org" || tn.Algorithm != jose.RS384 || d.calls != 1 {
				t.Errorf("tenant = %+v (discovery calls %d)", tn, d.calls)
			}
		}},
		{oid: "1.3", check: func(t *testing.T, tn *Tenant, d *stubDisc) {
			if tn.TokenURL != "https://auth.example/token" || tn.TokenURLSource != "config" || tn.Scope != "system/Patient.read" || tn.Algorithm != jose.RS256 || d.calls != 0 {
				t.Errorf("configured overrides not applied: %+v (discovery calls %d)", tn, d.calls)
			}
		}},
		{oid: "1.2", wantStatus: http.StatusBadGateway},
		{oid: "1.4", wantStatus: http.StatusBadGateway},
		{oid: "9.9", wantStatus: http.StatusBadGateway},
		{oid: "7.7", wantStatus: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.oid, func(t *testing.T) {
			d := &stubDisc{}
			r.Discovery = d
			tn, err := r.Resolve(context.Background(), tt.oid)
			if tt.wantStatus != 0 {
				if status, _ := outcome.FromError(err); status != tt.wantStatus {
					t.Fatalf("Resolve error %v classified %d, want %d", err, status, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, tn, d)
		})
	}
}

func TestDescribeKeepsDiscoveryFailure(t *testing.T) {
	r := &Resolver{
		Directory: stubDir{"1.4": org("1.4", directory.Endpoint{Address: "https://broken.example/fhir", Transaction: "FHIR REST", Status: "active"})},
		Discovery: &stubDisc{},
	}
	tn, err := r.Describe(context.Background(), "1.4")
	if err != nil {
		t.Fatal(err)
	}
	if tn.TokenURL != "" || tn.TokenURLError == "" || tn.FHIRBase != "https://broken.example/fhir" || len(tn.Discovery) != 1 {
		t.Errorf("describe = %+v", tn)
	}
	var de *discovery.Error
	if _, err := r.Resolve(context.Background(), "1.4"); !errors.As(err, &de) {
		t.Errorf("Resolve should fail with the discovery error, got %v", err)
	}
}

func TestResolveRefusesPrivateAddresses(t *testing.T) {
	loopback := directory.Endpoint{Address: "http://127.0.0.1:8080/fhir", Transaction: "FHIR REST", Status: "active"}
	metadata := directory.Endpoint{Address: "https://169.254.169.254/latest", Transaction: "FHIR REST", Status: "active"}
	dir := stubDir{"1.1": org("1.1", loopback), "1.2": org("1.2", metadata), "1.3": org("1.3", fhirEP)}
	tests := []struct {
		name       string
		oid        string
		settings   Settings
		disc       *stubDisc
		wantStatus int
	}{
		{"loopback http base", "1.1", Settings{}, &stubDisc{}, http.StatusForbidden},
		{"link-local base", "1.2", Settings{}, &stubDisc{}, http.StatusForbidden},
		{"allowed sandbox", "1.1", Settings{AllowPrivate: true}, &stubDisc{}, 0},
		{"discovered token URL on metadata service", "1.3", Settings{}, &stubDisc{token: "https://169.254.169.254/token"}, http.StatusForbidden},
		{"configured http token URL", "1.3", Settings{TokenURL: "http://auth.example/token"}, &stubDisc{}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Directory: dir, Discovery: tt.disc, Orgs: map[string]Settings{tt.oid: tt.settings}}
			tn, err := r.Resolve(context.Background(), tt.oid)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !tn.AllowPrivate {
					t.Error("tenant should carry AllowPrivate")
				}
				return
			}
			status, oo := outcome.FromError(err)
			if status != tt.wantStatus || !strings.Contains(oo.Issue[0].Diagnostics, "egress: refusing") {
				t.Fatalf("error %v classified %d, want %d naming the refusal", err, status, tt.wantStatus)
			}
		})
	}
}

func TestResolvePassesDiscoverySettingsAndVersions(t *testing.T) {
	dstu2 := directory.Endpoint{Address: "https://fhir.example/dstu2", Transaction: "FHIR REST", Version: "1.0.2", FHIRVersion: "DSTU2", Status: "active"}
	r4 := directory.Endpoint{Address: "https://fhir.example/r4", Transaction: "FHIR REST", Version: "4.0.1", FHIRVersion: "R4", Status: "active"}
	d := &stubDisc{}
	order := []discovery.Source{discovery.SourceUDAP, discovery.SourceToken}
	r := &Resolver{
		Directory: stubDir{"1.1": org("1.1", dstu2, r4)},
		Discovery: d,
		Defaults:  Settings{FHIRVersions: []string{"R4"}, DiscoveryOrder: discovery.DefaultOrder()},
		Orgs:      map[string]Settings{"1.1": {FHIRVersions: []string{"DSTU2"}, DiscoveryOrder: order, CernerOverride: true}},
	}
	tn, err := r.Resolve(context.Background(), "1.1")
	if err != nil {
		t.Fatal(err)
	}
	if tn.FHIRBase != "https://fhir.example/dstu2" {
		t.Errorf("FHIR base %s, want the DSTU2 endpoint the organization prefers", tn.FHIRBase)
	}
	if d.last.FHIRBase != tn.FHIRBase || !d.last.CernerOverride || len(d.last.Order) != 2 || d.last.Order[0] != discovery.SourceUDAP {
		t.Errorf("discovery request = %+v", d.last)
	}
}

func TestUDAP(t *testing.T) {
	b2b := &assertion.B2B{OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}
	treat, payment := "urn:oid:2.16.840.1.113883.5.8#TREAT", "urn:oid:2.16.840.1.113883.5.8#HPAYMT"
	tests := []struct {
		name     string
		settings Settings
		udapSeen bool
		wantUDAP bool
	}{
		{"configured", Settings{UDAP: true, B2B: b2b}, false, true},
		{"discovered with a context", Settings{B2B: b2b}, true, true},
		{"discovered without a context", Settings{}, true, false},
		{"neither", Settings{B2B: b2b}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Directory: stubDir{"1.1": org("1.1", fhirEP)}, Discovery: &stubDisc{udap: tt.udapSeen, algs: []string{"RS256"}},
				Orgs: map[string]Settings{"1.1": tt.settings}}
			tn, err := r.Resolve(context.Background(), "1.1")
			if err != nil {
				t.Fatal(err)
			}
			if tn.UDAP != tt.wantUDAP || (tt.wantUDAP && (tn.B2B == nil || tn.B2B.OrganizationID != b2b.OrganizationID)) {
				t.Fatalf("UDAP = %v, B2B = %+v", tn.UDAP, tn.B2B)
			}
			if len(tn.SigningAlgorithms) != 1 {
				t.Errorf("server algorithms not kept: %v", tn.SigningAlgorithms)
			}
		})
	}

	r := &Resolver{Directory: stubDir{"1.1": org("1.1", fhirEP)}, Discovery: &stubDisc{},
		Orgs: map[string]Settings{"1.1": {UDAP: true, B2B: b2b, AllowedPurposes: []string{treat, payment}}}}
	tn, err := r.Resolve(context.Background(), "1.1")
	if err != nil {
		t.Fatal(err)
	}
	pay, err := tn.WithPurposes([]string{payment})
	if err != nil || pay.B2B.PurposeOfUse[0] != payment || tn.B2B.PurposeOfUse[0] != treat {
		t.Fatalf("WithPurposes = %+v, %v (original %v)", pay.B2B, err, tn.B2B.PurposeOfUse)
	}
	if _, err := tn.WithPurposes([]string{"urn:oid:2.16.840.1.113883.5.8#MARKT"}); err == nil {
		t.Fatal("a purpose outside allowed_purposes was accepted")
	} else if status, _ := outcome.FromError(err); status != http.StatusForbidden {
		t.Errorf("status %d, want 403", status)
	}
	plain := &Tenant{OID: "1.9"}
	if _, err := plain.WithPurposes([]string{treat}); err == nil {
		t.Error("a tenant without UDAP accepted a purpose of use")
	}

	// A context discovery turns on that cannot be sent is said when the
	// tenant is resolved, naming the settings: not a 500 "internal
	// error" at every token request.
	bad := &assertion.B2B{OrganizationID: "Example Health"}
	r = &Resolver{Directory: stubDir{"1.1": org("1.1", fhirEP)}, Discovery: &stubDisc{udap: true},
		Orgs: map[string]Settings{"1.1": {B2B: bad}}}
	_, err = r.Resolve(context.Background(), "1.1")
	status, oo := outcome.FromError(err)
	if diag := oo.Issue[0].Diagnostics; status == http.StatusInternalServerError && !strings.Contains(diag, "misconfigured") ||
		!strings.Contains(diag, "organizations.1.1.udap") || !strings.Contains(diag, `organization_id "Example Health" is not an absolute URI`) {
		t.Errorf("an invalid discovered context: %d %q", status, diag)
	}
	if got := tn.WithScope("system/Patient.read"); got.Scope != "system/Patient.read" || tn.Scope == got.Scope {
		t.Errorf("WithScope: %q (original %q)", got.Scope, tn.Scope)
	}
}

type stubRegistrations struct {
	id  string
	err error
}

func (s stubRegistrations) ClientID(context.Context, *Tenant) (string, error) { return s.id, s.err }

func TestRegistrationsSupplyClientID(t *testing.T) {
	b2b := &assertion.B2B{OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}
	for _, tt := range []struct {
		name   string
		regs   stubRegistrations
		wantID string
		wantOK bool
	}{
		{"registered", stubRegistrations{id: "c0ffee"}, "c0ffee", true},
		{"none yet", stubRegistrations{}, "gw.example.org", true},
		{"store failing", stubRegistrations{err: errors.New("vault down")}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Directory: stubDir{"1.1": org("1.1", fhirEP)}, Discovery: &stubDisc{}, Registrations: tt.regs,
				Defaults: Settings{ClientID: "gw.example.org"}, Orgs: map[string]Settings{"1.1": {UDAP: true, B2B: b2b}}}
			tn, err := r.Resolve(context.Background(), "1.1")
			if !tt.wantOK {
				if err == nil || !strings.Contains(err.Error(), "vault down") {
					t.Fatalf("want the store's failure, got %v", err)
				}
				return
			}
			if err != nil || tn.ClientID != tt.wantID {
				t.Fatalf("client id %q, err %v; want %q", tn.ClientID, err, tt.wantID)
			}
		})
	}
}

type staleDir struct{}

func (staleDir) Lookup(context.Context, string) (*directory.Entry, error) {
	e := directory.NewEntry(org("1.1", fhirEP), "directory")
	e.Stale, e.StaleReason = true, "HTTP 503"
	return e, nil
}

func TestStaleDirectoryEntryIsMarked(t *testing.T) {
	r := &Resolver{Directory: staleDir{}, Discovery: &stubDisc{}}
	tn, err := r.Resolve(context.Background(), "1.1")
	if err != nil || !tn.DirectoryStale || tn.StaleReason != "HTTP 503" {
		t.Fatalf("tenant %+v, %v", tn, err)
	}
}

func TestSummary(t *testing.T) {
	s := Summary(org("1.1", xcpdEP, fhirEP), nil)
	if s.FHIRBase != "https://fhir.example/r4" || s.TokenURL != "" || len(s.Endpoints) != 2 {
		t.Errorf("summary = %+v", s)
	}
}

// Resolve's tenant is the one requests use and the Reuser keeps: it
// carries no descriptive copies (endpoints, discovery attempts), which
// Describe's has, and both agree on everything requests use.
func TestResolveKeepsNoDescriptiveCopies(t *testing.T) {
	r := &Resolver{Directory: stubDir{"1.1": org("1.1", xcpdEP, fhirEP)}, Discovery: &stubDisc{}}
	for _, tc := range []struct {
		name string
		get  func(context.Context, string) (*Tenant, error)
		full bool
	}{
		{"Resolve", r.Resolve, false},
		{"Describe", r.Describe, true},
	} {
		tn, err := tc.get(context.Background(), "1.1")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tn.FHIRBase != "https://fhir.example/r4" || tn.TokenURL != "https://fhir.example/r4/Authorization/token" || tn.BaseURL().Host != "fhir.example" {
			t.Errorf("%s: tenant = %+v", tc.name, tn)
		}
		described := len(tn.Endpoints) == 2 && tn.FHIREndpoint != nil && tn.FHIREndpoint.Address == "https://fhir.example/r4/" &&
			len(tn.Discovery) == 1 && tn.Discovery[0].Outcome == "used"
		bare := tn.Endpoints == nil && tn.FHIREndpoint == nil && tn.Discovery == nil
		if (tc.full && !described) || (!tc.full && !bare) {
			t.Errorf("%s: endpoints %v, FHIR endpoint %v, discovery %v", tc.name, tn.Endpoints, tn.FHIREndpoint, tn.Discovery)
		}
	}
}

// BaseURL is what url.Parse makes of the FHIR base, whether the tenant
// parses a usual base again on demand or keeps an unusual one parsed,
// and parsing it again allocates nothing.
func TestBaseURLIsTheParsedFHIRBase(t *testing.T) {
	for _, tc := range []struct {
		address string
		kept    bool // the parsed URL is kept (not a plain base)
	}{
		{"https://fhir.example/r4/", false},
		{"https://fhir.example", false},
		{"https://fhir.example:8443/r4/tenant-1", false},
		{"HTTPS://Fhir.Example/R4", false},
		{"https://[2001:db8::1]:443/fhir", false},
		{"https://fhir.example/r4/a%20b", true},
		{"https://fhir.example/r4/a%2Fb", true},
		{"https://fhir.example/r4?tenant=1", true},
		{"https://fhir.example/r4#frag", true},
		{"https://user@fhir.example/r4", true},
	} {
		ep := fhirEP
		ep.Address = tc.address
		r := &Resolver{Directory: stubDir{"1.1": org("1.1", ep)}, Discovery: &stubDisc{},
			Orgs: map[string]Settings{"1.1": {TokenURL: "https://auth.example/token", AllowPrivate: true}}}
		tn, err := r.Resolve(context.Background(), "1.1")
		if err != nil {
			t.Fatalf("%s: %v", tc.address, err)
		}
		want, err := url.Parse(strings.TrimRight(tc.address, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if got := tn.BaseURL(); !reflect.DeepEqual(got, *want) {
			t.Errorf("%s: BaseURL = %#v, want %#v", tc.address, got, *want)
		}
		if (tn.base != nil) != tc.kept {
			t.Errorf("%s: parsed URL kept = %v, want %v", tc.address, tn.base != nil, tc.kept)
		}
		if got := testing.AllocsPerRun(100, func() { _ = tn.BaseURL() }); got != 0 {
			t.Errorf("%s: BaseURL allocates %v times", tc.address, got)
		}
	}
	if got := (&Tenant{FHIRBase: "https://fhir.example/r4"}).BaseURL(); got != (url.URL{}) {
		t.Errorf("BaseURL of a tenant not made by Describe = %#v, want the zero URL", got)
	}
}

// docs/reliability.md property 3 and WithScope: spellings of one scope
// share one token, the configured scope's included: a caller asking for
// exactly the configured set in another order (or spacing) uses the
// configured token context, not one of its own.
func TestConfiguredScopeSpellingsShareToken(t *testing.T) {
	tn := &Tenant{OID: "1.2.3", FHIRBase: "https://fhir.example.org/r4", TokenURL: "https://fhir.example.org/token",
		ClientID: "gw.example.org", Scope: "system/Patient.read system/Observation.read"}
	for _, asked := range []string{
		"system/Observation.read system/Patient.read",
		"system/Patient.read  system/Observation.read",
	} {
		if got, want := tn.WithScope(asked).TokenKey(), tn.TokenKey(); got != want {
			t.Errorf("X-Cqgate-Scope %q: token key scope %q, configured requests use %q: two tokens for one scope set", asked, got.Scope, want.Scope)
		}
	}
}

// A scope written canonically already is kept as it is (the same
// string, no copy); any other spelling is written canonically.
func TestCanonicalScope(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"a":                   "a",
		"a b":                 "a b",
		"b a":                 "a b",
		"a  b":                "a b",
		" a b":                "a b",
		"a b ":                "a b",
		"a a":                 "a",
		"a\tb":                "a b",
		"system/Patient.read": "system/Patient.read",
	} {
		if got := CanonicalScope(in); got != want {
			t.Errorf("CanonicalScope(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { _ = CanonicalScope("system/Observation.read system/Patient.read") }); n != 0 {
		t.Errorf("a canonical scope allocates %v times", n)
	}
}
