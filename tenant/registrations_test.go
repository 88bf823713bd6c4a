package tenant

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/pkitest"
	"github.com/cqgate/cqgate/internal/udaptest"
)

// config.example.yaml (client.algorithm): "Empty follows the key ... A
// server advertising its algorithms gets one it accepts"; UDAP servers
// SHALL support RS256 and only MAY support RS384. A UDAP partner whose
// metadata accepts only RS256 gets its client assertions in RS256
// (Negotiate), and its software statement too.
func TestRegistrationFollowsAdvertisedAlgorithms(t *testing.T) {
	pki := pkitest.New(t, pkitest.Options{})
	issuer := "https://gw.example.org"
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	holder, m := leafHolder(t, pki, pki.Issue(t, pki.Intermediate, pkitest.CertOptions{URIs: []string{issuer}, Key: rsaKey}))
	srv := udaptest.New(t, udaptest.Config{Roots: pki.Roots()})
	r := NewUDAPRegistrations(UDAPConfig{
		Store:      &MemoryRegistrations{},
		Registrars: map[string]*assertion.Registrar{"default": {Signer: &assertion.Signer{Keys: holder}}},
		Issuer:     issuer, ClientName: "cqgate", Contacts: []string{"mailto:ops@example.org"},
	})
	// What discovery found: the server accepts RS256 only.
	tn := &Tenant{OID: "1.2.3", UDAP: true, Identity: "default", Scope: "system/Patient.read",
		RegistrationEndpoint: srv.RegistrationURL, SigningAlgorithms: []string{"RS256"}}
	alg, err := assertion.Negotiate(m.Public(), tn.Algorithm, tn.SigningAlgorithms)
	if err != nil || alg != "RS256" {
		t.Fatalf("client assertions: Negotiate = %s, %v; want RS256", alg, err)
	}
	if _, err := r.Register(context.Background(), tn); err != nil {
		t.Fatalf("Register: %v (server: %v)", err, srv.Failures())
	}
	if c := srv.Clients(); len(c) != 1 || c[0].Algorithm != "RS256" {
		t.Errorf("software statement signed %s; the server advertised [RS256] and client assertions use RS256", c[0].Algorithm)
	}
}
