package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/fositetest"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// The fault tests' world: the same parties as newWorld's (fosite, the
// fosite-protected FHIR server, a Vault), plus a second organization in
// the directory whose FHIR server and token endpoint (faultTenant) can be
// made to fail, a directory (faultDirectory) that can fail or hang, and a
// Vault that is always the API test server, so that it can be sealed
// (SetDown) or not be there at all. Every configurable timeout is short,
// so that most faults are over in well under a second; the gateway's
// start-up retries of the key load are not configurable (1 s, doubling).

const (
	// faultOID is the second organization in the directory: its FHIR
	// server and token endpoint are faultTenant.
	faultOID = "2.16.840.1.113883.3.13.2"
	// faultUnknownOID is in no directory.
	faultUnknownOID = "2.16.840.1.113883.3.13.77"
	// The transit key, and where its certificate is kept.
	faultTransitCertPath = "cqgate/transit-cert"
	faultTransitKey      = "cqgate"
)

// Short bounds of the fault world, and the generous bound within which a
// caller must have an answer whenever a peer hangs forever.
const (
	faultDirectoryTimeout = 300 * time.Millisecond
	faultTokenTimeout     = 500 * time.Millisecond
	faultProxyTimeout     = time.Second
	faultAnswerBound      = 5 * time.Second
	faultWaitBound        = 15 * time.Second
)

type faultWorld struct {
	*world
	vault  *vaulttest.Server
	clock  *clocktest.Clock // nil: the gateway runs on time.Now
	dir    *faultDirectory
	tenant *faultTenant
	client *http.Client // the callers' client, with its own connection pool
}

type faultOptions struct {
	// transit signs with a Vault transit key instead of a KV key.
	transit bool
	// fakeClock gives the gateway a clocktest clock (faultWorld.clock).
	fakeClock bool
	// vaultAddr replaces the Vault test server's address in the gateway's
	// configuration (a port nothing listens on yet).
	vaultAddr string
	// vaultDown seals the Vault test server before the gateway starts.
	vaultDown bool
	// noWait returns without waiting for the signing key to be loaded.
	noWait bool
	tune   func(*config.Config, *faultWorld)
}

