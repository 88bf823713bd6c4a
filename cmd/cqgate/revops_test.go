package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cqgate/cqgate/keys"
)

// revopsChild, set in the environment, makes the test binary run cqgate's
// main with the arguments in REVOPS_ARGS_* (a re-executed child, so that
// the test can send it real signals).
const revopsChild = "REVOPS_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(revopsChild); cfg != "" {
		os.Args = []string{"cqgate", "-config", cfg}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// README "Signals": "SIGTERM stops accepting and drains in-flight requests
// for up to server.shutdown_timeout, then exits 0. SIGHUP re-reads signing
// keys, callers' API keys, the inbound TLS certificate and reopens the
// audit file". reloadOnHangup stops watching SIGHUP as soon as SIGTERM
// arrives (signal.Stop restores the default action), so a SIGHUP during
// the drain (logrotate's postrotate, a certificate reloader) kills the
// process at once: the in-flight request that was being drained is cut
// and the exit status is 129, not 0. (The same default action kills
// cqgate for a SIGHUP before the handler is installed, while gateway.New
// waits for a slow Vault at start.)
func TestRevOpsSIGHUPDuringDrainKillsProcess(t *testing.T) {
	forwarded := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"tok","token_type":"Bearer","expires_in":600,"scope":"system/*.read"}`)
			return
		}
		forwarded <- struct{}{}
		time.Sleep(1500 * time.Millisecond) // a slow partner, well within shutdown_timeout
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
	}))
	defer up.Close()

	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cf, kf, cfgFile := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem"), filepath.Join(d, "cqgate.yaml")
	_ = os.WriteFile(cf, certPEM, 0o600)
	_ = os.WriteFile(kf, keyPEM, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	yaml := fmt.Sprintf(`listen: %s
server:
  shutdown_timeout: 10s
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
`, addr, cf, kf, up.URL, up.URL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), revopsChild+"="+cfgFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cqgate did not become ready:\n%s", stderr.String())
		}
	}

	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/fhir/1.2.3.4/Patient/1")
		if err != nil {
			got <- answer{err: err}
			return
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{code: resp.StatusCode}
	}()
	<-forwarded
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // draining now
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	if a := <-got; a.err != nil || a.code != http.StatusOK {
		t.Errorf("in-flight request during the drain: code %d, err %v (want 200: it should be drained)", a.code, a.err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("cqgate exited with %v after SIGTERM then SIGHUP (want exit 0)", ee.ProcessState)
		} else if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cqgate did not exit")
	}
}

// README "Signals": "SIGHUP re-reads signing keys, callers' API keys, the
// inbound TLS certificate and reopens the audit file". Callers' API keys
// in inbound.api_keys (config.example.yaml's first way of giving them)
// are not re-read: an operator who removes a leaked key from the file and
// sends SIGHUP is told "cqgate: reloaded on SIGHUP", and the key keeps
// working (only inbound.api_keys_vault is refreshed; nothing says the
// file's change was ignored).
func TestRevOpsSIGHUPDoesNotRereadInlineAPIKeys(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"tok","token_type":"Bearer","expires_in":600,"scope":"system/*.read"}`)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"1"}`)
	}))
	defer up.Close()
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{CommonName: "gw.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cf, kf, cfgFile := filepath.Join(d, "c.pem"), filepath.Join(d, "k.pem"), filepath.Join(d, "cqgate.yaml")
	_ = os.WriteFile(cf, certPEM, 0o600)
	_ = os.WriteFile(kf, keyPEM, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const leaked, fresh = "leaked-key-0123456789", "fresh-key-9876543210"
	write := func(key string) {
		yaml := fmt.Sprintf(`listen: %s
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
`, addr, cf, kf, sha256hex(key), up.URL, up.URL)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(leaked)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), revopsChild+"="+cfgFile)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	base := "http://" + addr
	get := func(key string) int {
		req, _ := http.NewRequest("GET", base+"/fhir/1.2.3.4/Patient/1", nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(20 * time.Second); get(leaked) != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cqgate did not serve the caller:\n%s", stderr.String())
		}
	}

	write(fresh) // the leaked key is revoked in the file
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !bytes.Contains([]byte(stderr.String()), []byte("SIGHUP")); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no SIGHUP log line:\n%s", stderr.String())
		}
	}
	if code := get(leaked); code != http.StatusUnauthorized {
		t.Errorf("after removing the key from inbound.api_keys and SIGHUP, the removed key still gets %d (want 401)", code)
	}
	if code := get(fresh); code != http.StatusOK {
		t.Errorf("after adding a key to inbound.api_keys and SIGHUP, the new key gets %d (want 200)", code)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
