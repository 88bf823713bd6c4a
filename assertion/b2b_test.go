package assertion

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func fullB2B() *B2B {
	return &B2B{
		SubjectName:      "Dr. Jane Smith",
		SubjectID:        "urn:oid:2.16.840.1.113883.4.6#1234567890",
		SubjectRole:      "http://nucc.org/provider-taxonomy#207Q00000X",
		OrganizationName: "Example Health",
		OrganizationID:   "https://fhir.example.org/Organization/42",
		PurposeOfUse:     []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"},
		ConsentPolicy:    []string{"https://example.org/policy/opt-in"},
		ConsentReference: []string{"https://fhir.example.org/Consent/7"},
	}
}

func TestB2BClaimsShape(t *testing.T) {
	m := newMaterial(t, p256Key())
	s := &Signer{Keys: staticKeys{m}, Clock: newFakeClock().Now}
	tests := []struct {
		name string
		b2b  *B2B
		want string // the hl7-b2b object as JSON
	}{
		{
			name: "all members",
			b2b:  fullB2B(),
			want: `{"version":"1","subject_name":"Dr. Jane Smith","subject_id":"urn:oid:2.16.840.1.113883.4.6#1234567890",
				"subject_role":"http://nucc.org/provider-taxonomy#207Q00000X","organization_name":"Example Health",
				"organization_id":"https://fhir.example.org/Organization/42","purpose_of_use":["urn:oid:2.16.840.1.113883.5.8#TREAT"],
				"consent_policy":["https://example.org/policy/opt-in"],"consent_reference":["https://fhir.example.org/Consent/7"]}`,
		},
		{
			name: "required members only, version defaulted",
			b2b:  &B2B{OrganizationID: "urn:oid:2.16.840.1.113883.3.13.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT", "urn:oid:2.16.840.1.113883.5.8#HPAYMT"}},
			want: `{"version":"1","organization_id":"urn:oid:2.16.840.1.113883.3.13.1",
				"purpose_of_use":["urn:oid:2.16.840.1.113883.5.8#TREAT","urn:oid:2.16.840.1.113883.5.8#HPAYMT"]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, B2B: tc.b2b})
			if err != nil {
				t.Fatal(err)
			}
			_, payload := rawSegments(t, tok)
			ext, ok := payload["extensions"].(map[string]any)
			if !ok || len(ext) != 1 {
				t.Fatalf("extensions = %#v", payload["extensions"])
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := ext["hl7-b2b"]; !reflect.DeepEqual(got, want) {
				t.Errorf("hl7-b2b = %#v\nwant %#v", got, want)
			}
			for _, k := range []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti"} {
				if _, ok := payload[k]; !ok {
					t.Errorf("claim %s missing next to extensions", k)
				}
			}
		})
	}

	tok, err := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud})
	if err != nil {
		t.Fatal(err)
	}
	if _, payload := rawSegments(t, tok); payload["extensions"] != nil {
		t.Error("extensions claim sent without B2B")
	}
}

func TestB2BValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*B2B)
		want   []string // substrings; nil: valid
	}{
		{"full", func(*B2B) {}, nil},
		{"version 1 explicit", func(b *B2B) { b.Version = "1" }, nil},
		{"organization urn", func(b *B2B) { b.OrganizationID = "urn:oid:1.2.3" }, nil},
		{"no consent at all", func(b *B2B) { b.ConsentPolicy, b.ConsentReference = nil, nil }, nil},
		{"policy without reference", func(b *B2B) { b.ConsentReference = nil }, nil},
		{"version 2", func(b *B2B) { b.Version = "2" }, []string{`version "2"`}},
		{"no organization", func(b *B2B) { b.OrganizationID = "" }, []string{"organization_id is required"}},
		{"relative organization", func(b *B2B) { b.OrganizationID = "Organization/42" }, []string{"not an absolute URI"}},
		{"organization with spaces", func(b *B2B) { b.OrganizationID = "urn:oid:1 2" }, []string{"not an absolute URI"}},
		{"no purpose", func(b *B2B) { b.PurposeOfUse = nil }, []string{"purpose_of_use needs at least one"}},
		{"empty purpose", func(b *B2B) { b.PurposeOfUse = []string{"TREAT", " "} }, []string{"purpose_of_use[1] is empty"}},
		{"policy not a URI", func(b *B2B) { b.ConsentPolicy = []string{"opt-in"} }, []string{"consent_policy[0]"}},
		{"reference without policy", func(b *B2B) { b.ConsentPolicy = nil }, []string{"consent_reference requires consent_policy"}},
		{"reference not a URL", func(b *B2B) { b.ConsentReference = []string{"Consent/7"} }, []string{"consent_reference[0]"}},
		{"everything wrong at once", func(b *B2B) { *b = B2B{Version: "0", ConsentReference: []string{"x"}} },
			[]string{"version", "organization_id", "purpose_of_use", "consent_reference requires", "consent_reference[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := fullB2B()
			tc.mutate(b)
			err := b.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.HasPrefix(err.Error(), "assertion: invalid hl7-b2b extension: ") {
				t.Errorf("error %q lacks the prefix", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			// Sign refuses it before anything is signed.
			s := &Signer{Keys: staticKeys{newMaterial(t, p256Key())}}
			if _, serr := s.Sign(context.Background(), Claims{ClientID: "c", Audience: testAud, B2B: b}); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Sign err = %v, want %v", serr, err)
			}
		})
	}
	if err := (*B2B)(nil).Validate(); err == nil {
		t.Error("nil B2B valid")
	}
}

func TestB2BDigest(t *testing.T) {
	a := fullB2B()
	b := fullB2B()
	b.Version = "1" // the default, spelled out
	if a.Digest() != b.Digest() {
		t.Error("defaulted and explicit version differ")
	}
	if len(a.Digest()) != 64 {
		t.Errorf("digest %q is not hex SHA-256", a.Digest())
	}
	if (*B2B)(nil).Digest() != "" {
		t.Error("nil digest not empty")
	}
	if strings.Contains(a.Digest(), "Jane") {
		t.Error("digest reveals the context")
	}
	seen := map[string]string{a.Digest(): "base"}
	for name, mutate := range map[string]func(*B2B){
		"subject":       func(b *B2B) { b.SubjectName = "Dr. John Doe" },
		"subject id":    func(b *B2B) { b.SubjectID = "" },
		"purpose":       func(b *B2B) { b.PurposeOfUse = []string{"urn:oid:2.16.840.1.113883.5.8#HPAYMT"} },
		"two purposes":  func(b *B2B) { b.PurposeOfUse = append(b.PurposeOfUse, "urn:oid:2.16.840.1.113883.5.8#HPAYMT") },
		"organization":  func(b *B2B) { b.OrganizationID = "https://fhir.example.org/Organization/43" },
		"org name":      func(b *B2B) { b.OrganizationName = "" },
		"role":          func(b *B2B) { b.SubjectRole = "x:y" },
		"policy":        func(b *B2B) { b.ConsentPolicy = []string{"https://example.org/policy/other"} },
		"reference":     func(b *B2B) { b.ConsentReference = nil },
		"moved members": func(b *B2B) { b.SubjectName, b.OrganizationName = b.OrganizationName, b.SubjectName },
	} {
		b := fullB2B()
		mutate(b)
		d := b.Digest()
		if prev, dup := seen[d]; dup {
			t.Errorf("%s has the digest of %s", name, prev)
		}
		seen[d] = name
	}
}

func TestRequestKey(t *testing.T) {
	r := Request{TokenURL: "https://ehr.example.com/token", ClientID: "c", Scope: "system/*.read", B2B: fullB2B()}
	k := r.Key()
	if k.TokenURL != r.TokenURL || k.ClientID != r.ClientID || k.Scope != r.Scope || k.Context != fullB2B().Digest() || k.Identity != "" {
		t.Errorf("Key = %+v", k)
	}
	r.B2B = nil
	if r.Key().Context != "" {
		t.Error("context digest without B2B")
	}
	if !strings.Contains(k.String(), "&context="+k.Context) {
		t.Errorf("Key.String() = %q does not carry the context", k.String())
	}
	if strings.Contains(k.String(), "Jane") {
		t.Errorf("Key.String() = %q reveals the context", k.String())
	}
}

func TestExchangeUDAPB2B(t *testing.T) {
	clock := newFakeClock()
	ts := newTokenServer(t, jsonResponse(200, `{"access_token":"`+testAccessToken+`","token_type":"Bearer","expires_in":300}`))
	e := newExchanger(t, clock, ts.Client())
	_, err := e.Exchange(context.Background(), Request{
		TokenURL: ts.URL + "/token", ClientID: "c", Scope: "system/Patient.read",
		UDAP: true, B2B: fullB2B(), ExtraParams: url.Values{"udap": {"2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	form := ts.forms[0]
	if got := form["udap"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("udap = %q, want [1]", got)
	}
	_, payload := rawSegments(t, form.Get("client_assertion"))
	ext, _ := payload["extensions"].(map[string]any)
	b2b, _ := ext["hl7-b2b"].(map[string]any)
	if b2b["organization_id"] != fullB2B().OrganizationID || b2b["version"] != "1" {
		t.Errorf("hl7-b2b = %#v", b2b)
	}

	// Without UDAP no udap parameter is added; an invalid context is
	// refused before anything is sent.
	if _, err := e.Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.forms[1]["udap"]; ok {
		t.Error("udap sent without Request.UDAP")
	}
	if _, err := e.Exchange(context.Background(), Request{TokenURL: ts.URL + "/token", ClientID: "c", UDAP: true, B2B: &B2B{}}); err == nil || !strings.Contains(err.Error(), "hl7-b2b") {
		t.Errorf("invalid B2B: err = %v", err)
	}
	if ts.calls() != 2 {
		t.Errorf("%d calls, want 2", ts.calls())
	}
}
