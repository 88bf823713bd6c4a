package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
)

func TestHelp(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // each must be in stdout
		wantErr string
	}{
		{"-h lists every command and the flags", []string{"-h"},
			[]string{"resolve <oid>", "assert <oid>", "token <oid>", "register <oid>", "version [-json]", "help [command]", "-config", "-dev", "-check"}, ""},
		{"--help as well", []string{"-dev", "--help"}, []string{"Commands:", "register <oid>"}, ""},
		{"help alone", []string{"help"}, []string{"Commands:", "resolve <oid>", "version"}, ""},
		{"help resolve explains and lists its flags", []string{"help", "resolve"}, []string{"usage: cqgate resolve <oid> [-json]", "discovery source", "-json", "-timeout", "-config"}, ""},
		{"help token", []string{"help", "token"}, []string{"usage: cqgate token", "-show-token", "live credential"}, ""},
		{"help register", []string{"help", "register"}, []string{"usage: cqgate register", "software statement", "-dev"}, ""},
		{"help version", []string{"help", "version"}, []string{"usage: cqgate version", "ldflags"}, ""},
		{"help of an unknown command", []string{"help", "serve"}, nil, `unknown command "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut, noEnv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run %v: %v (stderr %s)", tt.args, err, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("run %v: stdout lacks %q:\n%s", tt.args, w, out.String())
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^cqgate \S+\n  revision \S+\n(  time .*\n)?  go       go1\.\d+`).MatchString(out.String()) {
		t.Errorf("version output:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"version", "-json"}, &out, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version   string `json:"version"`
		Revision  string `json:"revision"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || v.Revision == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("version -json = %s (%v)", out.String(), err)
	}
}

// devServer runs cqgate -dev with env until the test ends, and returns
// the main URL, the admin URL ("" without admin.listen) and a function
// that stops it and returns run's result.
func devServer(t *testing.T, env map[string]string) (base, admin string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	go func() { done <- run(ctx, []string{"-dev", "-listen", "127.0.0.1:0"}, &stdout, &stderr, lookup) }()
	mainRe := regexp.MustCompile(`dev mode on (http://\S+)`)
	adminRe := regexp.MustCompile(`"url":"(http://[^"]+)"[^\n]*admin listener|admin listener[^\n]*"url":"(http://[^"]+)"`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := mainRe.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		if m := adminRe.FindStringSubmatch(stderr.String()); m != nil {
			admin = m[1] + m[2]
		}
		if base != "" && (admin != "" || env["CQGATE_ADMIN_LISTEN"] == "") {
			break
		}
	}
	if base == "" || (admin == "" && env["CQGATE_ADMIN_LISTEN"] != "") {
		cancel()
		t.Fatalf("dev mode did not start:\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("dev mode did not stop")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return base, admin, stop
}

type answer struct {
	status int
	ctype  string
	body   string
}

func get(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// Without admin.listen health, readiness and metrics are on the main
// listener; with it they are on the admin listener only, pprof with
// admin.pprof, and both listeners stop together.
func TestAdminListener(t *testing.T) {
	t.Run("off: everything on the main listener", func(t *testing.T) {
		base, _, stop := devServer(t, nil)
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if a := get(t, base+p); a.status != http.StatusOK {
				t.Errorf("main %s: %d %s", p, a.status, a.body)
			}
		}
		if a := get(t, base+"/debug/pprof/"); a.status != http.StatusNotFound {
			t.Errorf("main /debug/pprof/ without admin: %d", a.status)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("on: split", func(t *testing.T) {
		base, admin, stop := devServer(t, map[string]string{"CQGATE_ADMIN_LISTEN": "127.0.0.1:0", "CQGATE_ADMIN_PPROF": "true"})
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/debug/pprof/"} {
			a := get(t, base+p)
			if a.status != http.StatusNotFound || !strings.Contains(a.body, `"OperationOutcome"`) || !strings.Contains(a.body, "admin listener") {
				t.Errorf("main %s with admin.listen: %d %s", p, a.status, a.body)
			}
			if a := get(t, admin+p); a.status != http.StatusOK {
				t.Errorf("admin %s: %d %s", p, a.status, a.body)
			}
		}
		if a := get(t, admin+"/debug/pprof/goroutine?debug=1"); a.status != http.StatusOK || !strings.Contains(a.body, "goroutine") {
			t.Errorf("admin pprof goroutine: %d %.200s", a.status, a.body)
		}
		if a := get(t, admin+"/fhir/"+sandbox.OID+"/Patient/1316024"); a.status != http.StatusNotFound || !strings.Contains(a.body, "OperationOutcome") {
			t.Errorf("admin serves FHIR: %d %s", a.status, a.body)
		}
		if a := get(t, base+"/fhir/"+sandbox.OID+"/Patient/1316024"); a.status != http.StatusOK {
			t.Errorf("main FHIR: %d %s", a.status, a.body)
		}
		if a := get(t, admin+"/metrics"); !strings.Contains(a.body, "cqgate_build_info{") || !strings.Contains(a.body, "cqgate_requests_total") {
			t.Errorf("admin /metrics lacks cqgate_build_info or requests_total:\n%.2000s", a.body)
		}
		if err := stop(); err != nil {
			t.Fatalf("run returned %v", err)
		}
		for _, u := range []string{base, admin} {
			if c, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "http://"), time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections after shutdown", u)
			}
		}
	})
}

// The README's dev-mode directory calls answer: a lookup and a search.
func TestDevDirectory(t *testing.T) {
	base, _, _ := devServer(t, nil)
	if a := get(t, base+"/directory/Organization/"+sandbox.OID); a.status != http.StatusOK || !strings.Contains(a.body, "cqgate Sandbox Hospital") {
		t.Errorf("lookup: %d %s", a.status, a.body)
	}
	tests := []struct {
		query     string
		wantTotal int
	}{
		{"name=cqgate", 1},
		{"name=CQGATE%20sandbox", 1},
		{"_id=urn:oid:" + sandbox.OID, 1},
		{"name=cqgate&active=true&_count=5", 1},
		{"name=nowhere", 0},
		{"name=cqgate&active=false", 0},
	}
	for _, tt := range tests {
		a := get(t, base+"/directory/Organization?"+tt.query)
		if a.status != http.StatusOK {
			t.Errorf("search %s: %d %s", tt.query, a.status, a.body)
			continue
		}
		var res struct {
			Total         int `json:"total"`
			Organizations []struct {
				OID  string `json:"oid"`
				Name string `json:"name"`
			} `json:"organizations"`
		}
		if err := json.Unmarshal([]byte(a.body), &res); err != nil {
			t.Fatalf("search %s: %v in %s", tt.query, err, a.body)
		}
		if res.Total != tt.wantTotal || len(res.Organizations) != tt.wantTotal {
			t.Errorf("search %s: total %d, %d organizations; want %d: %s", tt.query, res.Total, len(res.Organizations), tt.wantTotal, a.body)
		}
		if tt.wantTotal == 1 && res.Organizations[0].Name != "cqgate Sandbox Hospital" {
			t.Errorf("search %s: %s", tt.query, a.body)
		}
	}
}
