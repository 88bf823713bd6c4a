package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/fositetest"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

func init() { gin.SetMode(gin.ReleaseMode) }

const (
	cernerOID  = "2.16.840.1.113883.3.13.1"
	tenantGUID = "0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca"
	clientID   = "gateway.example.org"
	// Read and write: the body tests create resources, and cqgate
	// refuses a request the granted scope does not cover.
	scope       = "system/Patient.*"
	vaultToken  = "hvs.e2e-root-token"
	dirAPIKey   = "dir-api-key-e2e-S3CRET"
	secretPath  = "cqgate/carequality"
	patientJSON = `{"resourceType":"Patient","id":"1316024","name":[{"family":"Peters","given":["Timothy"]}]}`
)

// world is every party of the flow, each a real HTTP server on loopback.
type world struct {
	t       *testing.T
	auth    *fositetest.Server
	fhir    *fhirServer
	dir     *directoryServer
	gateway *httptest.Server
	gw      *gateway.Gateway
	logs    *syncBuffer
	keyPEM  []byte
}

type worldOptions struct {
	flavor string // "r4" or "stu3"
	// tune adjusts the configuration before the gateway is built.
	tune func(*config.Config, *world)
}

func newWorld(t *testing.T, opts worldOptions) *world {
	t.Helper()
	w := &world{t: t, logs: &syncBuffer{}}

	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: clientID, DNSNames: []string{clientID}})
	if err != nil {
		t.Fatal(err)
	}
	w.keyPEM = keyPEM
	material, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	vault := storeKey(t, map[string]any{"certificate": string(certPEM), "private_key": string(keyPEM)})

	w.auth = fositetest.New(t, fositetest.Config{Clients: []fositetest.Client{{
		ID: clientID, PublicKey: material.Chain[0].PublicKey, KeyID: material.KeyID, Algorithm: "RS384",
		Scopes: []string{"system/Patient.*", "system/Observation.read"},
	}}})
	w.fhir = newFHIRServer(t, w.auth)
	w.dir = newDirectoryServer(t, w.fhir.base())

	cfg := config.Default()
	cfg.LogLevel = "debug"
	cfg.Directory.Flavor = opts.flavor
	cfg.Directory.URL = w.dir.URL + map[string]string{"r4": "/fhir", "stu3": "/fhir-stu3/1.0.1"}[opts.flavor]
	cfg.Directory.APIKey = dirAPIKey
	cfg.Keys.Source = "vault"
	cfg.Vault.Address = vault.addr
	cfg.Vault.Auth.Token = vault.token
	cfg.Keys.Vault.Mount = vault.mount
	cfg.Keys.Vault.Path = vault.path
	cfg.Client.ClientID = clientID
	cfg.Client.Scope = scope
	cfg.Proxy.Timeout = 5 * time.Second
	cfg.Audit.Destination = "none"
	// The test servers are on loopback, as a sandbox is, and separate
	// loopback origins: fosite is allowed to issue the tenant's tokens.
	cfg.Organizations = map[string]config.Organization{cernerOID: {AllowPrivateAddresses: true, AllowedTokenOrigins: []string{w.auth.URL}}}
	// The tests write too; with no callers the anonymous caller would be
	// read-only.
	cfg.Inbound.Callers = map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, Methods: []string{"*"}}}
	if opts.tune != nil {
		opts.tune(cfg, w)
	}
	w.start(cfg, gateway.Options{}, 5*time.Second)
	return w
}

// start builds the gateway from cfg with debug JSON logs into w.logs,
// waits up to wait for its signing key (not at all when wait is 0) and
// serves it on loopback.
func (w *world) start(cfg *config.Config, opts gateway.Options, wait time.Duration) {
	t := w.t
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(w.logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(logrus.DebugLevel)
	opts.Logger = log
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var err error
	if w.gw, err = gateway.New(ctx, cfg, opts); err != nil {
		t.Fatal(err)
	}
	if wait > 0 {
		wctx, wcancel := context.WithTimeout(ctx, wait)
		defer wcancel()
		if err := w.gw.WaitReady(wctx); err != nil {
			t.Fatalf("gateway never loaded its key: %v\nlogs:\n%s", err, w.logs)
		}
	}
	w.gateway = httptest.NewServer(w.gw.Handler)
	t.Cleanup(w.gateway.Close)
}

// get sends a request through the gateway.
func (w *world) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, w.gateway.URL+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp, b
}

