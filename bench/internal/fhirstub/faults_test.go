package fhirstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// seq returns a Rand that yields vals in turn, then 0.99 (no fault).
func seq(vals ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(vals) == 0 {
			return 0.99
		}
		v := vals[0]
		vals = vals[1:]
		return v
	}
}

func tokenResponse(t *testing.T, tokenURL string) (string, int) {
	t.Helper()
	resp, err := http.PostForm(tokenURL, url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertionFor(tokenURL, "gw.example")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response: %v", err)
	}
	return tr.AccessToken, tr.ExpiresIn
}

func TestTokenLifetimeIsEnforced(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s, srv := newStub(t, Config{TokenLifetime: time.Minute, Clock: clk.Now})
	tok, expiresIn := tokenResponse(t, srv.URL+"/o/"+oid+"/token")
	if expiresIn != 60 {
		t.Fatalf("expires_in %d, want 60", expiresIn)
	}
	h := http.Header{"Authorization": {"Bearer " + tok}}
	tests := []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{"fresh", 0, 200},
		{"a second before expiry", 59 * time.Second, 200},
		{"at expiry", time.Second, 401},
		{"long after", time.Hour, 401},
	}
	for _, tt := range tests {
		clk.Advance(tt.advance)
		if code, _, body := get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", h); code != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.name, code, tt.want, body)
		}
	}
	if st := s.Stats(); st.PatientExpired != 2 || st.PatientUnauthorized != 2 || st.PatientOK != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		ok   bool
	}{
		{"none", Faults{}, true},
		{"typical", Faults{Unavailable: 0.005, Reset: 0.002, Unauthorized: 0.0005}, true},
		{"all the time", Faults{Unavailable: 0.5, Reset: 0.5}, true},
		{"negative", Faults{Reset: -0.1}, false},
		{"above one", Faults{Unauthorized: 1.5}, false},
		{"NaN", Faults{Unavailable: nan()}, false},
		{"sum above one", Faults{Unavailable: 0.6, Reset: 0.6}, false},
		{"negative max records", Faults{MaxRecords: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func nan() float64 { var z float64; return z / z }

// Each injected failure is what it says, is marked, is counted, and is
// recorded under the request id together with the attempts after it.
func TestFaultsInjectedAndRecorded(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	// Attempts in order: ok, 503, 401, ok (the retry of the 401), reset, ok.
	s, srv := newStub(t, Config{
		Clock:  clk.Now,
		Faults: Faults{Unavailable: 0.1, Reset: 0.1, Unauthorized: 0.1, Rand: seq(0.5, 0.05, 0.25, 0.9, 0.15, 0.9)},
	})
	tok, _ := tokenResponse(t, srv.URL+"/o/"+oid+"/token")
	clk.Advance(7 * time.Second)
	patient := srv.URL + "/o/" + oid + "/fhir/Patient/1"
	do := func(id string) (int, http.Header, error) {
		req, _ := http.NewRequest(http.MethodGet, patient, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(RequestIDHeader, id)
		// A fresh connection each time: the reset must not be retried
		// by the client's transport.
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}
	tests := []struct {
		id       string
		want     int
		injected string
		reset    bool
	}{
		{"r-ok", 200, "", false},
		{"r-503", 503, "503", false},
		{"r-401", 401, "401", false},
		{"r-401", 200, "", false}, // the client's retry, same id
		{"r-reset", 0, "", true},
		{"r-reset", 200, "", false},
	}
	for _, tt := range tests {
		code, h, err := do(tt.id)
		if tt.reset {
			if err == nil || !(errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "EOF")) {
				t.Errorf("%s: got %d, %v; want a connection reset", tt.id, code, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if code != tt.want || h.Get(InjectedHeader) != tt.injected {
			t.Errorf("%s: status %d, %s %q; want %d, %q", tt.id, code, InjectedHeader, h.Get(InjectedHeader), tt.want, tt.injected)
		}
	}
	st := s.Stats()
	if st.Injected.Unavailable != 1 || st.Injected.Reset != 1 || st.Injected.Unauthorized != 1 || st.PatientOK != 3 {
		t.Errorf("stats %+v", st)
	}
	if got := s.recordedIDs(); !slices.Equal(got, []string{"r-401", "r-503", "r-reset"}) {
		t.Errorf("recorded ids %v; an id with only OK attempts is not kept", got)
	}
	at := clk.Now()
	want := map[string][]Attempt{
		"r-503":   {{Outcome: OutcomeInjected503, OID: oid, At: at}},
		"r-401":   {{Outcome: OutcomeInjected401, OID: oid, At: at, TokenAge: 7 * time.Second, Newest: true, FirstRefusal: true}, {Outcome: OutcomeOK, OID: oid, At: at}},
		"r-reset": {{Outcome: OutcomeInjectedReset, OID: oid, At: at}, {Outcome: OutcomeOK, OID: oid, At: at}},
	}
	for id, w := range want {
		if got := s.Attempts(id); !slices.Equal(got, w) {
			t.Errorf("attempts of %s:\n got %+v\nwant %+v", id, got, w)
		}
	}
	if recs := s.Records(); len(recs) != 3 {
		t.Errorf("Records() has %d ids, want 3", len(recs))
	}
	if !OutcomeInjected401.Injected() || OutcomeExpiredToken.Injected() || OutcomeOK.Injected() {
		t.Error("Outcome.Injected is wrong")
	}
}

// A second 401 for the same token is not a first refusal, and a token
// that was replaced by a newer one is not the newest.
func TestInjected401Bookkeeping(t *testing.T) {
	s, srv := newStub(t, Config{Faults: Faults{Unauthorized: 1}})
	tokenURL := srv.URL + "/o/" + oid + "/token"
	old, _ := tokenResponse(t, tokenURL)
	get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer " + old}, RequestIDHeader: {"a"}})
	get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer " + old}, RequestIDHeader: {"b"}})
	tokenResponse(t, tokenURL)
	get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer " + old}, RequestIDHeader: {"c"}})
	for _, c := range []struct {
		id            string
		newest, first bool
	}{{"a", true, true}, {"b", true, false}, {"c", false, false}} {
		as := s.Attempts(c.id)
		if len(as) != 1 || as[0].Outcome != OutcomeInjected401 || as[0].Newest != c.newest || as[0].FirstRefusal != c.first {
			t.Errorf("%s: %+v, want newest %v first %v", c.id, as, c.newest, c.first)
		}
	}
}

func TestRecordsAreBounded(t *testing.T) {
	s, srv := newStub(t, Config{Faults: Faults{Unavailable: 1, MaxRecords: 2}})
	tok, err := FetchToken(context.Background(), srv.Client(), srv.URL, oid)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3", "", "2"} {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		if id != "" {
			h.Set(RequestIDHeader, id)
		}
		get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", h)
	}
	st := s.Stats()
	if got := s.recordedIDs(); !slices.Equal(got, []string{"1", "2"}) || len(s.Attempts("2")) != 2 {
		t.Errorf("recorded %v (attempts of 2: %d)", got, len(s.Attempts("2")))
	}
	if st.Injected.RecordsDropped != 1 || st.Injected.Unrecorded != 1 || st.Injected.Unavailable != 5 {
		t.Errorf("counts %+v", st.Injected)
	}
}

// Without faults nothing is recorded, and the hot path takes no lock.
func TestNoFaultsNoRecords(t *testing.T) {
	s, srv := newStub(t, Config{})
	tok, err := FetchToken(context.Background(), srv.Client(), srv.URL, oid)
	if err != nil {
		t.Fatal(err)
	}
	get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer nope"}, RequestIDHeader: {"x"}})
	get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", http.Header{"Authorization": {"Bearer " + tok}, RequestIDHeader: {"y"}})
	if s.faults != nil || len(s.Records()) != 0 || s.Attempts("x") != nil {
		t.Error("records kept without faults")
	}
}

// The answers the stub makes up (injected 401 and 503, an expired token)
// never echo the token they refused.
func TestInjectedAnswersDoNotEchoTheToken(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	_, srv := newStub(t, Config{Clock: clk.Now, TokenLifetime: time.Minute, Faults: Faults{Unavailable: 0.5, Unauthorized: 0.5, Rand: seq(0.1, 0.9)}})
	tok, _ := tokenResponse(t, srv.URL+"/o/"+oid+"/token")
	h := http.Header{"Authorization": {"Bearer " + tok}, RequestIDHeader: {"x"}}
	for _, want := range []int{503, 401} {
		code, hdr, body := get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", h)
		if code != want || strings.Contains(string(body), tok) || strings.Contains(fmt.Sprint(hdr), tok) {
			t.Errorf("injected %d echoes the token or is %d: %v %s", want, code, hdr, body)
		}
	}
	clk.Advance(2 * time.Minute)
	code, hdr, body := get(t, srv.URL+"/o/"+oid+"/fhir/Patient/1", h)
	if code != 401 || strings.Contains(string(body), tok) || strings.Contains(fmt.Sprint(hdr), tok) {
		t.Errorf("expired-token 401 echoes the token or is %d: %v %s", code, hdr, body)
	}
}

// recordedIDs returns the request ids the stub keeps attempts of.
func (s *Server) recordedIDs() []string {
	if s.faults == nil {
		return nil
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return slices.Sorted(maps.Keys(s.faults.records))
}
