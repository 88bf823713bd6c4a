package vaulttest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// VaultVersion is what sys/health reports as the server version.
const VaultVersion = "1.20.4"

// maxRequestBody bounds what the server reads of a request body, as Vault's
// max_request_size does (much smaller here).
const maxRequestBody = 1 << 20

// Server is a fake Vault. Create it with New; it is closed by t.Cleanup.
type Server struct {
	// URL is the server's base address, e.g. "http://127.0.0.1:41234",
	// to be used as VAULT_ADDR.
	URL string

	tb        testing.TB
	token     string
	clusterID string
	srv       *httptest.Server

	down  atomic.Bool
	total atomic.Int64

	mu         sync.Mutex
	mounts     map[string]map[string]*kvSecret   // KV v2 mount -> secret path -> secret
	transits   map[string]map[string]*transitKey // transit mount -> key name -> key
	approles   map[string]map[string]*appRole    // approle auth mount -> role name -> role
	kubernetes map[string]map[string]*k8sRole    // kubernetes auth mount -> role name -> role
	tokens     map[string]*tokenEntry            // token -> entry
	denied     map[string]bool                   // path prefixes answered with 403
	perPath    map[string]int64                  // "mount/data/path" -> requests
	log        []Request
}

type kvSecret struct {
	created  time.Time
	updated  time.Time
	versions []*kvVersion // versions[i] is version i+1
}

type kvVersion struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time
	destroyed bool
}

// rootTokenTTL is the lifetime the fake reports for the token given to New.
// It never runs out during a test.
const rootTokenTTL = 768 * time.Hour

// New starts a fake Vault that accepts token and serves a KV v2 engine at
// each of mounts ("secret" if none are given). token is renewable, with a
// TTL of 768h, like a token from `vault token create`; more tokens come from
// CreateToken and the login endpoints.
func New(t testing.TB, token string, mounts ...string) *Server {
	t.Helper()
	if token == "" {
		t.Fatal("vaulttest: token must not be empty")
	}
	if len(mounts) == 0 {
		mounts = []string{"secret"}
	}
	s := &Server{
		tb:         t,
		token:      token,
		clusterID:  randomUUID(),
		mounts:     make(map[string]map[string]*kvSecret, len(mounts)),
		transits:   make(map[string]map[string]*transitKey),
		approles:   make(map[string]map[string]*appRole),
		kubernetes: make(map[string]map[string]*k8sRole),
		tokens:     make(map[string]*tokenEntry),
		denied:     make(map[string]bool),
		perPath:    make(map[string]int64),
	}
	for _, m := range mounts {
		m = strings.Trim(m, "/")
		if m == "" {
			t.Fatal("vaulttest: empty mount path")
		}
		s.mounts[m] = make(map[string]*kvSecret)
	}
	now := time.Now().UTC()
	s.tokens[token] = &tokenEntry{
		id:          token,
		accessor:    randomID(),
		policies:    []string{"cqgate", "default"},
		path:        "auth/token/create",
		displayName: "token-cqgate",
		issued:      now,
		ttl:         rootTokenTTL,
		expire:      now.Add(rootTokenTTL),
		renewable:   true,
	}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Token returns the token given to New.
func (s *Server) Token() string { return s.token }

// Client returns a vault/api client for this server, authenticated with
// the server's token. VAULT_ADDR, VAULT_AGENT_ADDR, VAULT_TOKEN and
// VAULT_NAMESPACE in the environment are overridden, and retries are off so
// that fault tests (SetDown) answer at once.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		t.Fatalf("vaulttest: api.DefaultConfig: %v", cfg.Error)
	}
	cfg.Address = s.URL
	cfg.AgentAddress = ""
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vaulttest: api.NewClient: %v", err)
	}
	c.SetToken(s.token)
	c.ClearNamespace()
	return c
}

// Put writes data as a new version of the secret at path in mount, as
// `vault kv put` would, and returns the new version number. An unknown
// mount fails the test.
func (s *Server) Put(mount, path string, data map[string]any) int {
	s.tb.Helper()
	mount, path = strings.Trim(mount, "/"), strings.Trim(path, "/")
	copied, err := jsonCopy(data)
	if err != nil {
		s.tb.Fatalf("vaulttest: Put %s/data/%s: data is not JSON: %v", mount, path, err)
	}
	s.mu.Lock()
	secrets, ok := s.mounts[mount]
	var v int
	if ok {
		v = s.putLocked(secrets, path, copied).version
	}
	s.mu.Unlock()
	if !ok {
		s.tb.Fatalf("vaulttest: Put: no KV v2 engine mounted at %q", mount)
	}
	return v
}

