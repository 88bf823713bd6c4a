package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
)

const (
	faultCernerPatient = "/fhir/" + cernerOID + "/Patient/1316024"
	faultPatient       = "/fhir/" + faultOID + "/Patient/"
)

// Vault unreachable at start (sealed: every call a 503; or nothing
// listening at its address): gateway.New returns, /readyz says why it is
// not ready, FHIR requests get a 503 OperationOutcome pointing to
// /readyz, the key load is retried with growing gaps, and once Vault
// answers the gateway becomes ready by itself and serves the Patient.
func TestFaultVaultUnreachableAtStart(t *testing.T) {
	tests := []struct {
		name string
		// refused: nothing listens at Vault's address until it comes up
		// (else a sealed Vault answers 503).
		refused bool
		// watch is keys.watch_interval; 0 keeps the default (1m), so that
		// only the start-up retries can bring the key in.
		watch time.Duration
	}{
		{name: "sealed, start-up retries", refused: false},
		{name: "connection refused, key watch", refused: true, watch: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			if tt.refused {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = l.Addr().String()
				l.Close() // nothing listens there until Vault "starts"
			}
			start := time.Now()
			w := newFaultWorld(t, faultOptions{noWait: true, vaultDown: !tt.refused, vaultAddr: faultHTTPURL(addr),
				tune: func(c *config.Config, _ *faultWorld) {
					if tt.watch > 0 {
						c.Keys.WatchInterval = tt.watch
					}
				}})
			if took := time.Since(start); took > faultAnswerBound {
				t.Errorf("gateway.New took %s with Vault unreachable", took)
			}

			if a := w.mustCall("/healthz"); a.status != http.StatusOK {
				t.Errorf("/healthz: %s", a)
			}
			a := w.mustCall("/readyz")
			t.Logf("/readyz: %s", a)
			if a.status != http.StatusServiceUnavailable || !strings.Contains(faultOutcomeOf(t, a).Issue[0].Diagnostics, "signing key not loaded yet") {
				t.Errorf("/readyz while Vault is unreachable: %s", a)
			}
			a = w.mustCall(faultCernerPatient)
			t.Logf("FHIR request: %s", a)
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("FHIR request while the key is not loaded: %s", a)
			}
			if d := faultOutcomeOf(t, a).Issue[0].Diagnostics; !strings.Contains(d, "no signing key loaded") || !strings.Contains(d, "/readyz") {
				t.Errorf("diagnostics do not say the signing key is not loaded: %q", d)
			}
			if n := w.auth.Exchanges(); n != 0 {
				t.Errorf("%d token requests without a signing key", n)
			}

			// Several attempts with growing gaps: the first failure, then
			// each retry logs when the next one is. The gaps are jittered
			// (±50%, growing 1.5× per attempt), so only every third one
			// is sure to be longer.
			faultEventually(t, faultWaitBound, "four retries of the key load", func() bool {
				return len(w.logEntries("gateway: signing key still not loaded")) >= 4
			})
			if n := len(w.logEntries("gateway: signing key not loaded; retrying in the background")); n != 1 {
				t.Errorf("first failure logged %d times", n)
			}
			var gaps []time.Duration
			defer func() { t.Logf("key load retried after growing gaps: retry_in %v", gaps) }()
			for _, e := range w.logEntries("gateway: signing key still not loaded") {
				d, err := time.ParseDuration(fmt.Sprint(e["retry_in"]))
				if err != nil {
					t.Fatalf("retry_in %v: %v", e["retry_in"], err)
				}
				gaps = append(gaps, d)
			}
			for i := 3; i < len(gaps); i++ {
				if gaps[i] <= gaps[i-3] {
					t.Errorf("key load retries do not back off: retry_in %v", gaps)
				}
			}
			if n := len(w.logEntries("vault: login failed")); n == 0 {
				t.Errorf("Vault login failure not logged")
			}
			if n := w.metric("cqgate_signing_key_reload_failures"); n < 3 {
				t.Errorf("cqgate_signing_key_reload_failures = %v after three failed loads", n)
			}

			// Vault comes up.
			if tt.refused {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Skipf("the port of the absent Vault was taken meanwhile: %v", err)
				}
				srv := &http.Server{Handler: w.vault, ReadHeaderTimeout: time.Second}
				go srv.Serve(l)
				t.Cleanup(func() { srv.Close() })
			} else {
				w.vault.SetDown(false)
			}
			faultEventually(t, faultWaitBound, "ready once Vault answers", func() bool {
				return w.call("/readyz", nil).status == http.StatusOK
			})
			if !tt.refused {
				// The start-up retries loaded the key: WaitReady (which
				// warm-up waits on) returns too.
				ctx, cancel := context.WithTimeout(context.Background(), faultAnswerBound)
				defer cancel()
				if err := w.gw.WaitReady(ctx); err != nil {
					t.Errorf("WaitReady after the key was loaded: %v", err)
				}
			}
			if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK || string(a.body) != patientJSON {
				t.Fatalf("after Vault came up: %s\nlogs:\n%s", a, w.logs)
			}
			w.assertNoFaultSecrets(string(a.body))
		})
	}
}

func faultHTTPURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "http://" + addr
}

// Vault unreachable after start, with the key read from KV: cqgate keeps
// signing with the key it holds, including a new exchange after fosite
// revoked the cached token; the key watch's failures are recorded (status,
// metric, log) and are not fatal; when Vault is back the failures clear.
func TestFaultVaultDownAfterStartKV(t *testing.T) {
	w := newFaultWorld(t, faultOptions{tune: func(c *config.Config, _ *faultWorld) {
		c.Keys.WatchInterval = 100 * time.Millisecond
		c.Tokens.MinInterval = 0 // the 401 below may be answered with a new exchange at once
	}})
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Fatalf("warm-up: %s", a)
	}

	w.vault.SetDown(true)
	faultEventually(t, faultWaitBound, "key watch failures recorded", func() bool { return w.metric("cqgate_signing_key_reload_failures") >= 2 })
	if a := w.mustCall("/readyz"); a.status != http.StatusOK {
		t.Errorf("/readyz with Vault down but the key loaded: %s", a)
	}
	if len(w.logEntries("keys: reloading signing material failed; keeping the previous material")) == 0 {
		t.Errorf("failed reloads not logged")
	}

	w.auth.ExpireAll() // the FHIR server now refuses the cached token
	a := w.mustCall(faultCernerPatient)
	if a.status != http.StatusOK || string(a.body) != patientJSON {
		t.Fatalf("with Vault down after a revoked token: %s\nlogs:\n%s", a, w.logs)
	}
	if n := w.auth.Exchanges(); n != 2 {
		t.Errorf("token exchanges = %d, want 2 (the second signed with the key held while Vault is down)", n)
	}

	w.vault.SetDown(false)
	faultEventually(t, faultWaitBound, "key watch recovers", func() bool { return w.metric("cqgate_signing_key_reload_failures") == 0 })
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Errorf("after Vault is back: %s", a)
	}
	w.assertNoFaultSecrets(string(a.body))
}

