package tenant

import (
	"context"
	"errors"
	"testing"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/failure"
)

func TestScopeAskedInAdvertisedSyntax(t *testing.T) {
	tests := []struct {
		name, configured, caller string
		scopes, caps             []string
		want, wantCaller         string
	}{
		{name: "v1 configured, v2 server", configured: "system/Patient.read", caps: []string{"permission-v2"},
			want: "system/Patient.rs", caller: "system/Patient.read", wantCaller: "system/Patient.rs"},
		{name: "v2 configured, v1 server (exact)", configured: "system/Patient.rs", scopes: []string{"system/*.read"},
			want: "system/Patient.read"},
		{name: "v2 that would widen stays", configured: "system/Patient.r", scopes: []string{"system/*.read"},
			want: "system/Patient.r"},
		{name: "both advertised: as configured", configured: "system/Patient.read", caps: []string{"permission-v1", "permission-v2"},
			want: "system/Patient.read"},
		{name: "none advertised: as configured", configured: "system/Patient.read", want: "system/Patient.read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{
				Directory: stubDir{"1.3": org("1.3", fhirEP)},
				Discovery: &stubDisc{scopes: tt.scopes, caps: tt.caps},
				Defaults:  Settings{ClientID: "gw.example.org", Scope: tt.configured},
			}
			tn, err := r.Resolve(context.Background(), "1.3")
			if err != nil {
				t.Fatal(err)
			}
			if tn.Scope != tt.want {
				t.Fatalf("Scope = %q, want %q", tn.Scope, tt.want)
			}
			if tt.caller != "" {
				if got := tn.WithScope(tt.caller).Scope; got != tt.wantCaller {
					t.Fatalf("WithScope(%q).Scope = %q, want %q", tt.caller, got, tt.wantCaller)
				}
			}
		})
	}
}

func TestWithExchangePurpose(t *testing.T) {
	b2b := &assertion.B2B{OrganizationID: "urn:oid:1.2.3", OrganizationName: "Example Clinic NPI 1234567890",
		PurposeOfUse: []string{assertion.XPSystem + "#T-TREAT"}}
	tefca := &Tenant{OID: "1.3", UDAP: true, TEFCA: true, B2B: b2b, Identity: "default", ClientID: "gw",
		xps: map[string]XPIdentity{"T-TREAT": {Identity: "tefca-treat", ClientID: "urn:oid:9.9#T-TREAT"},
			"T-PYMNT": {Identity: "tefca-pay", ClientID: "urn:oid:9.9#T-PYMNT"}}}
	got, err := tefca.WithExchangePurpose("T-PYMNT")
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity != "tefca-pay" || got.ClientID != "urn:oid:9.9#T-PYMNT" || got.ExchangePurpose != "T-PYMNT" ||
		len(got.B2B.PurposeOfUse) != 1 || got.B2B.PurposeOfUse[0] != assertion.XPSystem+"#T-PYMNT" {
		t.Fatalf("WithExchangePurpose = %+v (b2b %+v)", got, got.B2B)
	}
	if tefca.B2B.PurposeOfUse[0] != assertion.XPSystem+"#T-TREAT" || tefca.Identity != "default" {
		t.Fatal("the original tenant changed")
	}
	if same, _ := tefca.WithExchangePurpose(""); same != tefca {
		t.Fatal("no exchange purpose must leave the tenant as it is")
	}
	for _, tc := range []struct {
		name string
		t    *Tenant
		xp   string
		kind failure.Kind
	}{
		{"not TEFCA", &Tenant{OID: "1.4", UDAP: true, B2B: b2b}, "T-TREAT", failure.Unsupported},
		{"IAS needs an id_token", tefca, "T-IAS", failure.Unsupported},
		{"no identity for it", tefca, "T-HCO", failure.Forbidden},
		{"no organization name", &Tenant{OID: "1.5", UDAP: true, TEFCA: true, B2B: &assertion.B2B{OrganizationID: "urn:oid:1.2.3",
			PurposeOfUse: []string{"x"}}, xps: tefca.xps}, "T-TREAT", failure.Misconfigured},
	} {
		_, err := tc.t.WithExchangePurpose(tc.xp)
		var fe failure.Classified
		if !errors.As(err, &fe) || fe.Kind() != tc.kind {
			t.Errorf("%s: %v, want kind %s", tc.name, err, tc.kind)
		}
	}
}