// SetDown makes every endpoint answer as a sealed Vault does: 503 with
// {"errors":["Vault is sealed"]}, and sys/health with sealed=true.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// SetDenied makes every request to an API path starting with prefix (given
// without "/v1/", e.g. "transit/sign/") answer 403 {"errors":["permission
// denied"]}, as a token whose policy lacks the capability would get. Login
// endpoints are not affected.
func (s *Server) SetDenied(prefix string, denied bool) {
	prefix = strings.TrimPrefix(strings.TrimPrefix(prefix, "/"), "v1/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if denied {
		s.denied[prefix] = true
	} else {
		delete(s.denied, prefix)
	}
}

// Requests returns how many requests the server has received.
func (s *Server) Requests() int64 { return s.total.Load() }

// RequestsFor returns how many requests were made to one API path, given
// with or without the "/v1/" prefix: "secret/data/app",
// "/v1/secret/data/app" and "sys/health" all work. The query string is not
// part of the path.
func (s *Server) RequestsFor(path string) int64 {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "/"), "v1/")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perPath[path]
}

// ServeHTTP implements the Vault HTTP API subset.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	s.total.Add(1)
	w := &recorder{ResponseWriter: rw, status: http.StatusOK}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")

	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	body, bodyErr := readBody(r)
	entry := Request{Method: r.Method, Path: path, Query: r.URL.RawQuery, Body: redact(body)}
	defer func() {
		entry.Status = w.status
		s.mu.Lock()
		s.log = append(s.log, entry)
		s.mu.Unlock()
	}()
	s.mu.Lock()
	s.perPath[path]++
	s.mu.Unlock()

	if path == "sys/health" {
		s.health(w, r)
		return
	}
	if s.down.Load() {
		writeErrors(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if bodyErr != nil {
		writeErrors(w, http.StatusBadRequest, bodyErr.Error())
		return
	}
	if s.login(w, r, path, body) {
		return
	}
	tok := s.authenticate(r)
	if tok == nil {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	entry.Accessor = tok.accessor
	if s.isDenied(path) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	switch {
	case path == "auth/token/lookup-self":
		s.lookupSelf(w, r, tok)
		return
	case path == "auth/token/renew-self":
		s.renewSelf(w, r, tok, body)
		return
	case strings.HasPrefix(path, "sys/mounts/"):
		s.sysMounts(w, r, strings.Trim(strings.TrimPrefix(path, "sys/mounts/"), "/"), body)
		return
	}
	mount, kind, rest, ok := s.route(path)
	if !ok {
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}
	if kind == kindTransit {
		s.transit(w, r, mount, rest, body)
		return
	}
	s.kv(w, r, mount, rest, body)
}

func (s *Server) isDenied(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.denied {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// recorder remembers the status code written, for the request log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// readBody decodes a JSON request body as Vault does (numbers kept as
// json.Number); an empty body is an empty object.
func readBody(r *http.Request) (map[string]any, error) {
	if r.Body == nil {
		return map[string]any{}, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read request body: %v", err)
	}
	if len(raw) > maxRequestBody {
		return nil, errors.New("error parsing JSON: http: request body too large")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("failed to parse JSON input: %v", err)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// envelope is Vault's response body for a successful logical request.
type envelope struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	Renewable     bool     `json:"renewable"`
	LeaseDuration int      `json:"lease_duration"`
	Data          any      `json:"data"`
	WrapInfo      any      `json:"wrap_info"`
	Warnings      []string `json:"warnings"`
	Auth          any      `json:"auth"`
	MountType     string   `json:"mount_type,omitempty"`
}

// versionMetadata is a KV v2 version's metadata as Vault renders it.
type versionMetadata struct {
	CreatedTime    string         `json:"created_time"`
	CustomMetadata map[string]any `json:"custom_metadata"`
	DeletionTime   string         `json:"deletion_time"`
	Destroyed      bool           `json:"destroyed"`
	Version        int            `json:"version"`
}

type kvReadData struct {
	Data     map[string]any  `json:"data"`
	Metadata versionMetadata `json:"metadata"`
}

const invalidKVPathWarning = "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."

func (s *Server) kv(w http.ResponseWriter, r *http.Request, mount, rest string, body map[string]any) {
	switch {
	case strings.HasPrefix(rest, "data/"):
		secretPath := strings.Trim(strings.TrimPrefix(rest, "data/"), "/")
		switch r.Method {
		case http.MethodGet:
			s.read(w, r, mount, secretPath)
		case http.MethodPut, http.MethodPost:
			s.write(w, mount, secretPath, body)
		case http.MethodDelete:
			s.softDelete(w, mount, secretPath)
		default:
			writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		}
	case strings.HasPrefix(rest, "metadata/"):
		secretPath := strings.Trim(strings.TrimPrefix(rest, "metadata/"), "/")
		switch r.Method {
		case http.MethodGet:
			s.readMetadata(w, mount, secretPath)
		case http.MethodDelete:
			s.deleteMetadata(w, mount, secretPath)
		default:
			writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		}
	default:
		// What Vault answers to a KV v1 style path on a v2 mount.
		writeJSON(w, http.StatusNotFound, envelope{RequestID: randomUUID(), Warnings: []string{invalidKVPathWarning}})
	}
}

// Kinds of mounts, as route reports them.
const (
	kindKV      = "kv"
	kindTransit = "transit"
)

// route finds the secrets engine mount serving path, the longest one that
// prefixes it.
func (s *Server) route(path string) (mount, kind, rest string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	consider := func(m, k string) {
		if r, found := strings.CutPrefix(path, m+"/"); found && len(m) > len(mount) {
			mount, kind, rest, ok = m, k, r, true
		}
	}
	for m := range s.mounts {
		consider(m, kindKV)
	}
	for m := range s.transits {
		consider(m, kindTransit)
	}
	return mount, kind, rest, ok
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, mount, path string) {
	want := 0
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			writeErrors(w, http.StatusBadRequest, fmt.Sprintf("error parsing version: %q is not a valid version", q))
			return
		}
		want = n
	}
	s.mu.Lock()
	sec := s.mounts[mount][path]
	var (
		body   kvReadData
		found  bool
		hidden bool
	)
	if sec != nil && len(sec.versions) > 0 {
		if want == 0 {
			want = len(sec.versions)
		}
		if want <= len(sec.versions) {
			v := sec.versions[want-1]
			found = true
			hidden = v.destroyed || !v.deleted.IsZero()
			body.Metadata = v.metadata(want)
			if !hidden {
				body.Data, _ = jsonCopy(v.data)
			}
		}
	}
	s.mu.Unlock()

	switch {
	case !found:
		writeErrors(w, http.StatusNotFound)
	case hidden:
		// Vault answers 404 but still shows the version's metadata, with
		// "data": null.
		writeJSON(w, http.StatusNotFound, s.kvEnvelope(body))
	default:
		writeJSON(w, http.StatusOK, s.kvEnvelope(body))
	}
}

func (s *Server) write(w http.ResponseWriter, mount, path string, body map[string]any) {
	if path == "" {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	var req struct {
		Data    map[string]any
		Options map[string]any
	}
	req.Data, _ = body["data"].(map[string]any)
	req.Options, _ = body["options"].(map[string]any)
	if req.Data == nil {
		writeErrors(w, http.StatusBadRequest, "no data provided")
		return
	}
	s.mu.Lock()
	if s.mounts[mount] == nil { // disabled meanwhile
		s.mu.Unlock()
		writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", mount+"/data/"+path))
		return
	}
	sec := s.mounts[mount][path]
	if raw, ok := req.Options["cas"]; ok {
		cas, err := strconv.Atoi(fmt.Sprint(raw))
		current := 0
		if sec != nil {
			current = len(sec.versions)
		}
		if err != nil || cas != current {
			s.mu.Unlock()
			writeErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
			return
		}
	}
	v := s.putLocked(s.mounts[mount], path, req.Data)
	meta := v.kvVersion.metadata(v.version)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.kvEnvelope(meta))
}

type putResult struct {
	*kvVersion
	version int
}

func (s *Server) putLocked(secrets map[string]*kvSecret, path string, data map[string]any) putResult {
	now := time.Now().UTC()
	sec := secrets[path]
	if sec == nil {
		sec = &kvSecret{created: now}
		secrets[path] = sec
	}
	sec.updated = now
	v := &kvVersion{data: data, created: now}
	sec.versions = append(sec.versions, v)
	return putResult{kvVersion: v, version: len(sec.versions)}
}

// softDelete is DELETE /:mount/data/:path: the latest version is marked
// deleted and reads of it answer 404 with metadata.
func (s *Server) softDelete(w http.ResponseWriter, mount, path string) {
	s.mu.Lock()
	if sec := s.mounts[mount][path]; sec != nil && len(sec.versions) > 0 {
		if v := sec.versions[len(sec.versions)-1]; v.deleted.IsZero() {
			v.deleted = time.Now().UTC()
			sec.updated = v.deleted
		}
	}
	s.mu.Unlock()
	noContent(w)
}

// deleteMetadata is DELETE /:mount/metadata/:path: every version and the
// metadata are removed.
func (s *Server) deleteMetadata(w http.ResponseWriter, mount, path string) {
	s.mu.Lock()
	delete(s.mounts[mount], path)
	s.mu.Unlock()
	noContent(w)
}

type secretMetadata struct {
	CASRequired        bool                       `json:"cas_required"`
	CreatedTime        string                     `json:"created_time"`
	CurrentVersion     int                        `json:"current_version"`
	CustomMetadata     map[string]any             `json:"custom_metadata"`
	DeleteVersionAfter string                     `json:"delete_version_after"`
	MaxVersions        int                        `json:"max_versions"`
	OldestVersion      int                        `json:"oldest_version"`
	UpdatedTime        string                     `json:"updated_time"`
	Versions           map[string]versionMetadata `json:"versions"`
}

func (s *Server) readMetadata(w http.ResponseWriter, mount, path string) {
	s.mu.Lock()
	sec := s.mounts[mount][path]
	if sec == nil {
		s.mu.Unlock()
		writeErrors(w, http.StatusNotFound)
		return
	}
	md := secretMetadata{
		CreatedTime:        sec.created.Format(time.RFC3339Nano),
		CurrentVersion:     len(sec.versions),
		DeleteVersionAfter: "0s",
		UpdatedTime:        sec.updated.Format(time.RFC3339Nano),
		Versions:           make(map[string]versionMetadata, len(sec.versions)),
	}
	if len(sec.versions) > 0 {
		md.OldestVersion = 1
	}
	for i, v := range sec.versions {
		vm := v.metadata(i + 1)
		vm.CustomMetadata = nil
		md.Versions[strconv.Itoa(i+1)] = vm
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.kvEnvelope(md))
}

func (v *kvVersion) metadata(n int) versionMetadata {
	m := versionMetadata{
		CreatedTime: v.created.Format(time.RFC3339Nano),
		Destroyed:   v.destroyed,
		Version:     n,
	}
	if !v.deleted.IsZero() {
		m.DeletionTime = v.deleted.Format(time.RFC3339Nano)
	}
	return m
}

func (s *Server) kvEnvelope(data any) envelope {
	return envelope{RequestID: randomUUID(), Data: data, MountType: "kv"}
}

// healthResponse is the documented sys/health body.
type healthResponse struct {
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	ServerTimeUTC              int64  `json:"server_time_utc"`
	Version                    string `json:"version"`
	Enterprise                 bool   `json:"enterprise"`
	ClusterName                string `json:"cluster_name,omitempty"`
	ClusterID                  string `json:"cluster_id,omitempty"`
	EchoDurationMillis         int64  `json:"echo_duration_ms"`
	ClockSkewMillis            int64  `json:"clock_skew_ms"`
	ReplicationPrimaryCanary   int64  `json:"replication_primary_canary_age_ms"`
}

// health is GET/HEAD /sys/health. It needs no token. The status code is 200
// when unsealed and 503 when sealed (SetDown), or the activecode and
// sealedcode query parameters when given, as in Vault.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeErrors(w, http.StatusMethodNotAllowed, "1 error occurred:\n\t* unsupported operation\n\n")
		return
	}
	sealed := s.down.Load()
	body := healthResponse{
		Initialized:                true,
		Sealed:                     sealed,
		ReplicationPerformanceMode: "disabled",
		ReplicationDRMode:          "disabled",
		ServerTimeUTC:              time.Now().Unix(),
		Version:                    VaultVersion,
	}
	code, param := http.StatusOK, "activecode"
	if sealed {
		code, param = http.StatusServiceUnavailable, "sealedcode"
		body.Standby = true
	} else {
		body.ClusterName = "vault-cluster-vaulttest"
		body.ClusterID = s.clusterID
	}
	if q := r.URL.Query().Get(param); q != "" {
		if n, err := strconv.Atoi(q); err == nil && n >= 100 && n <= 999 {
			code = n
		}
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, body)
}

// noContent is Vault's empty 204 answer: no body, so no Content-Type.
func noContent(w http.ResponseWriter) {
	w.Header().Del("Content-Type")
	w.WriteHeader(http.StatusNoContent)
}

func writeErrors(w http.ResponseWriter, code int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, code, struct {
		Errors []string `json:"errors"`
	}{errs})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "{\"errors\":[%q]}\n", err.Error())
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// jsonCopy deep-copies data through JSON, so stored secrets hold exactly
// what a JSON client would see.
func jsonCopy(data map[string]any) (map[string]any, error) {
	if data == nil {
		return nil, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [24]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// Paths lists the secret paths stored in mount, sorted; for assertions.
func (s *Server) Paths(mount string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.mounts[strings.Trim(mount, "/")] {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
