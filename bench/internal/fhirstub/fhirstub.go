package fhirstub

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// Defaults for Config's zero values.
const (
	DefaultOIDPrefix    = "2.999.7."
	DefaultPatientBytes = 2048
	// DefaultTokenLifetime is the expires_in of issued access tokens.
	DefaultTokenLifetime = time.Hour
	// maxFormBytes bounds a token request body.
	maxFormBytes = 64 << 10
	// clientAssertionType is RFC 7523's client_assertion_type.
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// fhirJSON is the FHIR JSON media type.
	fhirJSON = "application/fhir+json"
)

// Config configures a Server.
type Config struct {
	// OIDPrefix: organizations whose OID starts with it exist; others are
	// 404. DefaultOIDPrefix when empty.
	OIDPrefix string
	// APIKey, when set, must come with every directory request as
	// "Authorization: api-key <key>" (or the _apiKey query parameter).
	APIKey string
	// Delay is added to every directory, metadata and token answer, to
	// stand for a remote service's latency. The Patient read has none.
	Delay time.Duration
	// PatientBytes is the approximate size of a Patient answer;
	// DefaultPatientBytes when zero.
	PatientBytes int
	// TokenLifetime is the expires_in of issued access tokens; a Patient
	// read with a token past it is refused (401) and counted in
	// Stats.PatientExpired. DefaultTokenLifetime when zero.
	TokenLifetime time.Duration
	// Faults injects failures into Patient reads (none when zero).
	Faults Faults
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// FHIRHosts, when set, spreads the organizations' FHIR servers over
	// these loopback host:port addresses (each serving this Server): the
	// directory gives organization 2.999.7.n the base on FHIRHosts[n mod
	// len], so that a proxy sees that many distinct partner hosts. When
	// empty, every base is on the host the directory was asked on.
	FHIRHosts []string
}

// Server serves the stub's routes. It is safe for concurrent use.
type Server struct {
	cfg        Config
	mux        *http.ServeMux
	clock      func() time.Time
	tokens     sync.Map // access token → *issued
	issuedN    atomic.Int64
	pre        []byte // Patient JSON up to the id
	post       []byte // Patient JSON after the id
	patOK      atomic.Int64
	pat401     atomic.Int64
	patExpired atomic.Int64
	patBad     atomic.Int64
	dir401     atomic.Int64
	mu         sync.Mutex
	counted    map[string]map[string]int64 // kind → OID → count
	faults     *faultState                 // nil when no fault is configured
}

// issued is what the stub remembers of an access token.
type issued struct {
	oid             string
	issued, expires time.Time
	refused         atomic.Bool // a 401 was injected for it
}