// assertNoSecrets checks that no private key, access token, client
// assertion, Vault token or directory API key appears in the captured logs
// or in any of the extra texts (response bodies, headers).
func (w *world) assertNoSecrets(extra ...string) {
	w.t.Helper()
	hay := append([]string{w.logs.String()}, extra...)
	secrets := map[string]string{"vault token": vaultToken, "directory API key": dirAPIKey}
	if tok := os.Getenv("VAULT_TOKEN"); tok != "" {
		secrets["real vault token"] = tok
	}
	for i, a := range w.auth.Assertions() {
		secrets[fmt.Sprintf("client assertion #%d", i)] = a
		if parts := strings.Split(a, "."); len(parts) == 3 {
			secrets[fmt.Sprintf("client assertion #%d signature", i)] = parts[2]
		}
	}
	for i, tok := range w.auth.AccessTokens() {
		secrets[fmt.Sprintf("access token #%d", i)] = tok
	}
	for _, line := range strings.Split(string(w.keyPEM), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "-----") {
			secrets["private key line"] = line
		}
	}
	if len(w.auth.Assertions()) == 0 || len(w.auth.AccessTokens()) == 0 {
		w.t.Fatal("leak check needs at least one assertion and one token to look for")
	}
	for what, s := range secrets {
		for _, h := range hay {
			if strings.Contains(h, s) {
				w.t.Errorf("%s leaked into logs or responses", what)
			}
		}
	}
}

// vaultSecret says where storeKey put the key.
type vaultSecret struct{ addr, token, mount, path string }

// storeKey writes the signing key where cqgate will read it: to a real
// Vault when VAULT_ADDR and VAULT_TOKEN are set (KV v2 mount VAULT_KV_MOUNT,
// default "secret"; a random path under cqgate-test/, deleted afterwards),
// otherwise to a test server that answers as Vault's KV v2 API does.
func storeKey(t *testing.T, data map[string]any) vaultSecret {
	t.Helper()
	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		v := vaulttest.New(t, vaultToken)
		v.Put("secret", secretPath, data)
		return vaultSecret{addr: v.URL, token: vaultToken, mount: "secret", path: secretPath}
	}
	mount := os.Getenv("VAULT_KV_MOUNT")
	if mount == "" {
		mount = "secret"
	}
	client, err := vault.New(vault.Config{Address: addr, Auth: vault.AuthConfig{Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("cqgate-test/e2e-%d", time.Now().UnixNano())
	kv := client.API().KVv2(mount)
	if _, err := kv.Put(context.Background(), path, data); err != nil {
		t.Fatalf("writing the test key to the real Vault at %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = kv.DeleteMetadata(context.Background(), path) })
	return vaultSecret{addr: addr, token: token, mount: mount, path: path}
}

// fhirServer is a FHIR server whose CapabilityStatement advertises both a
// plain token URL (which must never be used) and Cerner's
// carequality-token URL (fosite's token endpoint). It accepts only tokens
// fosite issued.
type fhirServer struct {
	*httptest.Server
	auth           *fositetest.Server
	metadataCalls  atomic.Int64
	plainTokenHits atomic.Int64
	mu             sync.Mutex
	requests       []fhirRequest
}

type fhirRequest struct {
	Method, Path, Query, Accept, Cookie, RequestID string
	Body                                           []byte
	Authorized                                     bool
}

func newFHIRServer(t *testing.T, auth *fositetest.Server) *fhirServer {
	f := &fhirServer{auth: auth}
	mux := http.NewServeMux()
	prefix := "/beta/" + tenantGUID
	mux.HandleFunc("GET "+prefix+"/metadata", f.metadata)
	mux.HandleFunc("POST /tenants/"+tenantGUID+"/protocols/oauth2/profiles/smart-v1/token", func(w http.ResponseWriter, r *http.Request) {
		f.plainTokenHits.Add(1)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
	})
	mux.HandleFunc(prefix+"/", f.resource)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fhirServer) base() string { return f.URL + "/beta/" + tenantGUID }

func (f *fhirServer) metadata(w http.ResponseWriter, r *http.Request) {
	f.metadataCalls.Add(1)
	w.Header().Set("Content-Type", "application/fhir+json")
	fmt.Fprintf(w, `{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","format":["json"],
 "rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
  "extension":[{"url":"token","valueUri":"%s/tenants/%s/protocols/oauth2/profiles/smart-v1/token"},
               {"url":"authorize","valueUri":"%s/tenants/%s/protocols/oauth2/profiles/smart-v1/personas/provider/authorize"},
               {"url":"carequality-token","valueUri":"%s"}]}]}}]}`, f.URL, tenantGUID, f.URL, tenantGUID, f.auth.TokenURL)
}

func (f *fhirServer) resource(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ok := f.auth.ValidateRequest(r) == nil
	f.mu.Lock()
	f.requests = append(f.requests, fhirRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"), r.Header.Get("Cookie"), r.Header.Get("X-Request-Id"), body, ok})
	f.mu.Unlock()
	w.Header().Set("X-Request-Id", "fhir-"+r.Header.Get("X-Request-Id"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "json") {
		w.WriteHeader(http.StatusNotAcceptable)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Patient/1316024"):
		io.WriteString(w, patientJSON)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Patient"):
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"resourceType": "Patient", "id": "new", "received_bytes": len(body)})
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	}
}

func (f *fhirServer) seen() []fhirRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fhirRequest(nil), f.requests...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
