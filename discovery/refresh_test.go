package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

const (
	cqA = "https://fhir.example.test/r4/Authorization/token-a"
	cqB = "https://fhir.example.test/r4/Authorization/token-b"
)

func cqDoc(tokenURL string) string {
	return oauthURIs(`{"url": "token", "valueUri": "` + cernerToken + `"}, {"url": "carequality-token", "valueUri": "` + tokenURL + `"}`)
}

// refreshHook makes d report the end of every background refresh.
func refreshHook(d *Discoverer) <-chan error {
	done := make(chan error, 100)
	d.afterRefresh = func(_ string, err error) { done <- err }
	return done
}

// waitRefresh waits, with a generous bound, for a background refresh to
// end and returns its error.
func waitRefresh(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no background refresh ended within 10s")
		return nil
	}
}

func mustDiscover(t *testing.T, d *Discoverer, req Request) *Result {
	t.Helper()
	r, err := d.Discover(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRefreshAhead(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	clock := newFakeClock()
	t0 := clock.Now()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: time.Minute})
	done := refreshHook(d)
	req := Request{FHIRBase: f.base()}

	if r := mustDiscover(t, d, req); r.TokenURL != cqA || !r.Expires.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("first lookup: %+v", *r)
	}
	clock.Advance(9*time.Minute - time.Second) // just before the window
	if r := mustDiscover(t, d, req); r.TokenURL != cqA || f.count(docNameMetadata) != 1 {
		t.Fatalf("before the window: %s, %d requests", r.TokenURL, f.count(docNameMetadata))
	}

	// In the window: the server now says B, slowly.
	f.set(docNameMetadata, 0, cqDoc(cqB))
	gate := f.gate(docNameMetadata)
	clock.Advance(30 * time.Second)
	for i := range 5 {
		r := mustDiscover(t, d, req)
		if r.TokenURL != cqA || r.Stale || !r.FetchedAt.Equal(t0) {
			t.Fatalf("lookup %d during the refresh: %+v, want the cached result", i, *r)
		}
	}
	<-f.started // the first request
	<-f.started // the refresh is in flight
	if n := f.count(docNameMetadata); n != 2 {
		t.Errorf("%d metadata requests during the refresh, want 2", n)
	}
	close(gate)
	if err := waitRefresh(t, done); err != nil {
		t.Fatalf("background refresh: %v", err)
	}
	r := mustDiscover(t, d, req)
	if r.TokenURL != cqB || !r.FetchedAt.Equal(t0.Add(9*time.Minute+29*time.Second)) || r.Stale {
		t.Errorf("after the refresh: %+v, want B fetched in the window", *r)
	}
	if got, want := f.counts(), map[string]int{docNameMetadata: 2}; !mapsEqual(got, want) {
		t.Errorf("requests %v, want %v (exactly one refetch)", got, want)
	}
}

func TestRefreshAheadFailureKeepsServing(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	clock := newFakeClock()
	logger, logs := logtest.NewNullLogger()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: time.Minute, Logger: logger})
	done := refreshHook(d)
	req := Request{FHIRBase: f.base(), Order: []Source{SourceCarequalityToken}}
	mustDiscover(t, d, req)

	f.set(docNameMetadata, http.StatusBadGateway, "")
	clock.Advance(9*time.Minute + 30*time.Second)
	if r := mustDiscover(t, d, req); r.TokenURL != cqA || r.Stale {
		t.Fatalf("in the window: %+v", *r)
	}
	if err := waitRefresh(t, done); err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("background refresh error %v, want the 502", err)
	}
	if e := logs.LastEntry(); e == nil || e.Level != logrus.WarnLevel || e.Data["fhir_base"] != f.base() ||
		!strings.Contains(e.Message, "refresh failed") || !strings.Contains(fmt.Sprint(e.Data[logrus.ErrorKey]), "HTTP 502") {
		t.Errorf("log entry %+v, want a warning naming the base and the error", e)
	}
	// Right after a failed refresh, lookups do not start another one.
	for range 3 {
		if r := mustDiscover(t, d, req); r.TokenURL != cqA || r.Stale {
			t.Fatalf("after the failed refresh: %+v", *r)
		}
	}
	if n := f.count(docNameMetadata); n != 2 {
		t.Errorf("%d metadata requests, want 2 (no refresh storm after a failure)", n)
	}
	// After the backoff (at most 1.5 × 6 s here), one more try, which works.
	f.set(docNameMetadata, 0, cqDoc(cqB))
	clock.Advance(10 * time.Second)
	mustDiscover(t, d, req)
	if err := waitRefresh(t, done); err != nil {
		t.Fatalf("second background refresh: %v", err)
	}
	if r := mustDiscover(t, d, req); r.TokenURL != cqB {
		t.Errorf("after the second refresh: %+v", *r)
	}
}