var _ http.Handler = (*Server)(nil)

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.OIDPrefix == "" {
		cfg.OIDPrefix = DefaultOIDPrefix
	}
	if cfg.PatientBytes <= 0 {
		cfg.PatientBytes = DefaultPatientBytes
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	s := &Server{cfg: cfg, clock: cfg.Clock, counted: make(map[string]map[string]int64)}
	if s.clock == nil {
		s.clock = time.Now
	}
	if cfg.Faults.enabled() {
		s.faults = newFaultState(cfg.Faults)
	}
	s.pre, s.post = patientTemplate(cfg.PatientBytes)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /directory/Organization/{oid}", s.directory)
	mux.HandleFunc("GET /o/{oid}/fhir/metadata", s.metadata)
	mux.HandleFunc("POST /o/{oid}/token", s.token)
	mux.HandleFunc("GET /o/{oid}/fhir/Patient/{id}", s.patient)
	mux.HandleFunc("/o/{oid}/", s.other)
	mux.HandleFunc("GET /_stats", s.stats)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, "not-found", "no such route")
	})
	s.mux = mux
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Stats are the stub's counters since it started.
type Stats struct {
	// Directory, Metadata and Token count requests per OID, whatever
	// their outcome.
	Directory map[string]int64 `json:"directory"`
	Metadata  map[string]int64 `json:"metadata"`
	Token     map[string]int64 `json:"token"`
	// Other counts any other request under /o/{oid}/, such as discovery
	// probes of /.well-known/udap or /.well-known/smart-configuration.
	Other map[string]int64 `json:"other"`
	// PatientOK counts Patient reads answered 200, PatientUnauthorized
	// those refused for a missing or wrong bearer token, PatientBad
	// those with a malformed id.
	PatientOK           int64 `json:"patient_ok"`
	PatientUnauthorized int64 `json:"patient_unauthorized"`
	PatientBad          int64 `json:"patient_bad"`
	// DirectoryUnauthorized counts directory requests without the API key.
	DirectoryUnauthorized int64 `json:"directory_unauthorized"`
	// PatientExpired counts Patient reads refused because their token had
	// expired (also counted in PatientUnauthorized). A client that
	// refreshes its tokens in time never causes one.
	PatientExpired int64 `json:"patient_expired"`
	// Injected counts the failures injected by Config.Faults.
	Injected InjectedCounts `json:"injected"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		PatientOK:             s.patOK.Load(),
		PatientUnauthorized:   s.pat401.Load(),
		PatientBad:            s.patBad.Load(),
		DirectoryUnauthorized: s.dir401.Load(),
		PatientExpired:        s.patExpired.Load(),
	}
	if f := s.faults; f != nil {
		st.Injected = f.counts()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := func(kind string) map[string]int64 {
		m := make(map[string]int64, len(s.counted[kind]))
		for k, v := range s.counted[kind] {
			m[k] = v
		}
		return m
	}
	st.Directory, st.Metadata, st.Token, st.Other = cp("directory"), cp("metadata"), cp("token"), cp("other")
	return st
}

func (s *Server) count(kind, oid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.counted[kind]
	if m == nil {
		m = make(map[string]int64)
		s.counted[kind] = m
	}
	m[oid]++
}

var oidPattern = regexp.MustCompile(`^[0-2](\.(0|[1-9][0-9]*))+$`)

// known reports whether oid names an organization the stub serves.
func (s *Server) known(oid string) bool {
	return len(oid) <= 128 && oidPattern.MatchString(oid) && strings.HasPrefix(oid, s.cfg.OIDPrefix)
}

// wait sleeps Config.Delay, or less if the request ends first.
func (s *Server) wait(r *http.Request) bool {
	if s.cfg.Delay <= 0 {
		return true
	}
	t := time.NewTimer(s.cfg.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// selfBase returns http://{host} for links to the stub itself; the host
// must be loopback, so a stray Host header cannot point links elsewhere.
func selfBase(r *http.Request) (string, error) {
	if err := loopback.CheckAddr(r.Host); err != nil {
		return "", err
	}
	return "http://" + r.Host, nil
}

// fhirBase returns http://{host} for oid's FHIR server: one of
// Config.FHIRHosts, chosen by the OID's last arc (by its bytes when it is
// not a number), or the host asked (selfBase). Like selfBase, it refuses
// a host that is not loopback.
func (s *Server) fhirBase(r *http.Request, oid string) (string, error) {
	n := len(s.cfg.FHIRHosts)
	if n == 0 {
		return selfBase(r)
	}
	last := oid[strings.LastIndexByte(oid, '.')+1:]
	i, err := strconv.ParseUint(last, 10, 64)
	if err != nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(oid))
		i = h.Sum64()
	}
	host := s.cfg.FHIRHosts[i%uint64(n)]
	if err := loopback.CheckAddr(host); err != nil {
		return "", err
	}
	return "http://" + host, nil
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	oid := strings.TrimPrefix(r.PathValue("oid"), "urn:oid:")
	s.count("directory", oid)
	if s.cfg.APIKey != "" && !s.hasAPIKey(r) {
		s.dir401.Add(1)
		writeOutcome(w, http.StatusUnauthorized, "login", "directory API key missing or wrong")
		return
	}
	if !s.wait(r) {
		return
	}
	if !s.known(oid) {
		writeOutcome(w, http.StatusNotFound, "not-found", "no organization "+oid)
		return
	}
	base, err := s.fhirBase(r, oid)
	if err != nil {
		writeOutcome(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, fhirJSON, organization(oid, base+"/o/"+oid+"/fhir"))
}

func (s *Server) hasAPIKey(r *http.Request) bool {
	want := []byte(s.cfg.APIKey)
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "api-key "); ok {
		return subtle.ConstantTimeCompare([]byte(got), want) == 1
	}
	if got := r.URL.Query().Get("_apiKey"); got != "" {
		return subtle.ConstantTimeCompare([]byte(got), want) == 1
	}
	return false
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	s.count("metadata", oid)
	if !s.wait(r) {
		return
	}
	if !s.known(oid) {
		writeOutcome(w, http.StatusNotFound, "not-found", "no organization "+oid)
		return
	}
	base, err := selfBase(r)
	if err != nil {
		writeOutcome(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, fhirJSON, capabilityStatement(base+"/o/"+oid+"/token"))
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	oid := r.PathValue("oid")
	s.count("token", oid)
	if !s.wait(r) {
		return
	}
	if !s.known(oid) {
		writeOAuthError(w, http.StatusNotFound, "invalid_request", "no token endpoint here")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	case r.PostForm.Get("client_assertion_type") != clientAssertionType:
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "client_assertion_type must be "+clientAssertionType)
		return
	}
	base, err := selfBase(r)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "host is not loopback")
		return
	}
	if err := checkAssertion(r.PostForm.Get("client_assertion"), base+r.URL.Path); err != nil {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	tok, err := randomToken()
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "no randomness")
		return
	}
	now := s.clock()
	s.tokens.Store(tok, &issued{oid: oid, issued: now, expires: now.Add(s.cfg.TokenLifetime)})
	if f := s.faults; f != nil {
		f.newest(oid, tok)
	}
	if s.issuedN.Add(1)%64 == 0 {
		s.sweepTokens(now)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, "application/json", map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   max(int64(s.cfg.TokenLifetime/time.Second), 1),
		"scope":        r.PostForm.Get("scope"),
	})
}

// checkAssertion checks that a is a three-part JWT whose payload names
// aud as its audience and has an issuer. The signature is not verified.
func checkAssertion(a, aud string) error {
	parts := strings.Split(a, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return fmt.Errorf("client_assertion is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("client_assertion payload is not base64url")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("client_assertion payload is not JSON")
	}
	if claims.Iss == "" {
		return fmt.Errorf("client_assertion has no iss")
	}
	var one string
	var many []string
	switch {
	case json.Unmarshal(claims.Aud, &one) == nil && one == aud:
	case json.Unmarshal(claims.Aud, &many) == nil && containsString(many, aud):
	default:
		return fmt.Errorf("client_assertion aud is not %s", aud)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

var fhirIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// sweepTokens forgets tokens that expired more than a minute ago.
func (s *Server) sweepTokens(now time.Time) {
	s.tokens.Range(func(k, v any) bool {
		if now.Sub(v.(*issued).expires) > time.Minute {
			s.tokens.Delete(k)
		}
		return true
	})
}

// patient is the hot path: check the bearer token, write the Patient.
func (s *Server) patient(w http.ResponseWriter, r *http.Request) {
	oid, id := r.PathValue("oid"), r.PathValue("id")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var it *issued
	if ok {
		v, found := s.tokens.Load(tok)
		if found {
			it = v.(*issued)
		}
		ok = found && it.oid == oid
	}
	if !ok {
		s.pat401.Add(1)
		s.faults.record(r, Attempt{Outcome: OutcomeUnknownToken, OID: oid, At: s.clock()})
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeOutcome(w, http.StatusUnauthorized, "login", "bearer token missing, unknown or for another organization")
		return
	}
	now := s.clock()
	if !now.Before(it.expires) {
		s.pat401.Add(1)
		s.patExpired.Add(1)
		s.faults.record(r, Attempt{Outcome: OutcomeExpiredToken, OID: oid, At: now})
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="expired"`)
		writeOutcome(w, http.StatusUnauthorized, "login", "bearer token expired")
		return
	}
	if !fhirIDPattern.MatchString(id) {
		s.patBad.Add(1)
		writeOutcome(w, http.StatusBadRequest, "invalid", "malformed resource id")
		return
	}
	if s.faults != nil && s.faults.inject(w, r, oid, tok, it, now) {
		return
	}
	s.patOK.Add(1)
	h := w.Header()
	h["Content-Type"] = []string{fhirJSON}
	h["Content-Length"] = []string{fmt.Sprint(len(s.pre) + len(id) + len(s.post))}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(s.pre)
	_, _ = w.Write([]byte(id))
	_, _ = w.Write(s.post)
}

func (s *Server) other(w http.ResponseWriter, r *http.Request) {
	s.count("other", r.PathValue("oid"))
	writeOutcome(w, http.StatusNotFound, "not-found", "no such route")
}

func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, "application/json", s.Stats())
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, fhirJSON, map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}},
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, "application/json", map[string]string{"error": code, "error_description": desc})
}

// patientTemplate returns a Patient resource of about size bytes, split
// around its id.
func patientTemplate(size int) (pre, post []byte) {
	const marker = "PATIENT-ID-MARKER"
	p := patientResource(marker, "")
	b, _ := json.Marshal(p)
	if pad := size - len(b) - 4; pad > 0 { // ~4 bytes for a typical id
		p = patientResource(marker, strings.Repeat("x", pad))
		b, _ = json.Marshal(p)
	}
	i := bytes.Index(b, []byte(marker))
	return b[:i], b[i+len(marker):]
}
