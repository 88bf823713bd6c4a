package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cqgate/cqgate/config"
)

type outcomeBody struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
		Details     *struct {
			Coding []struct{ System, Code string }
			Text   string
		} `json:"details"`
	} `json:"issue"`
}

func decodeOutcome(t *testing.T, resp *http.Response, body []byte) outcomeBody {
	t.Helper()
	var oo outcomeBody
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome, got %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("OperationOutcome Content-Type = %q", ct)
	}
	return oo
}

// Fifty concurrent first requests for one OID resolve the directory once,
// read the CapabilityStatement once, exchange one assertion with fosite at
// the carequality-token URL (never the plain token URL), and all get the
// Patient.
func TestFullFlowConcurrentFirstRequests(t *testing.T) {
	for _, flavor := range []string{"r4", "stu3"} {
		t.Run(flavor, func(t *testing.T) {
			w := newWorld(t, worldOptions{flavor: flavor})
			const n = 50
			var wg sync.WaitGroup
			bodies := make([]string, n)
			statuses := make([]int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					oid := cernerOID
					if i%2 == 1 {
						oid = "urn:oid:" + cernerOID
					}
					resp, body := w.do("GET", "/fhir/"+oid+"/Patient/1316024", nil, map[string]string{
						"Authorization": "Bearer caller-own-token",
						"Cookie":        "caller-session=1",
					})
					statuses[i], bodies[i] = resp.StatusCode, string(body)
				}()
			}
			wg.Wait()

			for i := range n {
				if statuses[i] != http.StatusOK || bodies[i] != patientJSON {
					t.Fatalf("request %d: %d %s\nfosite failures: %v\nlogs:\n%s", i, statuses[i], bodies[i], w.auth.Failures(), w.logs)
				}
			}
			if got := w.auth.Exchanges(); got != 1 {
				t.Errorf("token exchanges = %d, want exactly 1 (fosite failures: %v)", got, w.auth.Failures())
			}
			if got := w.dir.requests.Load(); got != 1 {
				t.Errorf("directory requests = %d, want 1", got)
			}
			if got := w.fhir.metadataCalls.Load(); got != 1 {
				t.Errorf("metadata requests = %d, want 1", got)
			}
			if got := w.fhir.plainTokenHits.Load(); got != 0 {
				t.Errorf("the plain token URL was called %d times although carequality-token is advertised", got)
			}
			seen := w.fhir.seen()
			if len(seen) != n {
				t.Fatalf("FHIR server saw %d requests, want %d", len(seen), n)
			}
			for _, r := range seen {
				if !r.Authorized || r.Accept != "application/fhir+json" || r.Cookie != "" || r.RequestID == "" {
					t.Fatalf("FHIR request not as it should be: %+v", r)
				}
			}
			w.assertNoSecrets(bodies...)
		})
	}
}

// When the FHIR server refuses a token, cqgate drops it, exchanges exactly
// one new assertion, and retries, replaying the request body byte for
// byte; a burst of refusals of the same token costs one exchange too.
func TestRefusedTokenIsReplacedOnce(t *testing.T) {
	// No minimum interval between exchanges here; the next test has one.
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) { c.Tokens.MinInterval = 0 }})
	if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}

	w.auth.ExpireAll() // the cached token is now refused by the FHIR server
	payload := bytes.Repeat([]byte(`{"resourceType":"Patient","name":[{"family":"Replay"}]}`), 50)
	resp, body := w.do("POST", "/fhir/"+cernerOID+"/Patient", payload, map[string]string{"Content-Type": "application/fhir+json"})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), fmt.Sprintf(`"received_bytes":%d`, len(payload))) {
		t.Fatalf("retry after 401: %d %s\nlogs:\n%s", resp.StatusCode, body, w.logs)
	}
	if got := w.auth.Exchanges(); got != 2 {
		t.Errorf("exchanges = %d, want 2 (one initial, one after the 401)", got)
	}
	var posts []fhirRequest
	for _, r := range w.fhir.seen() {
		if r.Method == "POST" {
			posts = append(posts, r)
		}
	}
	if len(posts) != 2 || posts[0].Authorized || !posts[1].Authorized || !bytes.Equal(posts[0].Body, payload) || !bytes.Equal(posts[1].Body, payload) {
		t.Fatalf("want a refused then an accepted POST with the same body, got %d POSTs", len(posts))
	}

	w.auth.ExpireAll()
	var wg sync.WaitGroup
	fail := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
				fail <- fmt.Sprintf("%d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	close(fail)
	for f := range fail {
		t.Errorf("burst request failed: %s", f)
	}
	if got := w.auth.Exchanges(); got != 3 {
		t.Errorf("exchanges after a burst of 401s = %d, want 3", got)
	}
	w.assertNoSecrets(string(body))
}

