package tenant

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"testing"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/internal/udaptest"
)

// config.example.yaml (client.algorithm): "Empty follows the key ... A
// server advertising its algorithms gets one it accepts"; UDAP servers
// SHALL support RS256 and only MAY support RS384. The software statement
// is signed for the registration endpoint: with one of its own
// algorithms (registration_endpoint_jwt_signing_alg_values_supported)
// when the metadata lists them, which need not be the token endpoint's;
// else with one of the token endpoint's, as client assertions are; else
// by the key's default (RS384 for RSA). A registration list cqgate can
// sign nothing of is refused as an unusable token list is, with an
// *assertion.AlgorithmError naming it, and nothing is sent.
func TestRegistrationFollowsAdvertisedAlgorithms(t *testing.T) {
	pki := pkitest.New(t, pkitest.Options{})
	issuer := "https://gw.example.org"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	holder, _ := leafHolder(t, pki, pki.Issue(t, pki.Intermediate, pkitest.CertOptions{URIs: []string{issuer}, Key: rsaKey}))
	b2b := &assertion.B2B{OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}
	for _, tc := range []struct {
		name string
		// token and registration are what discovery found; endpoint
		// is what the registration endpoint takes (nil: anything).
		token, registration, endpoint []string
		// want is the software statement's alg; "" wants an
		// AlgorithmError and no request.
		want string
	}{
		{"registration list narrower than the token list", []string{"RS384", "RS256"}, []string{"RS256"}, []string{"RS256"}, "RS256"},
		{"registration list without a token list", nil, []string{"RS256"}, []string{"RS256"}, "RS256"},
		{"registration list beside an unusable token list", []string{"ES512"}, []string{"RS256"}, []string{"RS256"}, "RS256"},
		{"no registration list: the token endpoint's", []string{"RS256"}, nil, nil, "RS256"},
		{"no registration list: the token endpoint's first usable", []string{"RS384", "RS256"}, nil, nil, "RS384"},
		{"neither: the key's default", nil, nil, nil, "RS384"},
		{"registration list cqgate cannot sign", []string{"RS256"}, []string{"ES512"}, []string{"ES512"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := udaptest.New(t, udaptest.Config{Roots: pki.Roots(), Algorithms: tc.endpoint})
			ep := fhirEP
			ep.Address = srv.URL + "/fhir"
			r := &Resolver{
				Directory: stubDir{"1.1": org("1.1", ep)},
				Discovery: &stubDisc{udap: true, algs: tc.token, register: srv.RegistrationURL, regAlgs: tc.registration},
				Registrations: NewUDAPRegistrations(UDAPConfig{
					Store:      &MemoryRegistrations{},
					Auto:       map[string]bool{"1.1": true},
					Registrars: map[string]*assertion.Registrar{"default": {Signer: &assertion.Signer{Keys: holder}}},
					Issuer:     issuer, ClientName: "cqgate", Contacts: []string{"mailto:ops@example.org"},
				}),
				Orgs: map[string]Settings{"1.1": {UDAP: true, B2B: b2b, AllowPrivate: true, Scope: "system/Patient.read"}},
			}
			tn, err := r.Resolve(context.Background(), "1.1")
			if tc.want == "" {
				var ae *assertion.AlgorithmError
				if !errors.As(err, &ae) || !slices.Equal(ae.Accepted, tc.registration) {
					t.Fatalf("Resolve: %v; want an AlgorithmError naming the registration endpoint's %v", err, tc.registration)
				}
				if n := len(srv.Statements()); n != 0 {
					t.Errorf("%d software statements sent; want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v (server: %v)", err, srv.Failures())
			}
			c := srv.Clients()
			if len(c) != 1 || c[0].Algorithm != tc.want || tn.ClientID != c[0].ID {
				t.Fatalf("registrations %+v, tenant client id %q; want one signed %s", c, tn.ClientID, tc.want)
			}
			// Client assertions still follow the token endpoint's list.
			if got := tn.TokenRequest().Accepted; !slices.Equal(got, tc.token) {
				t.Errorf("token request accepts %v; want the token endpoint's %v", got, tc.token)
			}
		})
	}
}

// The registration endpoint's algorithms ride in the token endpoint's
// array: SigningAlgorithms is the token list alone, copies of the tenant
// keep both, and a tenant without them (or with a SigningAlgorithms of
// spare capacity, made elsewhere) falls back to the token list.
func TestRegistrationAlgorithmsShareTheTokenArray(t *testing.T) {
	tn := &Tenant{OID: "1.1", Scope: "a"}
	tn.setAlgorithms([]string{"RS384", "RS256"}, []string{"RS256"})
	if !slices.Equal(tn.SigningAlgorithms, []string{"RS384", "RS256"}) || !slices.Equal(tn.RegistrationAlgorithms(), []string{"RS256"}) {
		t.Errorf("token %v, registration %v", tn.SigningAlgorithms, tn.RegistrationAlgorithms())
	}
	if c := tn.WithScope("b"); !slices.Equal(c.RegistrationAlgorithms(), []string{"RS256"}) {
		t.Errorf("a copy's registration algorithms %v", c.RegistrationAlgorithms())
	}
	if reg := tn.RegistrationAlgorithms(); cap(reg) != len(reg) {
		t.Errorf("registration list has capacity %d past its length %d: an append would write into the token list's array", cap(reg), len(reg))
	}
	tn.setAlgorithms(nil, []string{"ES256"})
	if len(tn.SigningAlgorithms) != 0 || !slices.Equal(tn.RegistrationAlgorithms(), []string{"ES256"}) {
		t.Errorf("registration list alone: token %v, registration %v", tn.SigningAlgorithms, tn.RegistrationAlgorithms())
	}
	tn.setAlgorithms([]string{"RS256"}, nil)
	if !slices.Equal(tn.RegistrationAlgorithms(), []string{"RS256"}) {
		t.Errorf("no registration list: %v, want the token list", tn.RegistrationAlgorithms())
	}
	spare := append(make([]string, 0, 4), "RS256")
	if got := (&Tenant{SigningAlgorithms: spare}).RegistrationAlgorithms(); !slices.Equal(got, spare) {
		t.Errorf("a tenant made elsewhere: %v, want its token list", got)
	}
	long := make([]string, 300)
	for i := range long {
		long[i] = "RS256"
	}
	tn.setAlgorithms([]string{"RS384"}, long)
	if n := len(tn.RegistrationAlgorithms()); n != 255 {
		t.Errorf("a list of 300 keeps %d; want the first 255", n)
	}
}