func TestStaleIfError(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	clock := newFakeClock()
	t0 := clock.Now()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: -1, MaxStale: 5 * time.Minute})
	req := Request{FHIRBase: f.base()}
	mustDiscover(t, d, req)

	f.set(docNameMetadata, http.StatusServiceUnavailable, "maintenance")
	clock.Advance(10 * time.Minute) // expired
	r := mustDiscover(t, d, req)
	if r.TokenURL != cqA || !r.Stale || !strings.Contains(r.StaleReason, "HTTP 503: Service Unavailable: maintenance") || !r.Expires.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("expired, refresh failing: %+v, want the stale result", *r)
	}
	if n := f.count(docNameMetadata); n != 2 {
		t.Errorf("%d metadata requests, want 2", n)
	}
	// Within the retry backoff: stale, without asking.
	if r := mustDiscover(t, d, req); !r.Stale || r.TokenURL != cqA || f.count(docNameMetadata) != 2 {
		t.Errorf("within the backoff: %+v, %d requests", *r, f.count(docNameMetadata))
	}
	// After it: asked again, still stale.
	clock.Advance(10 * time.Second)
	if r := mustDiscover(t, d, req); !r.Stale || f.count(docNameMetadata) != 3 {
		t.Errorf("after the backoff: stale %v, %d requests, want a third", r.Stale, f.count(docNameMetadata))
	}
	// MaxStale past expiry, the old result is gone.
	clock.Set(t0.Add(15 * time.Minute))
	_, err := d.Discover(context.Background(), req)
	var nt *NoTokenURLError
	if !errors.As(err, &nt) {
		t.Fatalf("MaxStale past expiry: error %v, want *NoTokenURLError", err)
	}
	// The server recovers.
	f.set(docNameMetadata, 0, cqDoc(cqB))
	if r := mustDiscover(t, d, req); r.TokenURL != cqB || r.Stale {
		t.Errorf("after recovery: %+v", *r)
	}
}

func TestStaleIfErrorDisabled(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, MaxStale: -1})
	mustDiscover(t, d, Request{FHIRBase: f.base()})
	f.set(docNameMetadata, http.StatusServiceUnavailable, "")
	clock.Advance(10 * time.Minute)
	if r, err := d.Discover(context.Background(), Request{FHIRBase: f.base()}); err == nil {
		t.Errorf("Discover = %+v, want an error with MaxStale disabled", *r)
	}
}

func TestRefreshDoesNotFallBackBecauseAPreferredSourceFailed(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, cqDoc(cqA))
	f.set(docNameSMART, 0, smartConfig(urlSMART))
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: time.Minute})
	done := refreshHook(d)
	req := Request{FHIRBase: f.base()}
	mustDiscover(t, d, req)

	// /metadata fails: smart-configuration would answer, but a passing
	// outage must not move the server off its Carequality URL.
	f.set(docNameMetadata, http.StatusServiceUnavailable, "")
	clock.Advance(9*time.Minute + 30*time.Second)
	mustDiscover(t, d, req)
	err := waitRefresh(t, done)
	if err == nil || !strings.Contains(err.Error(), "would fall back from carequality-token to smart-configuration because carequality-token") {
		t.Fatalf("refresh error %v, want the refused fall-back", err)
	}
	clock.Advance(time.Minute) // expired; the refresh still falls back
	if r := mustDiscover(t, d, req); r.TokenURL != cqA || !r.Stale {
		t.Errorf("after expiry: %+v, want the stale carequality-token URL", *r)
	}

	// The server really dropped its carequality-token: that is an answer.
	f.set(docNameMetadata, 0, oauthURIs(`{"url": "token", "valueUri": "`+cernerToken+`"}`))
	clock.Advance(time.Minute)
	if r := mustDiscover(t, d, req); r.TokenURL != urlSMART || r.Stale {
		t.Errorf("after the server changed: %+v, want smart-configuration", *r)
	}
}

