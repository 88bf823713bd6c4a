package discovery

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// A UDAP result is only as good as its signed_metadata: its expiry is the
// JWT's exp (TestUDAPResultExpiresWithSignedMetadata). With stale-if-error
// on (the gateway's default, discovery.max_stale 1h), a result whose
// signed_metadata has expired must not be served as a usable token URL:
// the UDAP IG says a client SHALL NOT proceed when signed_metadata does not
// validate, and an expired JWT does not.
func TestUDAPResultNotServedStale(t *testing.T) {
	clock, f, d := udapExpiringSoon(t)
	req := Request{FHIRBase: f.base(), Order: []Source{SourceUDAP}}
	mustDiscover(t, d, req)

	// The server keeps answering the same document; its signed_metadata
	// has expired.
	clock.Advance(12 * time.Minute)
	r, err := d.Discover(context.Background(), req)
	if err == nil {
		t.Fatalf("12 minutes after signed_metadata's exp: token URL %q served (stale %v, reason %q, UDAP %v); want an error: the signed claim has expired",
			r.TokenURL, r.Stale, r.StaleReason, r.UDAP)
	}
	if !strings.Contains(err.Error(), "signed_metadata: expired at") {
		t.Errorf("error %v; want it to say the signed_metadata expired", err)
	}
}

// RFC 6749 section 3.2: "The endpoint URI MUST NOT include a fragment
// component." A token URL is also the assertion's aud, and with userinfo
// net/http turns it into an Authorization: Basic header cqgate never meant
// to send. A discovered token URL of either kind is to be refused.
func TestTokenURLWithFragmentOrUserinfoRefused(t *testing.T) {
	for _, tc := range []struct{ name, tokenURL string }{
		{"fragment", "https://auth.example.test/oauth2/token#frag"},
		{"userinfo", "https://user:pass@auth.example.test/oauth2/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeFHIR(t)
			f.set(docNameSMART, 0, smartConfig(tc.tokenURL))
			d := New(Config{HTTPClient: f.Client()})
			r, err := d.Discover(context.Background(), Request{FHIRBase: f.base(), Order: []Source{SourceSMARTConfiguration}})
			if err == nil {
				t.Errorf("token_endpoint %q accepted as token URL %q; want it refused", tc.tokenURL, r.TokenURL)
			}
		})
	}
}

// Past its signed_metadata's exp a UDAP result is not served, but it
// still counts against a downgrade: a refresh that finds the UDAP
// document failing and only an unsigned source is refused for MaxStale.
func TestExpiredUDAPResultStillRefusesADowngrade(t *testing.T) {
	clock, f, d := udapExpiringSoon(t)
	req := Request{FHIRBase: f.base(), Order: []Source{SourceUDAP, SourceSMARTConfiguration}}
	if r := mustDiscover(t, d, req); r.Source != SourceUDAP {
		t.Fatalf("source %s", r.Source)
	}
	clock.Advance(12 * time.Minute)
	f.set(docNameUDAP, 503, "")
	f.set(docNameSMART, 0, smartConfig(urlSMART, "RS384"))
	if r, err := d.Discover(context.Background(), req); err == nil {
		t.Errorf("after the UDAP result expired and its document failed: %s from %s; want the downgrade refused", r.TokenURL, r.Source)
	}
}

// udapExpiringSoon serves UDAP metadata whose signed_metadata expires 10
// minutes from the clock's now, to a Discoverer keeping results stale for
// an hour (the gateway's default).
func udapExpiringSoon(t *testing.T) (*clocktest.Clock, *fakeFHIR, *Discoverer) {
	t.Helper()
	clock := newFakeClock()
	now := clock.Now()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	claims := udapClaims(f.base(), now, urlUDAP)
	claims["exp"] = now.Add(10 * time.Minute).Unix()
	f.set(docNameUDAP, 0, udapDoc(urlUDAP, pki.sign(t, claims)))
	return clock, f, New(Config{HTTPClient: f.Client(), Clock: clock.Now, TrustAnchors: pki.pool, TTL: time.Hour, RefreshAhead: -1, MaxStale: time.Hour})
}

// A UDAP document that verifies but whose signed token URL is refused
// contributes nothing: the result that another source wins is not a
// UDAP one (no B2B assertion, no registration at the UDAP document's
// registration_endpoint), and the refused document's advertised values
// are not used.
func TestRefusedUDAPTokenURLContributesNothing(t *testing.T) {
	now := time.Now()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	f.set(docNameUDAP, 0, udapDoc(urlUDAP+"#frag", pki.sign(t, udapClaims(f.base(), now, urlUDAP+"#frag"))))
	f.set(docNameSMART, 0, smartConfig(urlSMART))
	d := New(Config{HTTPClient: f.Client(), TrustAnchors: pki.pool})
	r := mustDiscover(t, d, Request{FHIRBase: f.base(), Order: []Source{SourceUDAP, SourceSMARTConfiguration}})
	if r.Source != SourceSMARTConfiguration || r.TokenURL != urlSMART {
		t.Fatalf("token URL %s from %s; want %s from the SMART configuration", r.TokenURL, r.Source, urlSMART)
	}
	if r.UDAP {
		t.Errorf("Result.UDAP is set from a UDAP document whose token URL was refused")
	}
	if r.RegistrationEndpoint == "https://udap.example.test/register" {
		t.Errorf("registration endpoint %s taken from the refused UDAP document", r.RegistrationEndpoint)
	}
	if slices.Contains(r.SigningAlgorithms, "ES384") {
		t.Errorf("signing algorithms %v taken from the refused UDAP document", r.SigningAlgorithms)
	}
}

// The UDAP registration endpoint is trusted only signed, as the token
// URL is: signed_metadata without registration_endpoint gives no
// registration endpoint, whatever the unsigned document names.
func TestUnsignedUDAPRegistrationEndpointIgnored(t *testing.T) {
	now := time.Now()
	f := newFakeFHIR(t)
	pki := newPKI(t, now, false, false, f.base())
	claims := udapClaims(f.base(), now, urlUDAP)
	delete(claims, "registration_endpoint")
	f.set(docNameUDAP, 0, udapDoc(urlUDAP, pki.sign(t, claims)))
	d := New(Config{HTTPClient: f.Client(), TrustAnchors: pki.pool})
	r := mustDiscover(t, d, Request{FHIRBase: f.base(), Order: []Source{SourceUDAP}})
	if r.Source != SourceUDAP || !r.UDAP {
		t.Fatalf("source %s, UDAP %v", r.Source, r.UDAP)
	}
	if r.RegistrationEndpoint != "" {
		t.Errorf("registration endpoint %q taken from the unsigned metadata", r.RegistrationEndpoint)
	}
}