// Vault unreachable after start, signing with Vault transit: a request
// that needs a new token gets a 502 OperationOutcome naming Vault (and
// no secret); cached tokens keep working; /readyz stays ready; when Vault
// is back, the gateway recovers without a restart.
func TestFaultVaultDownAfterStartTransit(t *testing.T) {
	// Another organization, with its own token (another scope), so that
	// its first request needs an exchange while Vault is down.
	const other = "2.16.840.1.113883.3.13.9"
	otherPatient := "/fhir/" + other + "/Patient/1316024"
	w := newFaultWorld(t, faultOptions{transit: true, tune: func(c *config.Config, w *faultWorld) {
		c.Tokens.MinInterval = 0
		c.Organizations[other] = config.Organization{Name: "Other", FHIRBase: w.fhir.base(), TokenURL: w.auth.TokenURL,
			Scope: "system/Patient.read", AllowPrivateAddresses: true}
	}})
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Fatalf("warm-up (signed in Vault transit): %s\nfosite: %v\nlogs:\n%s", a, w.auth.Failures(), w.logs)
	}
	signs := w.vault.RequestsFor("transit/sign/" + faultTransitKey)
	if signs == 0 {
		t.Fatalf("the assertion was not signed by Vault transit")
	}

	w.vault.SetDown(true)
	a := w.mustCall(otherPatient)
	if a.status != http.StatusBadGateway {
		t.Fatalf("new token while Vault is down: %s", a)
	}
	d := faultOutcomeOf(t, a).Issue[0].Diagnostics
	t.Logf("new token, Vault down: %s", a)
	if !strings.Contains(d, "Vault") || !strings.Contains(d, "transit") || !strings.Contains(d, "503") {
		t.Errorf("diagnostics do not name Vault transit and its answer: %q", d)
	}
	if strings.Contains(d, vaultToken) || strings.Contains(d, "eyJ") {
		t.Errorf("diagnostics hold a secret: %q", d)
	}
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Errorf("cached token with Vault down: %s", a)
	}
	if a := w.mustCall("/readyz"); a.status != http.StatusOK {
		t.Errorf("/readyz with Vault down and a transit key loaded: %s", a)
	}

	// A token the FHIR server refuses cannot be replaced either: the
	// first refused request gets the FHIR server's 401 as it is, later
	// ones the remembered Vault failure.
	w.auth.ExpireAll()
	first := w.mustCall(faultCernerPatient)
	if first.status != http.StatusUnauthorized && first.status != http.StatusBadGateway {
		t.Errorf("refused token with Vault down: %s", first)
	}
	t.Logf("refused token, Vault down: %s", first)
	later := w.mustCall(faultCernerPatient)
	if later.status != http.StatusBadGateway || !strings.Contains(faultOutcomeOf(t, later).Issue[0].Diagnostics, "Vault") {
		t.Errorf("after the refused token, with Vault down: %s", later)
	}

	// Each failed exchange is remembered for a moment (assertion.Cache's
	// failure hold), so recovery is awaited, not expected at once.
	w.vault.SetDown(false)
	var last faultAnswer
	faultEventually(t, faultWaitBound, "recovery once Vault is back", func() bool {
		last = w.call(otherPatient, nil)
		return last.status == http.StatusOK
	})
	faultEventually(t, faultWaitBound, "the refused token replaced once Vault is back", func() bool {
		a := w.call(faultCernerPatient, nil)
		return a.status == http.StatusOK && string(a.body) == patientJSON
	})
	if w.vault.RequestsFor("transit/sign/"+faultTransitKey) <= signs {
		t.Errorf("no signature from Vault transit after recovery")
	}
	w.assertNoFaultSecrets(string(a.body), d, string(first.body), string(later.body), string(last.body))
}

// The directory failing (500s) or hanging past directory.timeout: an
// organization cached before keeps being served, marked X-Cqgate-Stale,
// after its TTL; an unknown one gets a clear OperationOutcome (502, or
// 504 when the directory timed out) within the directory's bounds; once
// the directory answers again, entries are fresh again by themselves.
func TestFaultDirectoryDownOrSlow(t *testing.T) {
	tests := []struct {
		mode        string
		wantUnknown int
		wantText    string
	}{
		{faultDirFail, http.StatusBadGateway, "500"},
		{faultDirHang, http.StatusGatewayTimeout, "directory"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			w := newFaultWorld(t, faultOptions{fakeClock: true, tune: func(c *config.Config, _ *faultWorld) {
				c.Directory.CacheTTL = time.Minute
			}})
			a := w.mustCall(faultCernerPatient)
			if a.status != http.StatusOK || a.header.Get("X-Cqgate-Stale") != "" {
				t.Fatalf("warm-up: %s (stale %q)", a, a.header.Get("X-Cqgate-Stale"))
			}

			w.dir.setMode(tt.mode)
			w.clock.Advance(2 * time.Minute) // past the entry's TTL
			asked := w.dir.requests.Load()
			a = w.mustCall(faultCernerPatient)
			t.Logf("cached organization, directory %s: %d after %s, X-Cqgate-Stale %q", tt.mode, a.status, a.took, a.header.Get("X-Cqgate-Stale"))
			if a.status != http.StatusOK || string(a.body) != patientJSON || a.header.Get("X-Cqgate-Stale") != "directory" {
				t.Fatalf("cached organization with the directory failing: %s (X-Cqgate-Stale %q)\nlogs:\n%s", a, a.header.Get("X-Cqgate-Stale"), w.logs)
			}
			if w.dir.requests.Load() == asked {
				t.Errorf("the expired entry was served without asking the directory")
			}
			if a.took > faultAnswerBound {
				t.Errorf("stale answer took %s", a.took)
			}
			a = w.mustCall("/directory/Organization/" + cernerOID)
			if a.status != http.StatusOK || a.header.Get("X-Cqgate-Stale") != "directory" {
				t.Errorf("directory lookup with the directory failing: %s", a)
			}

			a = w.mustCall("/fhir/" + faultUnknownOID + "/Patient/1")
			t.Logf("unknown organization, directory %s: %s", tt.mode, a)
			if a.status != tt.wantUnknown {
				t.Fatalf("unknown organization with the directory failing: %s", a)
			}
			if d := faultOutcomeOf(t, a).Issue[0].Diagnostics; !strings.Contains(d, "directory") || !strings.Contains(d, tt.wantText) || strings.Contains(d, dirAPIKey) {
				t.Errorf("diagnostics for the unknown organization: %q", d)
			}
			if a.took > faultAnswerBound {
				t.Errorf("unknown organization answered after %s", a.took)
			}

			w.dir.setMode(faultDirOK)
			w.clock.Advance(time.Minute) // past the pause after a failed refresh
			a = w.mustCall(faultCernerPatient)
			if a.status != http.StatusOK || a.header.Get("X-Cqgate-Stale") != "" {
				t.Errorf("directory back: %s (X-Cqgate-Stale %q)", a, a.header.Get("X-Cqgate-Stale"))
			}
			if a := w.mustCall("/fhir/" + faultUnknownOID + "/Patient/1"); a.status != http.StatusNotFound {
				t.Errorf("unknown organization with the directory back: %s", a)
			}
			if n := w.auth.Exchanges(); n != 1 {
				t.Errorf("token exchanges = %d, want 1", n)
			}
			w.assertNoFaultSecrets(string(a.body))
		})
	}
}