func TestDocumentsAreCachedAcrossRefreshesAndRequests(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, oauthURIs(`{"url": "token", "valueUri": "`+urlToken+`"}`))
	f.set(docNameMetadataOverride, 0, oauthURIs(`{"url": "token", "valueUri": "`+cqA+`"}`))
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute, RefreshAhead: time.Minute})
	done := refreshHook(d)
	plain := Request{FHIRBase: f.base()}
	override := Request{FHIRBase: f.base(), Order: []Source{SourceUDAP, SourceSMARTConfiguration, SourceCarequalityToken}, CernerOverride: true}

	if r := mustDiscover(t, d, plain); r.Source != SourceToken {
		t.Fatalf("plain: %+v", *r)
	}
	want := map[string]int{docNameMetadata: 1, docNameUDAP: 1, docNameSMART: 1}
	if got := f.counts(); !mapsEqual(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	// Another key for the same server shares the .well-known 404s.
	clock.Advance(5 * time.Minute)
	if r := mustDiscover(t, d, override); r.TokenURL != cqA || !r.FetchedAt.Equal(clock.Now().Add(-5*time.Minute)) {
		t.Fatalf("override: %+v, want FetchedAt of the oldest document", *r)
	}
	want[docNameMetadataOverride] = 1
	if got := f.counts(); !mapsEqual(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	// Both results enter their refresh window together (the override one
	// rests on the .well-known answers from t0). Each document is asked
	// once between the two refreshes; the override CapabilityStatement,
	// younger than TTL-RefreshAhead, is not asked again.
	clock.Advance(4*time.Minute + 30*time.Second)
	mustDiscover(t, d, plain)
	if err := waitRefresh(t, done); err != nil {
		t.Fatal(err)
	}
	mustDiscover(t, d, override)
	if err := waitRefresh(t, done); err != nil {
		t.Fatal(err)
	}
	want = map[string]int{docNameMetadata: 2, docNameMetadataOverride: 1, docNameUDAP: 2, docNameSMART: 2}
	if got := f.counts(); !mapsEqual(got, want) {
		t.Errorf("requests %v after both refreshes, want %v", got, want)
	}
	r := mustDiscover(t, d, override)
	if want := clock.Now().Add(-4*time.Minute - 30*time.Second); !r.FetchedAt.Equal(want) || !r.Expires.Equal(want.Add(10*time.Minute)) {
		t.Errorf("refreshed override result fetched %v, expires %v; want %v", r.FetchedAt, r.Expires, want)
	}
}

func TestFailingDiscoveryAsksNotSupportedDocumentsOncePerTTL(t *testing.T) {
	f := newFakeFHIR(t)
	f.set(docNameMetadata, 0, `{"resourceType": "CapabilityStatement"}`)
	clock := newFakeClock()
	d := New(Config{HTTPClient: f.Client(), Clock: clock.Now, TTL: 10 * time.Minute})
	for range 5 {
		if _, err := d.TokenEndpoint(context.Background(), f.base()); err == nil {
			t.Fatal("want an error")
		}
		clock.Advance(time.Minute)
	}
	want := map[string]int{docNameMetadata: 1, docNameUDAP: 1, docNameSMART: 1}
	if got := f.counts(); !mapsEqual(got, want) {
		t.Errorf("requests %v for 5 failing lookups in one TTL, want %v", got, want)
	}
	clock.Advance(5 * time.Minute)
	d.TokenEndpoint(context.Background(), f.base())
	want = map[string]int{docNameMetadata: 2, docNameUDAP: 2, docNameSMART: 2}
	if got := f.counts(); !mapsEqual(got, want) {
		t.Errorf("requests %v after the TTL, want %v", got, want)
	}
}
