package tenant

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
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

// TEFCA Facilitated FHIR (udap-dotnet's TEFCA validator): hl7-b2b holds
// exactly one exchange purpose, the one the signing certificate was
// issued for, whatever set it: configuration, X-Purpose-Of-Use
// (WithPurposes) or X-Cqgate-Exchange-Purpose (WithExchangePurpose). A
// caller's purposes that break it are refused (400) naming the rule;
// every context accepted meets it.
func TestTEFCAContextIsTheCertificatesExchangePurpose(t *testing.T) {
	treat, pay, hl7 := assertion.XPSystem+"#T-TREAT", assertion.XPSystem+"#T-PYMNT", "urn:oid:2.16.840.1.113883.5.8#TREAT"
	xps := map[string]XPIdentity{"T-TREAT": {Identity: "tefca-treat", ClientID: "c-treat"}, "T-PYMNT": {Identity: "tefca-pay", ClientID: "c-pay"}}
	tefca := &Tenant{OID: "1.3", UDAP: true, TEFCA: true, Identity: "tefca-treat", ClientID: "c-treat",
		B2B:             &assertion.B2B{OrganizationID: "urn:oid:1.2.3", OrganizationName: "Example Clinic NPI 1234567890", PurposeOfUse: []string{treat}},
		AllowedPurposes: []string{treat, pay, hl7},
		party:           newParty(xps, nil)}
	for _, tc := range []struct {
		name         string
		purposes     []string
		xp           string
		wantIdentity string // "": refused
		wantRefusal  string
	}{
		{name: "configured", wantIdentity: "tefca-treat"},
		{name: "the certificate's XP asked for", purposes: []string{treat}, wantIdentity: "tefca-treat"},
		{name: "another XP asked for", purposes: []string{pay}, wantRefusal: `signed with identity "tefca-treat" issued for T-TREAT`},
		{name: "two XPs asked for", purposes: []string{treat, pay}, wantRefusal: "2 purposes of use were asked for"},
		{name: "not an XP", purposes: []string{hl7}, wantRefusal: "is not an exchange purpose"},
		{name: "an XP chosen", xp: "T-PYMNT", wantIdentity: "tefca-pay"},
		{name: "an XP chosen and asked for", purposes: []string{pay}, xp: "T-PYMNT", wantIdentity: "tefca-pay"},
		{name: "an XP chosen, another asked for", purposes: []string{treat}, xp: "T-PYMNT", wantRefusal: "is not exchange purpose T-PYMNT chosen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tefca.WithPurposes(tc.purposes)
			if err == nil {
				got, err = got.WithExchangePurpose(tc.xp)
			}
			if tc.wantIdentity == "" {
				var fe failure.Classified
				if !errors.As(err, &fe) || fe.Kind() != failure.Invalid || !strings.Contains(err.Error(), tc.wantRefusal) ||
					!strings.Contains(err.Error(), "exactly one exchange purpose, the one the signing certificate was issued for") {
					t.Fatalf("%v, want an Invalid refusal naming the TEFCA rule and %q", err, tc.wantRefusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := got.TokenRequest()
			if got.Identity != tc.wantIdentity || !r.TEFCA || r.ExchangePurpose != strings.TrimPrefix(got.B2B.PurposeOfUse[0], assertion.XPSystem+"#") {
				t.Errorf("identity %s, token request TEFCA %v for XP %q, purpose_of_use %v", got.Identity, r.TEFCA, r.ExchangePurpose, got.B2B.PurposeOfUse)
			}
			if err := got.B2B.ValidateTEFCA(r.ExchangePurpose); err != nil {
				t.Error(err)
			}
		})
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