func newFaultWorld(t *testing.T, opts faultOptions) *faultWorld {
	t.Helper()
	w := &faultWorld{world: &world{t: t, logs: &syncBuffer{}}}
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: clientID, DNSNames: []string{clientID}})
	if err != nil {
		t.Fatal(err)
	}
	w.keyPEM = keyPEM
	material, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	w.vault = vaulttest.New(t, vaultToken)
	w.vault.Put("secret", secretPath, map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)})
	if opts.transit {
		w.vault.ImportTransitKey("transit", faultTransitKey, material.Signer)
		w.vault.Put("secret", faultTransitCertPath, map[string]any{"certificate": string(certPEM)})
	}
	w.vault.SetDown(opts.vaultDown)

	w.auth = fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: material.Chain[0].PublicKey, KeyID: material.KeyID, Algorithm: "RS384",
		Scopes: []string{"system/Patient.*", "system/Observation.read"},
	}}})
	w.fhir = newFHIRServer(t, w.auth)
	w.tenant = newFaultTenant(t)
	w.dir = newFaultDirectory(t, map[string]string{cernerOID: w.fhir.base(), faultOID: w.tenant.base()})
	if opts.fakeClock {
		w.clock = clocktest.New(time.Now())
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	w.client = &http.Client{Transport: tr}

	cfg := config.Default()
	cfg.LogLevel = "debug"
	cfg.Directory.Flavor = "r4"
	cfg.Directory.URL = w.dir.URL + "/fhir"
	cfg.Directory.APIKey = dirAPIKey
	cfg.Directory.Timeout = faultDirectoryTimeout
	cfg.Directory.Retry = config.Retry{Attempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	cfg.Discovery.Timeout = time.Second
	cfg.Vault.Address = w.vault.URL
	if opts.vaultAddr != "" {
		cfg.Vault.Address = opts.vaultAddr
	}
	cfg.Vault.Auth.Token = vaultToken
	cfg.Vault.Timeout = 2 * time.Second
	// The Vault client's own retries (two by default, a second or more
	// apart) would stretch every Vault failure to seconds; cqgate's
	// retries are what these tests are about.
	cfg.Vault.MaxRetries = 0
	cfg.Keys.LoadRetry = config.Backoff{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	cfg.Keys.Source = "vault"
	cfg.Keys.Vault.Mount = "secret"
	cfg.Keys.Vault.Path = secretPath
	if opts.transit {
		cfg.Keys.Source = "transit"
		cfg.Keys.Transit.Key = faultTransitKey
		cfg.Keys.Transit.CertificatePath = faultTransitCertPath
	}
	cfg.Client.ClientID = clientID
	cfg.Client.Scope = scope
	cfg.Tokens.Timeout = faultTokenTimeout
	cfg.Tokens.Retry = config.Retry{Attempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	cfg.Proxy.Timeout = faultProxyTimeout
	cfg.Audit.Destination = "none"
	cfg.Organizations = map[string]config.Organization{
		cernerOID: {AllowPrivateAddresses: true, AllowedTokenOrigins: []string{w.auth.URL}},
		faultOID:  {AllowPrivateAddresses: true, AllowedTokenOrigins: []string{w.auth.URL}},
	}
	if opts.tune != nil {
		opts.tune(cfg, w)
	}
	gopts := gateway.Options{}
	if w.clock != nil {
		gopts.Clock = w.clock.Now
	}
	wait := faultAnswerBound
	if opts.noWait {
		wait = 0
	}
	w.start(cfg, gopts, wait)
	return w
}

// faultAnswer is what a caller got from the gateway.
type faultAnswer struct {
	status int
	header http.Header
	body   []byte
	// err is a transport or body-read failure (a truncated stream).
	err  error
	took time.Duration
}

func (a faultAnswer) String() string {
	body := string(a.body)
	if strings.TrimSpace(body) == "" && len(body) > 0 {
		body = fmt.Sprintf("(%d bytes of white space)", len(body))
	} else if len(body) > 2000 {
		body = fmt.Sprintf("%s... (%d bytes)", body[:2000], len(a.body))
	}
	if a.err != nil {
		return fmt.Sprintf("%d (after %s, error %v) %s", a.status, a.took, a.err, body)
	}
	return fmt.Sprintf("%d (after %s) %s", a.status, a.took, body)
}

// call sends a GET through the gateway; unlike world.do it neither fails
// the test on a transport error nor uses the shared default client.
func (w *faultWorld) call(path string, hdr map[string]string) faultAnswer {
	return w.callWithin(2*faultWaitBound, path, hdr)
}

// callWithin is call with the caller giving up after d.
func (w *faultWorld) callWithin(d time.Duration, path string, hdr map[string]string) faultAnswer {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.gateway.URL+path, nil)
	if err != nil {
		return faultAnswer{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		return faultAnswer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return faultAnswer{status: resp.StatusCode, header: resp.Header, body: body, err: err, took: time.Since(start)}
}

// mustCall is call for requests that must get a complete answer.
func (w *faultWorld) mustCall(path string) faultAnswer {
	w.t.Helper()
	a := w.call(path, nil)
	if a.err != nil {
		w.t.Fatalf("GET %s: %v", path, a.err)
	}
	return a
}

// faultEventually polls cond until it holds, failing the test after bound.
func faultEventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logEntries returns the gateway's log entries whose msg is msg.
func (w *faultWorld) logEntries(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// assertNoFaultSecrets checks that nothing the fault tenant's token
// endpoint received or issued (client assertions, access tokens), nor the
// Vault token or the directory API key, appears in the logs or in texts.
func (w *faultWorld) assertNoFaultSecrets(texts ...string) {
	w.t.Helper()
	hay := append([]string{w.logs.String()}, texts...)
	secrets := map[string]string{"vault token": vaultToken, "directory API key": dirAPIKey}
	for i, s := range w.tenant.secrets() {
		secrets[fmt.Sprintf("fault tenant secret #%d", i)] = s
	}
	for i, a := range w.auth.Assertions() {
		secrets[fmt.Sprintf("client assertion #%d", i)] = a
	}
	for i, tok := range w.auth.AccessTokens() {
		secrets[fmt.Sprintf("access token #%d", i)] = tok
	}
	for what, s := range secrets {
		for _, h := range hay {
			if strings.Contains(h, s) {
				w.t.Errorf("%s leaked into logs or responses", what)
			}
		}
	}
}

// faultDirectory is an R4 directory (API key in the Authorization
// header) that knows a fixed set of organizations and can be made to fail
// with 500s or to hang until the caller gives up.
type faultDirectory struct {
	*httptest.Server
	orgs     map[string]string // OID -> FHIR base
	mode     atomic.Value      // dirOK, dirFail or dirHang
	requests atomic.Int64
	stop     chan struct{}
}

const (
	faultDirOK   = "ok"
	faultDirFail = "500"
	faultDirHang = "hang"
)

func newFaultDirectory(t *testing.T, orgs map[string]string) *faultDirectory {
	d := &faultDirectory{orgs: orgs, stop: make(chan struct{})}
	d.mode.Store(faultDirOK)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/Organization/{oid}", func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		switch d.mode.Load() {
		case faultDirFail:
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"database unavailable"}]}`, http.StatusInternalServerError)
			return
		case faultDirHang:
			select {
			case <-r.Context().Done():
			case <-d.stop:
			}
			return
		}
		if r.Header.Get("Authorization") != "api-key "+dirAPIKey {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		oid := r.PathValue("oid")
		base, ok := d.orgs[oid]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		doc := strings.ReplaceAll(r4Organization, cernerOID, oid)
		if oid != cernerOID {
			doc = strings.ReplaceAll(doc, "Cerner Connectathon", "Fault Clinic")
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, strings.ReplaceAll(doc, "{{FHIR_BASE}}", base))
	})
	d.Server = httptest.NewServer(mux)
	t.Cleanup(d.Close)
	t.Cleanup(func() { close(d.stop) }) // runs first: hanging handlers return
	return d
}

func (d *faultDirectory) setMode(m string) { d.mode.Store(m) }

// faultTenant is an organization's FHIR server with its own token
// endpoint, both of which can misbehave. Its CapabilityStatement
// advertises the token endpoint as carequality-token; the token endpoint
// issues random opaque tokens that the FHIR server alone accepts.
//
// Token modes: faultTokOK, faultTokSlow (answers after tokenDelay),
// faultTokOAuth500 (500 with an RFC 6749 error body and an X-Request-Id),
// faultTokPlain503 (503 with a text body) and faultTokHang (no answer
// until the caller gives up or the test releases it).
//
// FHIR resources (GET {base}/Patient/{id}): "ok" is a Patient; "reset"
// closes the connection without an answer; "hang" never answers; "stall"
// sends the headers and half the body, then nothing until the test ends;
// "throttle" is a 429 with Retry-After: 7 and an OperationOutcome.
type faultTenant struct {
	*httptest.Server
	tokenMode  atomic.Value
	tokenDelay time.Duration
	tokenHits  atomic.Int64
	// hanging receives one value (without blocking) each time a token
	// request starts to hang.
	hanging chan struct{}
	release chan struct{} // closed by releaseHangs or at the end of the test
	once    sync.Once
	stop    chan struct{} // closed at the end of the test
	stalled atomic.Int64  // stalled responses begun
	resets  atomic.Int64

	mu         sync.Mutex
	issued     map[string]bool
	assertions []string
	requestIDs []string // X-Request-Id of every token answer
}

const (
	faultTokOK       = "ok"
	faultTokSlow     = "slow"
	faultTokOAuth500 = "oauth500"
	faultTokPlain503 = "plain503"
	faultTokHang     = "hang"

	// faultStallBodySize is the stalled Patient's declared size; half is sent.
	faultStallBodySize = 64 << 10
)

func newFaultTenant(t *testing.T) *faultTenant {
	f := &faultTenant{
		hanging:    make(chan struct{}, 1),
		release:    make(chan struct{}),
		stop:       make(chan struct{}),
		tokenDelay: 100 * time.Millisecond,
		issued:     make(map[string]bool),
	}
	f.tokenMode.Store(faultTokOK)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/metadata", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","format":["json"],
 "rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
  "extension":[{"url":"token","valueUri":"%[1]s/auth/token"},{"url":"carequality-token","valueUri":"%[1]s/auth/token"}]}]}}]}`, f.URL)
	})
	mux.HandleFunc("POST /auth/token", f.token)
	mux.HandleFunc("GET /r4/Patient/{id}", f.patient)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	t.Cleanup(func() { close(f.stop); f.releaseHangs() }) // runs first
	return f
}

