package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
	"github.com/cqgate/cqgate/keys"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// childConfig, set in the environment, makes the test binary run cqgate's
// main with -config and its value: a child process the tests can send
// real signals to (startChild).
const childConfig = "CQGATE_TEST_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childConfig); cfg != "" {
		os.Args = []string{"cqgate", "-config", cfg}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is cqgate running in a process of its own.
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
}

// startChild runs cqgate on the configuration file cfgFile in a child
// process, killed at the end of the test if still running.
func startChild(t *testing.T, cfgFile string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, "-test.run=^$"), stderr: &syncBuffer{}, exited: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), childConfig+"="+cfgFile)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill() })
	return c
}

func (c *child) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until cond holds, failing the test if the child exits or
// 20 s pass first.
func (c *child) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-c.exited:
			c.exited <- err
			t.Fatalf("cqgate exited (%v) before %s:\n%s", err, what, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out:\n%s", what, c.stderr.String())
		}
	}
}

// logged waits for a log line with msg.
func (c *child) logged(t *testing.T, msg string) {
	t.Helper()
	c.waitFor(t, "log "+msg, func() bool { return strings.Contains(c.stderr.String(), `"msg":"`+msg) })
}

// exitsZero waits for the child to exit and checks it exited 0.
func (c *child) exitsZero(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.exited:
		if err != nil {
			t.Errorf("cqgate exited with %v, want exit 0:\n%s", err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cqgate did not exit")
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// signingFiles writes a self-signed certificate and key into dir and
// returns their paths.
func signingFiles(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeFile(t, cert, string(certPEM))
	writeFile(t, key, string(keyPEM))
	return cert, key
}

// partner is a FHIR server with a token endpoint; slow, when not nil,
// is told of each FHIR request and answers once it is closed.
func partner(t *testing.T, forwarded chan<- struct{}, slow <-chan struct{}) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"tok","token_type":"Bearer","expires_in":600,"scope":"system/*.read"}`)
			return
		}
		if forwarded != nil {
			forwarded <- struct{}{}
			select {
			case <-slow:
			case <-r.Context().Done(): // cqgate is gone
				return
			}
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
	}))
	t.Cleanup(up.Close)
	return up
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

func noEnv(string) (string, bool) { return "", false }

// TestDevMode runs what the README tells a newcomer to run, sends the
// README's first curl through it, and stops it as SIGTERM would.
func TestDevMode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-dev", "-listen", "127.0.0.1:0"}, &stdout, &stderr, noEnv) }()

	addr := regexp.MustCompile(`dev mode on http://(\S+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stdout.String()); m != nil {
			base = "http://" + m[1]
		}
	}
	if base == "" {
		t.Fatalf("dev mode did not start:\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}

	for _, path := range []string{"/fhir/" + sandbox.OID + "/Patient/1316024", "/fhir/urn:oid:" + sandbox.OID + "/Patient?name=peters", "/readyz"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Accept", "*/*") // what curl sends
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s\nstderr: %s", path, resp.StatusCode, body, stderr.String())
		}
		if strings.HasPrefix(path, "/fhir/") && !strings.Contains(string(body), "Peters") {
			t.Errorf("GET %s: no Patient Peters in %s", path, body)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev mode did not stop")
	}
	if !strings.Contains(stderr.String(), `"level":"info"`) {
		t.Errorf("logs are not logrus JSON: %s", stderr.String())
	}
}

func TestCheckConfig(t *testing.T) {
	// The Vault login is read from the environment too: none here.
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("VAULT_TOKEN", "")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		wantOut string
	}{
		{"example needs its REQUIRED keys", []string{"-config", "../../config.example.yaml", "-check"}, nil, "client.client_id", ""},
		{"example with the required keys from the environment", []string{"-config", "../../config.example.yaml", "-check"}, map[string]string{
			"CQGATE_DIRECTORY_URL": "https://directory.prod.carequality.org/fhir", "CQGATE_KEYS_VAULT_PATH": "cqgate/carequality",
			"CQGATE_CLIENT_CLIENT_ID": "gateway.example.org",
			// The keys are in Vault: its address and a login.
			"CQGATE_VAULT_ADDRESS": "https://vault.example.org:8200", "CQGATE_VAULT_AUTH_TOKEN": "hvs.example",
		}, "", "configuration is valid"},
		{"example without a Vault login", []string{"-config", "../../config.example.yaml", "-check"}, map[string]string{
			"CQGATE_DIRECTORY_URL": "https://directory.prod.carequality.org/fhir", "CQGATE_KEYS_VAULT_PATH": "cqgate/carequality",
			"CQGATE_CLIENT_CLIENT_ID": "gateway.example.org", "CQGATE_VAULT_ADDRESS": "https://vault.example.org:8200",
		}, "vault.auth: token missing", ""},
		{"config path from CQGATE_CONFIG", []string{"-check"}, map[string]string{"CQGATE_CONFIG": "/nonexistent/cqgate.yaml"}, "/nonexistent/cqgate.yaml", ""},
		{"bad env value", []string{"-check"}, map[string]string{"CQGATE_PROXY_TIMEOUT": "forever"}, "CQGATE_PROXY_TIMEOUT", ""},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := run(context.Background(), tt.args, &out, &errOut, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil || !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("err %v, out %q", err, out.String())
			}
		})
	}
}

// TestCommands runs the operator commands against the dev sandbox.
func TestCommands(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		check   func(t *testing.T, out string)
	}{
		{args: []string{"resolve", "-dev", sandbox.OID}, check: func(t *testing.T, out string) {
			for _, want := range []string{"organization", "cqgate Sandbox Hospital", "carequality-token", "used ->", "token URL", "Authorization/token", "algorithm            RS384"} {
				if !strings.Contains(out, want) {
					t.Errorf("resolve output lacks %q:\n%s", want, out)
				}
			}
		}},
		{args: []string{"resolve", "urn:oid:" + sandbox.OID, "-dev", "-json"}, check: func(t *testing.T, out string) {
			var r struct {
				Tenant struct {
					TokenURL  string `json:"token_url"`
					Discovery []struct{ Source, Outcome string }
				}
				Algorithm string
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("resolve -json: %v\n%s", err, out)
			}
			if r.Tenant.TokenURL == "" || r.Algorithm != "RS384" || len(r.Tenant.Discovery) == 0 || r.Tenant.Discovery[0].Outcome != "used" {
				t.Errorf("resolve -json = %+v", r)
			}
		}},
		{args: []string{"assert", "-dev", sandbox.OID}, check: func(t *testing.T, out string) {
			var p struct {
				Header map[string]any
				Claims map[string]any
			}
			if err := json.Unmarshal([]byte(out), &p); err != nil {
				t.Fatalf("assert: %v\n%s", err, out)
			}
			if p.Header["alg"] != "RS384" || p.Header["typ"] != "JWT" || p.Claims["iss"] != "cqgate.dev.localhost" || p.Claims["jti"] == nil {
				t.Errorf("assert = %+v", p)
			}
			if strings.Contains(out, "PRIVATE KEY") || strings.Count(out, ".") > 20 && strings.Contains(out, "eyJ") {
				t.Errorf("assert printed a key or a compact JWS:\n%s", out)
			}
		}},
		{args: []string{"token", "-dev", sandbox.OID}, check: func(t *testing.T, out string) {
			if !strings.Contains(out, `"token_type": "Bearer"`) || !strings.Contains(out, `"expires_in"`) || strings.Contains(out, "access_token") {
				t.Errorf("token without -show-token:\n%s", out)
			}
		}},
		{args: []string{"token", "-dev", "-show-token", sandbox.OID}, check: func(t *testing.T, out string) {
			if !strings.Contains(out, `"access_token"`) {
				t.Errorf("token -show-token:\n%s", out)
			}
		}},
		// The sandbox's registration endpoint verifies the software
		// statement; dev mode keeps the client id in memory.
		{args: []string{"register", "-dev", sandbox.OID}, check: func(t *testing.T, out string) {
			var res struct {
				OID                  string `json:"oid"`
				ClientID             string `json:"client_id"`
				Status               int    `json:"status"`
				RegistrationEndpoint string `json:"registration_endpoint"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			if res.OID != sandbox.OID || res.ClientID == "" || res.Status != http.StatusCreated || !strings.HasSuffix(res.RegistrationEndpoint, "/Authorization/register") {
				t.Errorf("register -dev printed %s", out)
			}
		}},
		{args: []string{"resolve", "-dev", "1.2.x"}, wantErr: "invalid OID"},
		{args: []string{"resolve", "-dev"}, wantErr: "exactly one OID"},
		{args: []string{"resolve", "-dev", "1.2", "1.3"}, wantErr: "exactly one OID"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), tt.args, &stdout, &stderr, noEnv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want an error with %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr.String())
			}
			tt.check(t, stdout.String())
		})
	}
}

// The sidecar shape (auth none) refuses to start on an address others can
// reach, unless forced.
func TestRefusesUnauthenticatedOffLoopback(t *testing.T) {
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"-dev", "-listen", "0.0.0.0:0", "-check"}, &stdout, &stderr, noEnv)
	if err == nil || !strings.Contains(err.Error(), `inbound auth "none" on listen address "0.0.0.0:0"`) {
		t.Fatalf("want a refusal naming the address, got %v", err)
	}
	env := map[string]string{"CQGATE_INBOUND_ALLOW_UNAUTHENTICATED": "true"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := run(context.Background(), []string{"-dev", "-listen", "0.0.0.0:0", "-check"}, &stdout, &stderr, lookup); err != nil {
		t.Fatalf("forced: %v", err)
	}
}

// TestCheckReportsEveryProblemInOneRun: YAML-level problems (an unknown
// key, a value of the wrong type), a malformed environment variable and
// semantic problems all come back from one -check.
func TestCheckReportsEveryProblemInOneRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cqgate.yaml")
	yaml := "listen: 127.0.0.1:8080\nlisten_adress: 0.0.0.0:1\nproxy:\n  timeout: forever\ndirectory:\n  flavor: dstu2\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CQGATE_TOKENS_TIMEOUT": "soon"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-config", path, "-check"}, &out, &errOut, lookup)
	if err == nil {
		t.Fatal("want problems, got none")
	}
	for _, want := range []string{
		path + ": line 2: field listen_adress not found", // unknown key
		path + ": line 4: cannot unmarshal",              // wrong type
		"CQGATE_TOKENS_TIMEOUT",                          // environment
		`directory.flavor: "dstu2"`,                      // semantic
		"client.client_id: must be set",                  // semantic
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// README ("Invalid configuration is reported all at once"): -check
// reports every file the start would fail to read or open (the audit
// file's directory, the inbound TLS certificate, key and client CAs, the
// UDAP trust anchors, a PEM signing chain that cannot be put in
// certification order), and starting reports them all in one error,
// creating nothing.
func TestCheckReportsFilesTheStartCannotOpen(t *testing.T) {
	d := t.TempDir()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate that belongs to none of the chain, after the leaf.
	strayPEM, _, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "stray.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf, cfgFile := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem"), filepath.Join(d, "cqgate.yaml")
	writeFile(t, cf, string(certPEM)+string(strayPEM))
	writeFile(t, kf, string(keyPEM))
	notPEM := filepath.Join(d, "anchors.txt")
	writeFile(t, notPEM, "not a certificate")
	writeFile(t, cfgFile, fmt.Sprintf(`listen: 127.0.0.1:0
keys:
  source: pem
  pem: {certificate_file: %[1]s, private_key_file: %[2]s}
client:
  client_id: gw.example.org
inbound:
  tls: {cert_file: %[3]s/missing-tls.pem, key_file: %[3]s/missing-tls-key.pem, client_ca_file: %[3]s/missing-ca.pem}
audit:
  destination: file:%[3]s/no-such-dir/audit.log
discovery:
  udap_trust_anchors: %[3]s/missing-anchors.pem
udap:
  communities:
    example:
      uri: urn:oid:2.16.840.1.999
      trust_anchors: [%[4]s]
organizations:
  "1.2.3.4":
    fhir_base: https://fhir.example.org/r4
    token_url: https://fhir.example.org/token
`, cf, kf, d, notPEM))
	want := []string{
		"audit.destination: audit: opening " + d + "/no-such-dir/audit.log: directory " + d + "/no-such-dir does not exist",
		"inbound.tls: callerauth: tls certificate: open " + d + "/missing-tls.pem",
		"inbound.tls: callerauth: tls key: open " + d + "/missing-tls-key.pem",
		"inbound.tls: callerauth: tls client CA: open " + d + "/missing-ca.pem",
		"discovery.udap_trust_anchors: open " + d + "/missing-anchors.pem",
		"udap.communities.example.trust_anchors: " + notPEM + ": discovery: trust anchors",
		"keys.pem: keys: loading certificate file " + cf + " and private key file " + kf + ": the certificate chain cannot be put in certification order",
	}
	for _, args := range [][]string{{"-config", cfgFile, "-check"}, {"-config", cfgFile}} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, &out, &errOut, noEnv)
		if err == nil {
			t.Errorf("%v: %q, nil error; want every file's problem", args, out.String())
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v does not report %q:\n%v", args, w, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(d, "no-such-dir")); !os.IsNotExist(err) {
		t.Error("the audit file's directory was created")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWarnUnknownEnv(t *testing.T) {
	var buf bytes.Buffer
	warnUnknownEnv(&buf, []string{
		"CQGATE_DIRECTORY_APIKEY=s3cret", "CQGATE_LISTEN=127.0.0.1:1", "CQGATE_CONFIG=/etc/cqgate.yaml",
		"CQGATE_FROBNICATE=1", "HOME=/root",
	})
	got := buf.String()
	for _, want := range []string{
		"cqgate: warning: CQGATE_DIRECTORY_APIKEY is not a cqgate setting and is ignored; did you mean CQGATE_DIRECTORY_API_KEY?",
		"cqgate: warning: CQGATE_FROBNICATE is not a cqgate setting and is ignored\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 2 {
		t.Errorf("%d warnings, want 2 (known names and other variables pass):\n%s", n, got)
	}
	if strings.Contains(got, "s3cret") {
		t.Error("a warning quotes a value")
	}
}

// README "Signals": SIGTERM drains in-flight requests, then cqgate exits
// 0. A SIGHUP during the drain (logrotate's postrotate, a certificate
// reloader) is logged and ignored: it neither ends the process nor cuts
// the request being drained.
func TestSIGHUPWhileDrainingIsIgnored(t *testing.T) {
	forwarded, slow := make(chan struct{}, 1), make(chan struct{})
	up := partner(t, forwarded, slow)
	d := t.TempDir()
	cf, kf := signingFiles(t, d)
	addr, cfgFile := freeAddr(t), filepath.Join(d, "cqgate.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`listen: %s
server:
  shutdown_timeout: 20s
keys:
  source: pem
  pem: {certificate_file: %s, private_key_file: %s}
  watch_interval: 0s
client:
  client_id: gw.example.org
audit:
  destination: none
organizations:
  "1.2.3.4":
    fhir_base: %s/fhir
    token_url: %s/token
    allow_private_addresses: true
`, addr, cf, kf, up.URL, up.URL))
	c := startChild(t, cfgFile)
	c.logged(t, "cqgate: serving")

	got := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/fhir/1.2.3.4/Patient/1")
		if err != nil {
			got <- 0
			return
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-forwarded
	c.signal(t, syscall.SIGTERM)
	c.logged(t, "gateway: shutting down; draining in-flight requests")
	c.signal(t, syscall.SIGHUP)
	c.logged(t, "cqgate: SIGHUP ignored: shutting down")
	close(slow)

	if code := <-got; code != http.StatusOK {
		t.Errorf("the request in flight during the drain got %d, want 200", code)
	}
	c.exitsZero(t)
}

// A SIGHUP while cqgate starts (here: waiting for Vault's login) is
// logged and ignored; cqgate goes on to serve.
func TestSIGHUPWhileStartingIsIgnored(t *testing.T) {
	loggingIn, login := make(chan struct{}, 1), make(chan struct{})
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/auth/approle/login" {
			select {
			case loggingIn <- struct{}{}:
			default:
			}
			<-login
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"auth":{"client_token":"t","lease_duration":3600,"renewable":false}}`)
	}))
	defer vault.Close()
	defer close(login)
	up := partner(t, nil, nil)
	d := t.TempDir()
	cf, kf := signingFiles(t, d)
	addr, cfgFile := freeAddr(t), filepath.Join(d, "cqgate.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`listen: %s
keys:
  source: pem
  pem: {certificate_file: %s, private_key_file: %s}
client:
  client_id: gw.example.org
audit:
  destination: none
vault:
  address: %s
  auth: {method: approle, role_id: r, secret_id: s}
udap:
  registrations: {path: cqgate/registrations}
organizations:
  "1.2.3.4":
    fhir_base: %s/fhir
    token_url: %s/token
    allow_private_addresses: true
`, addr, cf, kf, vault.URL, up.URL, up.URL))
	c := startChild(t, cfgFile)
	select {
	case <-loggingIn:
	case err := <-c.exited:
		t.Fatalf("cqgate exited (%v):\n%s", err, c.stderr.String())
	}
	c.signal(t, syscall.SIGHUP)
	c.logged(t, "cqgate: SIGHUP ignored: still starting")
	login <- struct{}{}
	c.logged(t, "cqgate: serving")
	c.signal(t, syscall.SIGTERM)
	c.exitsZero(t)
}

// README "Signals": SIGHUP re-reads callers' API keys listed in the
// configuration file (inbound.api_keys): a key removed from the file and
// a SIGHUP later is refused, a key added is accepted. A file with
// problems changes nothing and each problem is logged; a changed setting
// that needs a restart is named.
func TestSIGHUPRereadsInlineAPIKeys(t *testing.T) {
	up := partner(t, nil, nil)
	d := t.TempDir()
	cf, kf := signingFiles(t, d)
	addr, cfgFile := freeAddr(t), filepath.Join(d, "cqgate.yaml")
	const leaked, fresh = "leaked-key-0123456789", "fresh-key-9876543210"
	write := func(hash, timeout string) {
		writeFile(t, cfgFile, fmt.Sprintf(`listen: %s
server:
  read_timeout: %s
keys:
  source: pem
  pem: {certificate_file: %s, private_key_file: %s}
  watch_interval: 0s
client:
  client_id: gw.example.org
audit:
  destination: none
inbound:
  auth: api_key
  api_keys:
    billing: %s
  callers:
    billing:
      organizations: ["*"]
organizations:
  "1.2.3.4":
    fhir_base: %s/fhir
    token_url: %s/token
    allow_private_addresses: true
`, addr, timeout, cf, kf, hash, up.URL, up.URL))
	}
	write(sha256hex(leaked), "60s")
	c := startChild(t, cfgFile)
	defer c.exitsZero(t)
	defer c.signal(t, syscall.SIGTERM)
	get := func(key string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/fhir/1.2.3.4/Patient/1", nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	c.waitFor(t, "serving the caller", func() bool { return get(leaked) == http.StatusOK })

	reloads := 0
	hangup := func() {
		reloads++
		c.signal(t, syscall.SIGHUP)
		c.waitFor(t, "the reload", func() bool { return strings.Count(c.stderr.String(), "cqgate: reloaded on SIGHUP") == reloads })
	}
	write(sha256hex(fresh), "61s") // the leaked key is revoked in the file
	hangup()
	if code := get(leaked); code != http.StatusUnauthorized {
		t.Errorf("a key removed from inbound.api_keys gets %d after SIGHUP, want 401", code)
	}
	if code := get(fresh); code != http.StatusOK {
		t.Errorf("a key added to inbound.api_keys gets %d after SIGHUP, want 200", code)
	}
	if !strings.Contains(c.stderr.String(), `"settings":["server.read_timeout"]`) {
		t.Errorf("the changed server.read_timeout is not named as needing a restart:\n%s", c.stderr.String())
	}

	write("the-key-itself-not-its-hash", "61s")
	hangup()
	if code := get(fresh); code != http.StatusOK {
		t.Errorf("after SIGHUP with an invalid file, the key in service gets %d, want 200", code)
	}
	if !strings.Contains(c.stderr.String(), `"problems":["inbound.api_keys`) || strings.Contains(c.stderr.String(), "the-key-itself") {
		t.Errorf("the file's problem is not logged (or its value is):\n%s", c.stderr.String())
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
