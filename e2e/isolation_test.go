package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/outcome"
)

// Tenant isolation (issue 12), the token side: each test plays a hostile
// partner or caller against the whole gateway, with every party a
// separate loopback origin.

// hostilePartner is a partner FHIR server that advertises someone else's
// token endpoint in every discovery document, and records every request
// that reaches it otherwise (with the bearer token it was sent).
type hostilePartner struct {
	*httptest.Server
	tokenURL string // what it advertises

	mu     sync.Mutex
	bearer []string // Authorization headers of FHIR requests
	// tokenBody is what its own token endpoint (/oauth2/token) answers.
	tokenBody  string
	tokenCalls atomic.Int64
}

// newHostilePartner starts a partner advertising tokenURL, or its own
// token endpoint when tokenURL is "".
func newHostilePartner(t *testing.T, tokenURL string) *hostilePartner {
	p := &hostilePartner{tokenURL: tokenURL}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		p.tokenCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		p.mu.Lock()
		body := p.tokenBody
		p.mu.Unlock()
		w.Write([]byte(body))
	})
	mux.HandleFunc("GET /r4/metadata", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","format":["json"],
 "rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
  "extension":[{"url":"token","valueUri":%q},{"url":"carequality-token","valueUri":%q}]}]}}]}`, p.tokenURL, p.tokenURL)
	})
	mux.HandleFunc("GET /r4/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token_endpoint": p.tokenURL, "grant_types_supported": []string{"client_credentials"},
			"token_endpoint_auth_methods_supported": []string{"private_key_jwt"}})
	})
	mux.HandleFunc("/r4/", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.bearer = append(p.bearer, r.Header.Get("Authorization"))
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write([]byte(`{"resourceType":"Patient","id":"stolen"}`))
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	if p.tokenURL == "" {
		p.tokenURL = p.URL + "/oauth2/token"
	}
	return p
}

func (p *hostilePartner) base() string { return p.URL + "/r4" }

func (p *hostilePartner) fhirRequests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bearer...)
}

// countingTokenServer is partner B's token endpoint: it counts requests
// and the client assertions it is sent, and issues nothing.
type countingTokenServer struct {
	*httptest.Server
	requests, assertions atomic.Int64
}

func newCountingTokenServer(t *testing.T) *countingTokenServer {
	s := &countingTokenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.ParseForm() == nil && r.PostForm.Get("client_assertion") != "" {
			s.assertions.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"partner-b-token","token_type":"Bearer","expires_in":300}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingTokenServer) tokenURL() string { return s.URL + "/oauth2/token" }

func outcomeOf(t *testing.T, body []byte) *outcome.OperationOutcome {
	t.Helper()
	var oo outcome.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome (%v): %s", err, body)
	}
	return &oo
}

// Property 1: partner A's discovery documents advertise partner B's token
// URL (a foreign origin, or the token URL another organization really
// uses). cqgate refuses with a 502 naming both origins, signs nothing,
// sends nothing to B, and never hands A a token (not even one cached for
// another organization).
func TestIsolationForeignTokenURLRefused(t *testing.T) {
	const partnerA = "2.16.840.1.113883.3.12.1"
	for _, tt := range []struct {
		name   string
		order  []string
		victim string // "b" (partner B's own token server) or "shared" (the token URL cernerOID uses)
	}{
		{"carequality-token points at B", []string{"carequality-token"}, "b"},
		{"generic token points at B", []string{"token"}, "b"},
		{"smart-configuration points at B", []string{"smart-configuration"}, "b"},
		{"carequality-token points at another organization's cached token", []string{"carequality-token"}, "shared"},
		{"smart-configuration points at another organization's cached token", []string{"smart-configuration"}, "shared"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newCountingTokenServer(t)
			var a *hostilePartner
			w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
				victim := b.tokenURL()
				if tt.victim == "shared" {
					victim = w.auth.TokenURL
				}
				a = newHostilePartner(t, victim)
				c.Organizations[partnerA] = config.Organization{Name: "Partner A", FHIRBase: a.base(),
					DiscoveryOrder: tt.order, AllowPrivateAddresses: true}
			}})
			// The victim organization has a cached token first.
			if resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("victim warm-up: %d %s", resp.StatusCode, body)
			}
			assertionsBefore := len(w.auth.Assertions())

			resp, body := w.do("GET", "/fhir/"+partnerA+"/Patient/1316024", nil, nil)
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("partner A advertising a foreign token URL: %d %s", resp.StatusCode, body)
			}
			d := outcomeOf(t, body).Issue[0].Diagnostics
			aOrigin := strings.TrimSuffix(a.URL, "/")
			bOrigin := b.URL
			if tt.victim == "shared" {
				bOrigin = w.auth.URL
			}
			if !strings.Contains(d, aOrigin) || !strings.Contains(d, bOrigin) || !strings.Contains(d, "allowed_token_origins") {
				t.Errorf("diagnostics do not name both origins (%s, %s) and the key: %q", aOrigin, bOrigin, d)
			}
			if n := b.requests.Load(); n != 0 {
				t.Errorf("partner B's token server got %d request(s), %d assertion(s)", n, b.assertions.Load())
			}
			if n := len(w.auth.Assertions()); n != assertionsBefore {
				t.Errorf("%d assertion(s) signed and sent for partner A", n-assertionsBefore)
			}
			if got := a.fhirRequests(); len(got) != 0 {
				t.Errorf("partner A's FHIR server was sent %d request(s) (Authorization %q)", len(got), got)
			}
			// The lookup endpoint says why as well.
			_, body = w.do("GET", "/directory/Organization/"+partnerA, nil, nil)
			if !strings.Contains(string(body), "allowed_token_origins") {
				t.Errorf("lookup does not report the refusal: %s", body)
			}
			w.assertNoSecrets(string(body))
		})
	}
}

// Property 1: two organizations legitimately share one authorization
// server (allowed in configuration, as several Oracle Health tenants do):
// each gets its own token, and one partner refusing its token (401)
// neither evicts, blocks (min_interval 503) nor delays the other's.
func TestIsolationSharedAuthServerSeparateTokens(t *testing.T) {
	const orgX, orgY = "2.16.840.1.113883.3.12.21", "2.16.840.1.113883.3.12.22"
	var fx, fy *fhirServer
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		fx, fy = newFHIRServer(t, w.auth), newFHIRServer(t, w.auth)
		for oid, f := range map[string]*fhirServer{orgX: fx, orgY: fy} {
			c.Organizations[oid] = config.Organization{FHIRBase: f.base(), AllowPrivateAddresses: true,
				AllowedTokenOrigins: []string{w.auth.URL}}
		}
	}})
	patient := func(oid string) int {
		resp, body := w.do("GET", "/fhir/"+oid+"/Patient/1316024", nil, nil)
		if resp.StatusCode == http.StatusOK && string(body) != patientJSON {
			t.Errorf("%s: body %s", oid, body)
		}
		return resp.StatusCode
	}
	for _, oid := range []string{orgX, orgY, orgX, orgY} {
		if s := patient(oid); s != http.StatusOK {
			t.Fatalf("%s: %d", oid, s)
		}
	}
	toks := w.auth.AccessTokens()
	if len(toks) != 2 || toks[0] == toks[1] {
		t.Fatalf("two organizations sharing an authorization server got %d token(s), want one each", len(toks))
	}

	// X's FHIR server refuses X's token: X's callers get X's 401 (and
	// then the min_interval 503), Y's keep being served with Y's token.
	w.auth.Revoke(toks[0])
	if s := patient(orgX); s != http.StatusUnauthorized && s != http.StatusServiceUnavailable {
		t.Errorf("X after its token was revoked: %d", s)
	}
	for range 3 {
		if s := patient(orgY); s != http.StatusOK {
			t.Fatalf("Y after X's token was refused: %d (X's refusal affected Y)", s)
		}
	}
	if n := w.auth.Exchanges(); n != 2 {
		t.Errorf("exchanges = %d, want 2 (X's refusal within min_interval makes none, Y needs none)", n)
	}
	for _, r := range fy.seen() {
		if !r.Authorized {
			t.Errorf("Y's FHIR server was sent an unauthorized request: %+v", r)
		}
	}
}

// Property 7: a token endpoint issuing anything but a Bearer token (DPoP,
// N_A, no token_type at all) gets a clear 502, and the token is never
// sent to the FHIR server as a bearer token.
func TestIsolationTokenTypeNotBearerRefused(t *testing.T) {
	const partner = "2.16.840.1.113883.3.12.31"
	for name, tt := range map[string]struct {
		body, want string
	}{
		"DPoP":    {`{"access_token":"dpop-bound-token-0123456789","token_type":"DPoP","expires_in":300}`, `type "DPoP"`},
		"N_A":     {`{"access_token":"na-token-0123456789","token_type":"N_A","expires_in":300}`, `type "N_A"`},
		"missing": {`{"access_token":"untyped-token-0123456789","expires_in":300}`, "no token_type"},
	} {
		t.Run(name, func(t *testing.T) {
			var p *hostilePartner
			w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
				p = newHostilePartner(t, "")
				p.mu.Lock()
				p.tokenBody = tt.body
				p.mu.Unlock()
				c.Organizations[partner] = config.Organization{FHIRBase: p.base(), DiscoveryOrder: []string{"carequality-token"}, AllowPrivateAddresses: true}
			}})
			resp, body := w.do("GET", "/fhir/"+partner+"/Patient/1", nil, nil)
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("token_type %s: %d %s", name, resp.StatusCode, body)
			}
			d := outcomeOf(t, body).Issue[0].Diagnostics
			if !strings.Contains(d, tt.want) || !strings.Contains(d, "Bearer") {
				t.Errorf("diagnostics do not say why: %q", d)
			}
			if strings.Contains(d, "0123456789") {
				t.Errorf("diagnostics reveal the token: %q", d)
			}
			if p.tokenCalls.Load() != 1 {
				t.Errorf("token endpoint called %d times, want 1", p.tokenCalls.Load())
			}
			if got := p.fhirRequests(); len(got) != 0 {
				t.Errorf("the FHIR server was sent %d request(s) with %q", len(got), got)
			}
		})
	}
}

// Property 3: a caller cycling through 50 distinct scopes causes at most
// tokens.max_contexts_per_organization exchanges with the partner (the
// rest are 429 with Retry-After, nothing exchanged); another organization
// keeps being served.
func TestIsolationCallerCannotMultiplyExchanges(t *testing.T) {
	const other = "2.16.840.1.113883.3.12.41"
	var fo *fhirServer
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Client.Scope = "system/*.read"
		fo = newFHIRServer(t, w.auth)
		c.Organizations[other] = config.Organization{FHIRBase: fo.base(), Scope: scope, AllowPrivateAddresses: true,
			AllowedTokenOrigins: []string{w.auth.URL}}
	}})
	limit := config.Default().Tokens.MaxContextsPerOrganization
	statuses := map[int]int{}
	for i := range 50 {
		// Resource names are letters only; every second request spells
		// the previous scope otherwise (it shares that context).
		res := "Resource" + string(rune('A'+i/2))
		hdr := map[string]string{"X-Cqgate-Scope": "system/" + res + ".read"}
		if i%2 == 1 {
			hdr["X-Cqgate-Scope"] = "  system/" + res + ".read system/" + res + ".read"
		}
		resp, body := w.do("GET", "/fhir/"+cernerOID+"/Patient/1316024", nil, hdr)
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(outcomeOf(t, body).Issue[0].Diagnostics, "tokens.max_contexts_per_organization") {
				t.Errorf("429 without Retry-After or the key: %v %s", resp.Header, body)
			}
		}
	}
	if n := w.auth.Exchanges(); n > int64(limit) {
		t.Errorf("50 requests with 25 distinct scopes made %d exchanges, want at most %d", n, limit)
	}
	if statuses[http.StatusTooManyRequests] != 50-2*limit {
		t.Errorf("statuses %v, want %d 429s", statuses, 50-2*limit)
	}
	t.Logf("statuses %v, exchanges %d", statuses, w.auth.Exchanges())
	if resp, body := w.do("GET", "/fhir/"+other+"/Patient/1316024", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another organization after the first hit its cap: %d %s", resp.StatusCode, body)
	}
}

// Property 10 (Vault half): the FHIR server refuses the token and a new
// one cannot be signed because Vault (transit) is unreachable. The caller
// gets a 502/503 OperationOutcome naming the signing key, never the
// partner's 401 as if the caller had failed to authenticate.
func TestIsolationVaultDownAfter401IsNotCallers401(t *testing.T) {
	w := newFaultWorld(t, faultOptions{transit: true, tune: func(c *config.Config, w *faultWorld) {
		c.Tokens.MinInterval = 0 // the refusal may be answered with a new exchange at once
	}})
	if a := w.mustCall(faultCernerPatient); a.status != http.StatusOK {
		t.Fatalf("warm-up: %s\nlogs:\n%s", a, w.logs)
	}
	w.vault.SetDown(true)
	w.auth.ExpireAll() // the partner now refuses the cached token
	for i := range 3 {
		a := w.mustCall(faultCernerPatient)
		if a.status != http.StatusBadGateway && a.status != http.StatusServiceUnavailable {
			t.Fatalf("request %d, token refused and Vault down: %s (want 502/503, not the partner's 401)", i, a)
		}
		if a.header.Get("WWW-Authenticate") != "" {
			t.Errorf("request %d carries the partner's WWW-Authenticate: %q", i, a.header.Get("WWW-Authenticate"))
		}
		d := faultOutcomeOf(t, a).Issue[0].Diagnostics
		if !strings.Contains(d, faultTransitKey) || !strings.Contains(d, "Vault") {
			t.Errorf("request %d: diagnostics do not name the signing key %s and Vault: %q", i, faultTransitKey, d)
		}
		if strings.Contains(d, vaultToken) || strings.Contains(d, "eyJ") {
			t.Errorf("diagnostics hold a secret: %q", d)
		}
		if i == 0 {
			t.Logf("token refused, Vault down: %s", a)
		}
	}
}