// One organization's token endpoint answering 500 (with and without an
// RFC 6749 body) or slowly: callers of that organization get a 502 that
// keeps the upstream's error fields, or their Patient when slow but in
// time; the other organization is unaffected.
func TestFaultTokenEndpointErrors(t *testing.T) {
	tests := []struct {
		mode       string
		wantStatus int
		wantError  string // RFC 6749 error code kept, if any
		wantHits   int64
	}{
		{faultTokOAuth500, http.StatusBadGateway, "temporarily_unavailable", 2},
		{faultTokPlain503, http.StatusBadGateway, "", 2},
		{faultTokSlow, http.StatusOK, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			w := newFaultWorld(t, faultOptions{})
			w.tenant.setTokenMode(tt.mode)
			var (
				wg   sync.WaitGroup
				good faultAnswer
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				good = w.call(faultCernerPatient, nil)
			}()
			a := w.mustCall(faultPatient + "ok")
			wg.Wait()
			if good.status != http.StatusOK || string(good.body) != patientJSON {
				t.Errorf("the other organization: %s", good)
			}
			t.Logf("token endpoint %s: %s (X-Upstream-Request-Id %q)", tt.mode, a, a.header.Get("X-Upstream-Request-Id"))
			if a.status != tt.wantStatus {
				t.Fatalf("token endpoint %s: %s", tt.mode, a)
			}
			if n := w.tenant.tokenHits.Load(); n != tt.wantHits {
				t.Errorf("token requests = %d, want %d", n, tt.wantHits)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			oo := faultOutcomeOf(t, a)
			is := oo.Issue[0]
			if !strings.Contains(is.Diagnostics, w.tenant.URL+"/auth/token") {
				t.Errorf("diagnostics do not name the token endpoint: %q", is.Diagnostics)
			}
			fields := oo.oauthFields()
			rid := w.tenant.lastRequestID()
			if a.header.Get("X-Upstream-Request-Id") != rid || fields["x-request-id"] != rid {
				t.Errorf("upstream X-Request-Id %q not kept: header %q, extension %v", rid, a.header.Get("X-Upstream-Request-Id"), fields)
			}
			if tt.wantError != "" {
				if is.Details == nil || len(is.Details.Coding) == 0 || is.Details.Coding[0].Code != tt.wantError ||
					is.Details.Coding[0].System != "urn:ietf:rfc:6749" || is.Details.Text != "token service in maintenance" {
					t.Errorf("OAuth error not kept in details: %s", a.body)
				}
				if fields["error"] != tt.wantError || fields["error_description"] != "token service in maintenance" ||
					fields["error_uri"] != "https://status.example.org/token" || fields["http-status"] != "500" {
					t.Errorf("OAuth error fields not kept in the extension: %v", fields)
				}
			} else if fields["http-status"] != "503" {
				t.Errorf("upstream status not kept: %v", fields)
			}
			w.assertNoFaultSecrets(string(a.body))
		})
	}
}