// Within the minimum interval after an exchange (Cerner throttles token
// requests under a minute), a storm of 401s makes no new exchange: callers
// that raced the refusal get the FHIR server's 401 as it is, later ones a
// 503 with Retry-After until a new exchange is allowed.
func TestRefusalStormWithinMinInterval(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	w.auth.ExpireAll()
	var wg sync.WaitGroup
	statuses := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil)
			statuses <- fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Retry-After"))
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		code, retryAfter, _ := strings.Cut(s, " ")
		secs, _ := strconv.Atoi(retryAfter)
		if code != "401" && !(code == "503" && secs > 0 && secs <= 60) {
			t.Errorf("status %q, want the FHIR server's 401 or a 503 with Retry-After", s)
		}
	}
	if got := w.auth.Exchanges(); got != 1 {
		t.Errorf("exchanges = %d, want 1: a 401 storm inside the minimum interval must not reach the token endpoint", got)
	}
}

func TestUnknownAndMalformedOIDs(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	tests := []struct {
		path       string
		wantStatus int
		wantCode   string
		wantDirReq bool
	}{
		{"/fhir/2.16.840.1.113883.3.99999/Patient/1", http.StatusNotFound, "not-found", true},
		{"/fhir/1.2.abc/Patient/1", http.StatusBadRequest, "value", false},
		{"/fhir/urn:oid:/Patient/1", http.StatusBadRequest, "value", false},
		{"/fhir/" + cernerOID + "/Patient/..%2f..%2fadmin", http.StatusBadRequest, "invalid", false},
		// Remembered from the /fhir request above: not asked again.
		{"/directory/Organization/2.16.840.1.113883.3.99999", http.StatusNotFound, "not-found", false},
		{"/directory/Organization/3.1", http.StatusBadRequest, "value", false},
		{"/nowhere", http.StatusNotFound, "not-found", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := w.dir.requests.Load()
			resp, body := w.do("GET", tt.path, nil, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			oo := decodeOutcome(t, resp, body)
			if oo.Issue[0].Code != tt.wantCode || oo.Issue[0].Diagnostics == "" {
				t.Errorf("issue = %+v", oo.Issue[0])
			}
			if asked := w.dir.requests.Load() > before; asked != tt.wantDirReq {
				t.Errorf("directory asked = %v, want %v", asked, tt.wantDirReq)
			}
		})
	}
	if w.auth.Exchanges() != 0 {
		t.Errorf("refused requests caused %d token exchanges", w.auth.Exchanges())
	}
}

// A token endpoint's OAuth error reaches the caller as a 502
// OperationOutcome that keeps error, error_description and the upstream
// X-Request-Id.
func TestOAuthErrorKeepsUpstreamFields(t *testing.T) {
	const other = "2.16.840.1.113883.3.777"
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Organizations[other] = config.Organization{
			Name: "Unregistered", FHIRBase: w.fhir.base(), TokenURL: w.auth.TokenURL, ClientID: "unregistered.example.org",
			AllowPrivateAddresses: true,
		}
	}})
	resp, body := w.do("GET", "/fhir/"+other+"/Patient/1316024", nil, nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	oo := decodeOutcome(t, resp, body)
	is := oo.Issue[0]
	if is.Details == nil || len(is.Details.Coding) == 0 || is.Details.Coding[0].Code != "invalid_client" || is.Details.Coding[0].System != "urn:ietf:rfc:6749" {
		t.Errorf("OAuth error code not kept: %s", body)
	}
	rid := resp.Header.Get("X-Upstream-Request-Id")
	if rid == "" || !strings.Contains(string(body), rid) {
		t.Errorf("upstream X-Request-Id %q not kept in header and body: %s", rid, body)
	}
	failures := w.auth.Failures()
	if len(failures) != 1 || !strings.Contains(failures[0], rid) {
		t.Errorf("the kept X-Request-Id %q is not the one fosite answered with: %v", rid, failures)
	}
	if !strings.Contains(w.logs.String(), rid) {
		t.Errorf("the upstream request id is not in the gateway log")
	}
	// The other organization still works.
	if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthy organization affected: %d %s", resp.StatusCode, body)
	}
	w.assertNoSecrets(string(body))
}

