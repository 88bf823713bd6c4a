package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cqgate/cqgate/sandbox"
)

func init() { gin.SetMode(gin.ReleaseMode) }

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
		}, "", "configuration is valid"},
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
