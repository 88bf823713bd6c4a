package discovery

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// An entry keeps a Result compactly (keep) and gives back an equal one
// (result), a new value each time sharing no slices, whether its single
// used attempt is rebuilt or kept as it was.
func TestKeptResultRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	meta := "https://fhir.example/r4/metadata"
	used := Attempt{Source: SourceCarequalityToken, URL: meta, Outcome: OutcomeUsed, TokenURL: "https://auth.example/cq/token", FetchedAt: at.Add(time.Second)}
	failed := Attempt{Source: SourceUDAP, URL: "https://fhir.example/r4/.well-known/udap", Outcome: "failed: HTTP 500", Err: errors.New("HTTP 500")}
	base := Result{TokenURL: used.TokenURL, Source: SourceCarequalityToken, Attempts: []Attempt{used}, MetadataURL: meta, Community: "default", FetchedAt: at, Expires: at.Add(time.Hour)}
	with := func(f func(*Result)) Result {
		r := base
		r.Attempts = append([]Attempt(nil), base.Attempts...)
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name    string
		res     Result
		elided  bool
		hasMore bool
	}{
		{"one used CapabilityStatement attempt", base, true, false},
		{"two attempts", with(func(r *Result) { r.Attempts = []Attempt{failed, used} }), false, false},
		{"used attempt with a detail", with(func(r *Result) { r.Attempts[0].Detail = "d" }), false, false},
		{"used attempt at another URL", with(func(r *Result) { r.Attempts[0].URL = "https://fhir.example/r4/.well-known/smart-configuration" }), false, false},
		{"used attempt without a fetch time", with(func(r *Result) { r.Attempts[0].FetchedAt = time.Time{} }), false, false},
		{"expiring before the TTL (UDAP exp)", with(func(r *Result) { r.Expires = at.Add(17 * time.Minute) }), true, false},
		{"no metadata URL", with(func(r *Result) { r.MetadataURL, r.Attempts[0].URL = "", "" }), false, false},
		{"UDAP with algorithms and registration", with(func(r *Result) {
			r.UDAP, r.SigningAlgorithms, r.RegistrationEndpoint = true, []string{"RS256"}, "https://auth.example/register"
		}), true, true},
		{"UDAP with registration algorithms", with(func(r *Result) {
			r.UDAP, r.SigningAlgorithms, r.RegistrationSigningAlgorithms = true, []string{"RS384", "RS256"}, []string{"RS256"}
		}), true, true},
		{"registration algorithms alone", with(func(r *Result) { r.RegistrationSigningAlgorithms = []string{"ES384"} }), true, true},
		{"SMART scopes and capabilities", with(func(r *Result) {
			r.ScopesSupported, r.Capabilities, r.AuthMethods = []string{"system/*.rs"}, []string{"client-confidential-asymmetric"}, []string{"private_key_jwt"}
		}), true, true},
	} {
		k := keep(&tc.res)
		if (k.attempts == nil) != tc.elided || (k.more != nil) != tc.hasMore {
			t.Errorf("%s: attempts elided %v, more %v; want %v, %v", tc.name, k.attempts == nil, k.more != nil, tc.elided, tc.hasMore)
		}
		got := k.result()
		if !reflect.DeepEqual(*got, tc.res) {
			t.Errorf("%s: result\n%+v\nwant\n%+v", tc.name, *got, tc.res)
		}
		got.Attempts[0].Outcome = "changed by a caller"
		if len(got.SigningAlgorithms) > 0 {
			got.SigningAlgorithms[0] = "changed"
		}
		if len(got.RegistrationSigningAlgorithms) > 0 {
			got.RegistrationSigningAlgorithms[0] = "changed"
		}
		if again := k.result(); !reflect.DeepEqual(*again, tc.res) {
			t.Errorf("%s: a caller's change reached the kept result: %+v", tc.name, *again)
		}
	}
}

// A result key is the FHIR base and a short code for the order,
// override and community: requests that differ in any of them get
// different keys, requests that do not share one, and past maxVariants
// the parts are spelled out rather than forgotten.
func TestResultKeysNumberVariants(t *testing.T) {
	d := New(Config{})
	key := func(req Request) string {
		t.Helper()
		r, err := d.request(req)
		if err != nil {
			t.Fatal(err)
		}
		return r.key
	}
	base := "https://fhir.example/r4"
	plain := key(Request{FHIRBase: base + "/"})
	if plain != base+"\x00#0" {
		t.Errorf("key %q, want the base and #0", plain)
	}
	seen := map[string]string{plain: "plain"}
	for name, req := range map[string]Request{
		"override":    {FHIRBase: base, CernerOverride: true},
		"other order": {FHIRBase: base, Order: []Source{SourceToken}},
	} {
		k := key(req)
		if other, dup := seen[k]; dup {
			t.Errorf("%s: key %q same as %s's", name, k, other)
		}
		seen[k] = name
		if again := key(req); again != k {
			t.Errorf("%s: key %q then %q", name, k, again)
		}
	}
	var v variants
	for i := range maxVariants {
		v.code([]byte(fmt.Sprint("suffix", i)))
	}
	if c := v.code([]byte("one too many")); c != "one too many" {
		t.Errorf("past maxVariants: code %q, want the suffix itself", c)
	}
	if c := v.code([]byte("suffix3")); c != "#3" {
		t.Errorf("code of a known suffix %q, want #3", c)
	}
}

// What every cached organization holds in discovery fits its size
// classes: the entry with its kept result 176 bytes, the document with
// its oauth-uris 96. (The entry's key is the cache's own string.)
func TestCachedFormsFitTheirSizeClasses(t *testing.T) {
	if size := unsafe.Sizeof(entry{}); size > 176 {
		t.Errorf("entry is %d bytes, more than 176", size)
	}
	if size := unsafe.Sizeof(document{}); size > 96 {
		t.Errorf("document is %d bytes, more than 96", size)
	}
	// What a UDAP or SMART result adds fits 112, the registration
	// endpoint's algorithms in the token endpoint's array.
	if size := unsafe.Sizeof(moreResult{}); size > 112 {
		t.Errorf("moreResult is %d bytes, more than 112", size)
	}
}

// A document gives back the oauth-uris it kept, each URL whole, empty
// ones included, and none when the CapabilityStatement had none.
func TestDocumentKeepsOAuthURIs(t *testing.T) {
	for _, u := range []*OAuthURIs{
		nil,
		{},
		{Token: "https://a.example/token"},
		{CarequalityToken: "https://a.example/cq", Register: "https://a.example/reg"},
		{Token: "t", CarequalityToken: "cq", CarequalityRegister: "cqr", Register: "r"},
	} {
		var doc document
		doc.setURIs(u)
		got, ok := doc.tokenURIs()
		if ok != (u != nil) {
			t.Errorf("%+v: ok %v", u, ok)
			continue
		}
		if u != nil && (got != tokenURIs{Token: u.Token, CarequalityToken: u.CarequalityToken, CarequalityRegister: u.CarequalityRegister, Register: u.Register}) {
			t.Errorf("kept %+v, got %+v", *u, got)
		}
	}
}