func (f *faultTenant) base() string { return f.URL + "/r4" }

func (f *faultTenant) setTokenMode(m string) { f.tokenMode.Store(m) }

// releaseHangs ends every hanging token request.
func (f *faultTenant) releaseHangs() { f.once.Do(func() { close(f.release) }) }

func (f *faultTenant) token(w http.ResponseWriter, r *http.Request) {
	n := f.tokenHits.Add(1)
	_ = r.ParseForm()
	rid := fmt.Sprintf("fault-token-request-%d", n)
	f.mu.Lock()
	if a := r.PostForm.Get("client_assertion"); a != "" {
		f.assertions = append(f.assertions, a)
	}
	f.requestIDs = append(f.requestIDs, rid)
	f.mu.Unlock()
	w.Header().Set("X-Request-Id", rid)
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_assertion") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_request","error_description":"client_credentials with a client assertion only"}`)
		return
	}
	switch f.tokenMode.Load() {
	case faultTokOAuth500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"token service in maintenance","error_uri":"https://status.example.org/token"}`)
		return
	case faultTokPlain503:
		http.Error(w, "upstream connect error or disconnect/reset before headers", http.StatusServiceUnavailable)
		return
	case faultTokHang:
		select {
		case f.hanging <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case faultTokSlow:
		select {
		case <-time.After(f.tokenDelay):
		case <-r.Context().Done():
			return
		}
	}
	tok := "fault-at-" + faultRandomHex(16)
	f.mu.Lock()
	f.issued[tok] = true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":570,"scope":%q}`, tok, r.PostForm.Get("scope"))
}