func TestDirectoryLookupEndpoint(t *testing.T) {
	for _, flavor := range []string{"r4", "stu3"} {
		t.Run(flavor, func(t *testing.T) {
			w := newWorld(t, worldOptions{flavor: flavor})
			resp, body := w.do("GET", "/directory/Organization/urn:oid:"+cernerOID, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got struct {
				OID            string `json:"oid"`
				Name           string `json:"name"`
				Active         bool   `json:"active"`
				FHIRBase       string `json:"fhir_base"`
				TokenURL       string `json:"token_url"`
				TokenURLSource string `json:"token_url_source"`
				Endpoints      []struct {
					Address string `json:"address"`
				} `json:"endpoints"`
				CachedAt string `json:"cached_at"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			wantEndpoints := map[string]int{"r4": 3, "stu3": 2}[flavor]
			if got.OID != cernerOID || got.Name != "Cerner Connectathon" || !got.Active || got.FHIRBase != w.fhir.base() ||
				got.TokenURL != w.auth.TokenURL || got.TokenURLSource != "carequality-token" || len(got.Endpoints) != wantEndpoints || got.CachedAt == "" {
				t.Errorf("lookup = %s", body)
			}
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := w.do("GET", p, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
}

// An organization configured with an algorithm the key cannot do gets an
// OperationOutcome naming the clash, and no token request is sent.
func TestAlgorithmThatCannotFitTheKey(t *testing.T) {
	const es = "2.16.840.1.113883.3.778"
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Organizations[es] = config.Organization{FHIRBase: w.fhir.base(), TokenURL: w.auth.TokenURL, Algorithm: "ES256", AllowPrivateAddresses: true}
	}})
	resp, body := w.do("GET", "/fhir/"+es+"/Patient/1316024", nil, nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	oo := decodeOutcome(t, resp, body)
	if !strings.Contains(oo.Issue[0].Diagnostics, `"ES256" cannot be used with a RSA-2048 key (usable: RS384, RS256`) {
		t.Errorf("diagnostics do not name the clash: %s", body)
	}
	if w.auth.Exchanges() != 0 {
		t.Errorf("a token request was sent with an assertion that cannot be signed")
	}
}

// After traffic, /metrics shows it with sane values, and holds no secret.
func TestMetricsAfterTraffic(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4"})
	for range 3 {
		if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	w.do("GET", "/fhir/1.2.x/Patient/1", nil, nil)
	resp, body := w.do("GET", "/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{
		`cqgate_requests_total{code_class="2xx",method="GET",org="` + cernerOID + `"} 3`,
		`cqgate_requests_total{code_class="4xx",method="GET",org="unknown"} 1`,
		`cqgate_token_exchanges_total{outcome="success"} 1`,
		`cqgate_token_cache_requests_total{result="hit"} 2`,
		`cqgate_token_cache_requests_total{result="miss"} 1`,
		`cqgate_upstream_duration_seconds_count{org="` + cernerOID + `"} 3`,
		`cqgate_vault_logged_in 1`,
		`cqgate_signing_certificate_not_after_seconds 1.`,
		`cqgate_signing_key_reloads_total{result="success"} 1`, // the first load
		`cqgate_signing_key_reloads_total{result="failure"} 0`,
		`cqgate_inflight_requests 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	w.assertNoSecrets(text)
}

// Warm-up resolves the configured organizations and fetches their tokens
// before any caller asks; SIGHUP's reload keeps everything working.
func TestWarmupAndReload(t *testing.T) {
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, _ *world) {
		c.Warmup.Organizations = []string{cernerOID}
	}})
	w.gw.Warmup(context.Background())
	if got := w.auth.Exchanges(); got != 1 {
		t.Fatalf("exchanges after warm-up = %d, want 1", got)
	}
	if err := w.gw.Reload(context.Background(), nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := w.auth.Exchanges(); got != 1 {
		t.Errorf("the first request after warm-up exchanged again (%d exchanges)", got)
	}
}