// One organization's token endpoint hanging: 50 concurrent callers of it
// each get a 504 bounded by tokens.timeout (and the retries), while
// callers of the other organization keep getting their Patient during the
// hang; afterwards no goroutine is left behind.
func TestFaultTokenEndpointHangs(t *testing.T) {
	w := newFaultWorld(t, faultOptions{})
	// Warm up: the good organization's token; the fault organization's
	// directory entry and token URL (no token yet).
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Fatalf("warm-up: %s", a)
	}
	if a := w.mustCall("/directory/Organization/" + faultOID); a.status != http.StatusOK || !strings.Contains(string(a.body), w.tenant.URL+"/auth/token") {
		t.Fatalf("warm-up lookup: %s", a)
	}
	w.client.CloseIdleConnections()
	before := faultSettledGoroutines()

	w.tenant.setTokenMode(faultTokHang)
	const n = 50
	var (
		wg      sync.WaitGroup
		results = make([]faultAnswer, n)
		done    = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = w.call(faultPatient+"ok", nil)
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// While the token endpoint hangs, the other organization answers.
	select {
	case <-w.tenant.hanging:
	case <-time.After(faultWaitBound):
		t.Fatal("the token endpoint never saw a request")
	}
	var goodDuringHang int
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
			continue
		default:
		}
		a := w.call(faultCernerPatient, nil)
		if a.status != http.StatusOK || string(a.body) != patientJSON {
			t.Errorf("the other organization during the hang: %s", a)
		}
		goodDuringHang++
	}
	if goodDuringHang == 0 {
		t.Errorf("no request to the other organization completed during the hang")
	}

	for i, a := range results {
		if a.status != http.StatusGatewayTimeout {
			t.Fatalf("caller %d of the hanging organization: %s", i, a)
		}
		if a.took > faultAnswerBound {
			t.Errorf("caller %d waited %s for the hanging token endpoint", i, a.took)
		}
	}
	oo := faultOutcomeOf(t, results[0])
	t.Logf("hanging token endpoint: %d token requests; the other organization answered %d times meanwhile; first caller: %s",
		w.tenant.tokenHits.Load(), goodDuringHang, results[0])
	if d := oo.Issue[0].Diagnostics; !strings.Contains(d, w.tenant.URL+"/auth/token") {
		t.Errorf("diagnostics do not name the token endpoint: %q", d)
	}
	if oo.Issue[0].Code != "timeout" {
		t.Errorf("issue code %q, want timeout", oo.Issue[0].Code)
	}
	// One shared exchange for all callers, with its retry, and perhaps one
	// more after the failure hold ran out.
	if hits := w.tenant.tokenHits.Load(); hits < 1 || hits > 4 {
		t.Errorf("token requests = %d for %d concurrent callers, want one exchange (2 attempts) or two", hits, n)
	}

	w.tenant.releaseHangs()
	w.client.CloseIdleConnections()
	const slack = 5
	var after int
	deadline := time.Now().Add(faultWaitBound)
	for after = runtime.NumGoroutine(); after > before+slack && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond)
		w.client.CloseIdleConnections()
	}
	if after > before+slack {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
		t.Errorf("goroutines: %d before the burst, %d after it settled\n%s", before, after, sb.String())
	}
	w.assertNoFaultSecrets(string(results[0].body))
}

