package assertion

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/failure"
)

func TestRegisterTEFCACertification(t *testing.T) {
	srv := newUDAPServer(t)
	m := newMaterial(t, p256Key())
	g := &Registrar{Signer: &Signer{Keys: staticKeys{m}}, Clock: newFakeClock().Now}
	reg := testRegistration(srv.RegistrationURL)
	reg.TEFCA = &TEFCACertification{ExchangePurposes: []string{"T-TREAT"}, HomeCommunityID: "urn:oid:2.16.840.1.113883.3.9999"}
	if _, err := g.Register(context.Background(), reg); err != nil {
		t.Fatalf("Register: %v (server: %v)", err, srv.Failures())
	}
	var certs []string
	if err := json.Unmarshal(srv.Bodies()[0]["certifications"], &certs); err != nil || len(certs) != 1 {
		t.Fatalf("certifications = %s (%v)", srv.Bodies()[0]["certifications"], err)
	}
	// Signed by the registering key, with the same x5c header.
	parsed, err := jwt.ParseSigned(certs[0], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := parsed.Claims(m.Chain[0].PublicKey, &c); err != nil {
		t.Fatalf("the certification is not signed by the registering key: %v", err)
	}
	if len(parsed.Headers[0].ExtraHeaders) == 0 {
		t.Error("no x5c header")
	}
	uris, _ := c["certification_uris"].([]any)
	xps, _ := c["exchange_purposes"].([]any)
	if c["certification_name"] != TEFCACertificationName || len(uris) != 1 || uris[0] != TEFCACertificationURI ||
		len(xps) != 1 || xps[0] != XPSystem+"#T-TREAT" || c["home_community_id"] != "urn:oid:2.16.840.1.113883.3.9999" ||
		c["iss"] != testIssuer || c["sub"] != testIssuer || c["aud"] != srv.RegistrationURL || c["jti"] == "" {
		t.Errorf("certification claims = %v", c)
	}

	bad := testRegistration(srv.RegistrationURL)
	bad.TEFCA = &TEFCACertification{ExchangePurposes: []string{"TREAT"}, HomeCommunityID: "not a uri"}
	_, err = g.Register(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `exchange purpose "TREAT" is not a TEFCA XP code`) || !strings.Contains(err.Error(), "home community id") {
		t.Fatalf("invalid certification: %v", err)
	}
}

func TestValidateTEFCA(t *testing.T) {
	ok := B2B{OrganizationID: "urn:oid:1.2.3", OrganizationName: "Clinic NPI 1234567890", PurposeOfUse: []string{XPSystem + "#T-TREAT"}}
	if err := ok.ValidateTEFCA("T-TREAT"); err != nil {
		t.Fatal(err)
	}
	if err := ok.ValidateTEFCA(""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*B2B)
		xp   string
		has  string
	}{
		{"no organization name", func(b *B2B) { b.OrganizationName = "" }, "", "organization_name is required"},
		{"two purposes", func(b *B2B) { b.PurposeOfUse = append(b.PurposeOfUse, XPSystem+"#T-PYMNT") }, "", "exactly one"},
		{"HL7 purpose", func(b *B2B) { b.PurposeOfUse = []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"} }, "", "is not an exchange purpose"},
		{"unknown code", func(b *B2B) { b.PurposeOfUse = []string{XPSystem + "#T-HCO-QM"} }, "", "not a TEFCA exchange purpose code"},
		{"other than the certificate's", func(b *B2B) {}, "T-PYMNT", "not the certificate's exchange purpose T-PYMNT"},
		{"base rules still apply", func(b *B2B) { b.OrganizationID = "" }, "", "organization_id is required"},
	} {
		b := ok
		b.PurposeOfUse = slices.Clone(ok.PurposeOfUse)
		tc.mod(&b)
		if err := b.ValidateTEFCA(tc.xp); err == nil || !strings.Contains(err.Error(), tc.has) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.has)
		}
	}
}

// Exchange holds a TEFCA request's hl7-b2b to the certificate's exchange
// purpose (and any request's to the IG) before anything is signed or
// sent, and says so as cqgate's misconfiguration, not an internal error.
func TestExchangeRefusesAContextThatCannotBeSent(t *testing.T) {
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"at-1","token_type":"Bearer","expires_in":300}`))
	e := newExchanger(t, newFakeClock(), ts.Client())
	tefca := func(pou ...string) *B2B {
		return &B2B{OrganizationID: "urn:oid:1.2.3", OrganizationName: "Clinic NPI 1234567890", PurposeOfUse: pou}
	}
	treat, pay := XPSystem+"#T-TREAT", XPSystem+"#T-PYMNT"
	for _, tc := range []struct {
		name string
		r    Request
		has  string // "": sent
	}{
		{"TEFCA, the certificate's XP", Request{TEFCA: true, ExchangePurpose: "T-TREAT", B2B: tefca(treat)}, ""},
		{"TEFCA, another XP", Request{TEFCA: true, ExchangePurpose: "T-TREAT", B2B: tefca(pay)}, "not the certificate's exchange purpose T-TREAT"},
		{"TEFCA, two XPs", Request{TEFCA: true, ExchangePurpose: "T-TREAT", B2B: tefca(treat, pay)}, "exactly one exchange purpose, not 2"},
		{"not TEFCA, two purposes", Request{B2B: tefca(treat, pay)}, ""},
		{"organization_id not a URI", Request{B2B: &B2B{OrganizationID: "Example Health", PurposeOfUse: []string{treat}}},
			`organization_id "Example Health" is not an absolute URI`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := ts.calls()
			tc.r.TokenURL, tc.r.ClientID, tc.r.UDAP = ts.URL+"/token", "c", true
			_, err := e.Exchange(context.Background(), tc.r)
			if _, cerr := e.Claims(tc.r); (cerr == nil) != (err == nil) {
				t.Errorf("Claims: %v, Exchange: %v", cerr, err)
			}
			if tc.has == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe failure.Classified
			if err == nil || !strings.Contains(err.Error(), tc.has) || !errors.As(err, &fe) || fe.Kind() != failure.Misconfigured {
				t.Errorf("Exchange: %v, want a Misconfigured error containing %q", err, tc.has)
			}
			if ts.calls() != calls {
				t.Error("a context that cannot be sent was sent")
			}
		})
	}
}
