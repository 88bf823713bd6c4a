package vault_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

const (
	rootToken = "hvs.CAESIJ-vault-pkg-root-token-must-never-leak-Q7"
	roleID    = "role-id-8a1e-must-not-leak"
	secretID  = "secret-id-77f3-must-never-leak"
	saJWT     = "eyJhbGciOiJSUzI1NiJ9.service-account-jwt-must-never-leak.sig"
)

// clearVaultEnv unsets the VAULT_* variables api.DefaultConfig and
// api.NewClient read, for the duration of the test.
func clearVaultEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		api.EnvVaultAddress, api.EnvVaultAgentAddr, api.EnvVaultToken, api.EnvVaultNamespace,
		api.EnvVaultCACert, api.EnvVaultCACertBytes, api.EnvVaultCAPath, api.EnvVaultClientCert,
		api.EnvVaultClientKey, api.EnvVaultClientTimeout, api.EnvVaultSkipVerify, api.EnvVaultTLSServerName,
		api.EnvVaultMaxRetries, api.EnvVaultHeaders, api.EnvVaultProxyAddr,
	} {
		t.Setenv(k, "")
	}
}

// assertNoSecrets fails when text contains any of secrets.
func assertNoSecrets(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s leaks a secret (%.12q...): %s", what, s, text)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound; for background work, never for timing assertions.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// memLog is a logrus logger that keeps every entry, rendered, for secret
// checks; safe for the client's goroutine.
type memLog struct {
	*logrus.Logger
	mu      sync.Mutex
	entries []string
}

func newMemLog() *memLog {
	l := &memLog{Logger: logrus.New()}
	l.SetLevel(logrus.DebugLevel)
	l.SetOutput(io.Discard) // the client logs from its goroutine, possibly after t ends
	l.AddHook(l)
	return l
}

func (l *memLog) Levels() []logrus.Level { return logrus.AllLevels }

func (l *memLog) Fire(e *logrus.Entry) error {
	b, _ := json.Marshal(e.Data)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e.Level.String()+" "+e.Message+" "+string(b))
	return nil
}

func (l *memLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.entries, "\n")
}

// leakedGoroutines returns the stacks of goroutines still running this
// package's background loop or an api.LifetimeWatcher.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cqgate/vault.(*Client).run") || strings.Contains(g, "(*LifetimeWatcher)") {
			out = append(out, g)
		}
	}
	return out
}