func (f *faultTenant) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	return ok && f.issued[tok]
}

func (f *faultTenant) patient(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.PathValue("id")
	switch id {
	case "reset":
		f.resets.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a RST, not a FIN
		}
		conn.Close()
		return
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	case "stall":
		f.stalled.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Content-Length", fmt.Sprint(faultStallBodySize))
		w.WriteHeader(http.StatusOK)
		// A Patient's first half: its first key tells cqgate it is no
		// bulk manifest, so the header and this half go on at once.
		head := `{"resourceType":"Patient","id":"stall","text":{"div":"`
		w.Write([]byte(head + strings.Repeat(" ", faultStallBodySize/2-len(head))))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	case "throttle":
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, faultThrottledOutcome)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	fmt.Fprintf(w, `{"resourceType":"Patient","id":%q,"name":[{"family":"Fault"}]}`, id)
}

const faultThrottledOutcome = `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled","diagnostics":"too many requests for this client"}]}`

// secrets returns the client assertions the token endpoint received and
// the access tokens it issued.
func (f *faultTenant) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]string(nil), f.assertions...)
	for tok := range f.issued {
		out = append(out, tok)
	}
	return out
}

func (f *faultTenant) lastRequestID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requestIDs) == 0 {
		return ""
	}
	return f.requestIDs[len(f.requestIDs)-1]
}

func faultRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// faultOutcome is an OperationOutcome with the parts the fault tests
// look at, the upstream-oauth-error extension included.
type faultOutcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
		Details     *struct {
			Coding []struct{ System, Code string }
			Text   string
		} `json:"details"`
		Extension []struct {
			URL       string `json:"url"`
			Extension []struct {
				URL          string `json:"url"`
				ValueString  string `json:"valueString"`
				ValueCode    string `json:"valueCode"`
				ValueURI     string `json:"valueUri"`
				ValueInteger int    `json:"valueInteger"`
			} `json:"extension"`
		} `json:"extension"`
	} `json:"issue"`
}

// faultOutcomeOf decodes an OperationOutcome answer, failing the test when
// it is not one.
func faultOutcomeOf(t *testing.T, a faultAnswer) faultOutcome {
	t.Helper()
	var oo faultOutcome
	if err := json.Unmarshal(a.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome, got %s", a)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("OperationOutcome Content-Type = %q", ct)
	}
	return oo
}

// oauthFields returns the upstream-oauth-error extension's sub-extensions
// of the first issue, by url, as strings.
func (oo faultOutcome) oauthFields() map[string]string {
	out := map[string]string{}
	for _, ext := range oo.Issue[0].Extension {
		if !strings.HasSuffix(ext.URL, "/upstream-oauth-error") {
			continue
		}
		for _, sub := range ext.Extension {
			v := sub.ValueString + sub.ValueCode + sub.ValueURI
			if sub.ValueInteger != 0 {
				v = fmt.Sprint(sub.ValueInteger)
			}
			out[sub.URL] = v
		}
	}
	return out
}

// metric returns the value of an unlabelled metric from /metrics, or -1
// when it is not there.
func (w *faultWorld) metric(name string) float64 {
	w.t.Helper()
	a := w.mustCall("/metrics")
	for _, line := range strings.Split(string(a.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
