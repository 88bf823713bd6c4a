package tenant

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/internal/udaptest"
	"github.com/cqgate/cqgate/keys"
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
		party: newParty(map[string]XPIdentity{"T-TREAT": {Identity: "tefca-treat", ClientID: "urn:oid:9.9#T-TREAT"},
			"T-PYMNT": {Identity: "tefca-pay", ClientID: "urn:oid:9.9#T-PYMNT"}}, nil)}
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
			PurposeOfUse: []string{"x"}}, party: tefca.party}, "T-TREAT", failure.Misconfigured},
	} {
		_, err := tc.t.WithExchangePurpose(tc.xp)
		var fe failure.Classified
		if !errors.As(err, &fe) || fe.Kind() != tc.kind {
			t.Errorf("%s: %v, want kind %s", tc.name, err, tc.kind)
		}
	}
}

// Registration of a TEFCA tenant registers as its identity's issuer and
// carries the TEFCA Basic App Certification; udaptest accepts it.
func TestRegisterTEFCA(t *testing.T) {
	pki := pkitest.New(t, pkitest.Options{})
	san := "urn:oid:2.16.840.1.113883.3.9999#T-TREAT"
	leaf := pki.Issue(t, pki.Intermediate, pkitest.CertOptions{URIs: []string{san}})
	holder, _ := leafHolder(t, pki, leaf)
	srv := udaptest.New(t, udaptest.Config{Roots: pki.Roots()})
	var asked *Tenant
	r := NewUDAPRegistrations(UDAPConfig{
		Store:      &MemoryRegistrations{},
		Registrars: map[string]*assertion.Registrar{"tefca-treat": {Signer: &assertion.Signer{Keys: holder}}},
		Issuer:     "https://gw.example.org", ClientName: "cqgate", Contacts: []string{"mailto:ops@example.org"},
		Issuers: map[string]string{"tefca-treat": san},
		TEFCA: func(t *Tenant) *assertion.TEFCACertification {
			asked = t
			return &assertion.TEFCACertification{ExchangePurposes: []string{"T-TREAT"}, HomeCommunityID: "urn:oid:2.16.840.1.113883.3.9999"}
		},
	})
	tn := &Tenant{OID: "1.2.3", TEFCA: true, Identity: "tefca-treat", Scope: "system/Patient.read", RegistrationEndpoint: srv.RegistrationURL}
	reg, err := r.Register(context.Background(), tn)
	if err != nil {
		t.Fatalf("Register: %v (server: %v)", err, srv.Failures())
	}
	if reg.ClientID == "" || asked != tn {
		t.Fatalf("registered %+v, certification asked for %v", reg, asked)
	}
	var certs []string
	if err := json.Unmarshal(srv.Bodies()[0]["certifications"], &certs); err != nil || len(certs) != 1 {
		t.Fatalf("certifications = %s", srv.Bodies()[0]["certifications"])
	}
	if c := srv.Clients(); len(c) != 1 || c[0].Issuer != san {
		t.Fatalf("registered as %+v, want issuer %s", c, san)
	}
}

// leafHolder is a loaded key holder for leaf (its key, and its chain up
// to pki's intermediate), and the material it holds.
func leafHolder(t *testing.T, pki *pkitest.PKI, leaf *pkitest.Leaf) (*keys.Holder, *keys.Material) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.Intermediate.Cert.Raw})...),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	holder := keys.NewHolder(keys.NewStatic(m), keys.HolderOptions{})
	if _, err := holder.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return holder, m
}