// faultSettledGoroutines is the goroutine count once it stopped changing.
func faultSettledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// The FHIR server misbehaving: a reset connection and an answer that
// never comes are clear OperationOutcomes (502, 504 after proxy.timeout);
// a 429 reaches the caller with its Retry-After and body; a response that
// stalls halfway ends for the caller (truncated) within the proxy's
// timeout instead of hanging.
func TestFaultFHIRUpstream(t *testing.T) {
	w := newFaultWorld(t, faultOptions{})
	if a := w.mustCall(faultPatient + "ok"); a.status != http.StatusOK {
		t.Fatalf("warm-up: %s\nlogs:\n%s", a, w.logs)
	}

	t.Run("reset", func(t *testing.T) {
		a := w.mustCall(faultPatient + "reset")
		t.Logf("reset: %s", a)
		if a.status != http.StatusBadGateway {
			t.Fatalf("reset connection: %s", a)
		}
		if d := faultOutcomeOf(t, a).Issue[0].Diagnostics; !strings.Contains(d, "FHIR server of "+faultOID) {
			t.Errorf("diagnostics do not name the FHIR server: %q", d)
		}
		if w.tenant.resets.Load() == 0 {
			t.Errorf("the FHIR server never reset a connection")
		}
	})
	t.Run("no answer", func(t *testing.T) {
		a := w.mustCall(faultPatient + "hang")
		t.Logf("no answer: %s", a)
		if a.status != http.StatusGatewayTimeout || a.took > faultAnswerBound {
			t.Fatalf("FHIR server without an answer: %s", a)
		}
		if oo := faultOutcomeOf(t, a); oo.Issue[0].Code != "timeout" || !strings.Contains(oo.Issue[0].Diagnostics, "FHIR server of "+faultOID) {
			t.Errorf("issue: %+v", oo.Issue[0])
		}
	})
	t.Run("429 Retry-After", func(t *testing.T) {
		a := w.mustCall(faultPatient + "throttle")
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "7" || string(a.body) != faultThrottledOutcome {
			t.Fatalf("429 not passed through with Retry-After and body: %s (Retry-After %q)", a, a.header.Get("Retry-After"))
		}
		if rid := a.header.Get("X-Request-Id"); rid == "" {
			t.Errorf("no X-Request-Id on the passed-through 429")
		}
	})
	t.Run("stall mid-body", func(t *testing.T) {
		// The caller gives up after twice the generous bound, so that a
		// gateway that never ends the response fails the test quickly.
		a := w.callWithin(2*faultAnswerBound, faultPatient+"stall", nil)
		if w.tenant.stalled.Load() == 0 {
			t.Fatalf("the FHIR server never stalled: %s", a)
		}
		if a.err == nil || a.took > faultAnswerBound {
			t.Fatalf("a response stalled halfway must end, truncated, within the proxy's timeout: %s", a)
		}
		if a.status != http.StatusOK || len(a.body) >= faultStallBodySize {
			t.Errorf("stalled response: status %d, %d bytes", a.status, len(a.body))
		}
	})
	if n := w.tenant.tokenHits.Load(); n != 1 {
		t.Errorf("token requests = %d, want 1: FHIR failures are not token failures", n)
	}
	w.assertNoFaultSecrets()
}

// A burst of 401s cannot cause more than one exchange per minimum
// interval, window after window: TestRefusalStormWithinMinInterval shows
// the first window (no exchange at all within tokens.min_interval of the
// last one); here, once the interval has passed, a second storm costs
// exactly one exchange, which every caller then shares, and a third storm
// right after it none.
func TestFaultRefusalStormOneExchangePerInterval(t *testing.T) {
	const interval = 30 * time.Second
	w := newFaultWorld(t, faultOptions{fakeClock: true, tune: func(c *config.Config, _ *faultWorld) {
		c.Tokens.MinInterval = interval
		// The gateway's clock runs ahead of fosite's below; iat and nbf
		// are backdated by the largest skew allowed, so fosite (which
		// allows no leeway) still accepts the assertions.
		c.Client.ClockSkew = time.Minute
	}})
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Fatalf("warm-up: %s", a)
	}
	storm := func() map[int]int {
		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			statuses = map[int]int{}
		)
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := w.call(faultCernerPatient, nil)
				if a.status == http.StatusServiceUnavailable && a.header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After: %s", a)
				}
				mu.Lock()
				statuses[a.status]++
				mu.Unlock()
			}()
		}
		start := time.Now()
		wg.Wait()
		t.Logf("storm: %v in %s", statuses, time.Since(start))
		return statuses
	}

	w.auth.ExpireAll()
	if got := storm(); got[http.StatusOK] != 0 || w.auth.Exchanges() != 1 {
		t.Errorf("storm within the interval: statuses %v, %d exchanges; want only 401s and 503s, 1 exchange", got, w.auth.Exchanges())
	}
	w.clock.Advance(interval + time.Second)
	if got := storm(); got[http.StatusOK] != 30 || w.auth.Exchanges() != 2 {
		t.Errorf("storm after the interval: statuses %v, %d exchanges; want 30 × 200, 2 exchanges\nfosite: %v", got, w.auth.Exchanges(), w.auth.Failures())
	}
	w.auth.ExpireAll()
	if got := storm(); got[http.StatusOK] != 0 || w.auth.Exchanges() != 2 {
		t.Errorf("storm right after the new exchange: statuses %v, %d exchanges; want no new exchange", got, w.auth.Exchanges())
	}
	w.assertNoFaultSecrets()
}
