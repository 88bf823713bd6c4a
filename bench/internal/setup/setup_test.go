package setup

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cqgate/cqgate/config"
)

func TestWriteSelfSigned(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteSelfSigned(dir, "bench.example.test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no certificate in %s", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "bench.example.test" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "bench.example.test" {
		t.Errorf("subject %v, SANs %v", cert.Subject, cert.DNSNames)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("no PKCS#8 key in %s", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || !rk.PublicKey.Equal(cert.PublicKey) {
		t.Error("the key is not the certificate's RSA key")
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestCqgateYAML(t *testing.T) {
	y := CqgateYAML("127.0.0.1:8080", "http://127.0.0.1:9/directory", "/c.pem", "/k.pem", "bench.test", []string{"2.999.7.1", "2.999.7.2"})
	var got map[string]any
	if err := yaml.Unmarshal([]byte(y), &got); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	want := map[string]any{
		"listen":    "127.0.0.1:8080",
		"log_level": "warn",
		"audit":     map[string]any{"destination": "none"},
		"metrics":   map[string]any{"enabled": true},
		"directory": map[string]any{"url": "http://127.0.0.1:9/directory"},
		"keys":      map[string]any{"source": "pem", "pem": map[string]any{"certificate_file": "/c.pem", "private_key_file": "/k.pem"}},
		"client":    map[string]any{"client_id": "bench.test"},
		"organizations": map[string]any{
			"2.999.7.1": map[string]any{"allow_private_addresses": true},
			"2.999.7.2": map[string]any{"allow_private_addresses": true},
		},
	}
	if !equalYAML(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func equalYAML(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok != bok {
		return false
	}
	if !aok {
		return a == b
	}
	if len(am) != len(bm) {
		return false
	}
	for k, v := range am {
		if !equalYAML(v, bm[k]) {
			return false
		}
	}
	return true
}

func TestWriteNginxConf(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteNginxConf(dir, "127.0.0.1:1", "127.0.0.1:2", `Bearer x"; evil`, 1); err == nil {
		t.Error("an Authorization value that breaks the quoting was accepted")
	}
	if _, err := WriteNginxConf(dir, "0.0.0.0:18080", "127.0.0.1:18081", "Bearer abc", 1); err == nil {
		t.Error("a listen address off loopback was accepted")
	}
	if _, err := WriteNginxConf(dir, "127.0.0.1:18080", "10.0.0.1:80", "Bearer abc", 1); err == nil {
		t.Error("an upstream off loopback was accepted")
	}
	conf, err := WriteNginxConf(dir, "127.0.0.1:18080", "127.0.0.1:18081", "Bearer abc", 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// It holds the token: only its owner may read it.
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("nginx.conf mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	for _, want := range []string{
		"worker_processes 2;", "keepalive 64;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`,
		`proxy_set_header Authorization "Bearer abc";`, "listen 127.0.0.1:18080;", "server 127.0.0.1:18081;",
		"pid " + filepath.Join(dir, "nginx.pid"),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Log("nginx not installed: syntax not checked")
			return
		}
		nginx = "/usr/sbin/nginx"
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log")).CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}

func TestBareProxySetsAuthorization(t *testing.T) {
	big := strings.Repeat("p", 100<<10) // more than one copy buffer
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Authorization")+" "+r.URL.RequestURI()+" "+big)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL + "/base")
	for _, pooled := range []bool{false, true} {
		px := httptest.NewServer(BareProxy(u, "Bearer static", pooled))
		for i := 0; i < 3; i++ { // reuse pooled buffers
			req, _ := http.NewRequest(http.MethodGet, px.URL+"/Patient/1?x=y", nil)
			req.Header.Set("Authorization", "Bearer caller")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := string(b), "Bearer static /base/Patient/1?x=y "+big; got != want {
				t.Errorf("pooled=%v: upstream saw %.60q, want %.60q", pooled, got, want)
			}
		}
		px.Close()
	}
}

// The soak's settings are real cqgate configuration keys with the values
// asked for, and the rest stays as CqgateYAML has it.
func TestCqgateConfigTokens(t *testing.T) {
	tests := []struct {
		name                   string
		opts                   CqgateOptions
		margin, ahead, minIntv time.Duration
	}{
		{"defaults", CqgateOptions{}, 60 * time.Second, 2 * time.Minute, time.Minute},
		{"soak", CqgateOptions{RefreshMargin: 10 * time.Second, RefreshAhead: 10 * time.Second, MinInterval: 5 * time.Second}, 10 * time.Second, 10 * time.Second, 5 * time.Second},
		{"only the margin", CqgateOptions{RefreshMargin: 90 * time.Second}, 90 * time.Second, 2 * time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Listen, o.DirectoryURL, o.CertFile, o.KeyFile, o.ClientID = "127.0.0.1:8080", "http://127.0.0.1:9/directory", "/c.pem", "/k.pem", "bench.test"
			o.OIDs = []string{"2.999.7.1"}
			cfg, err := config.Parse([]byte(CqgateConfig(o)))
			if err != nil {
				t.Fatalf("%v\n%s", err, CqgateConfig(o))
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("invalid: %v", err)
			}
			if got := cfg.Tokens; got.RefreshMargin != tt.margin || got.RefreshAhead != tt.ahead || got.MinInterval != tt.minIntv {
				t.Errorf("tokens %+v, want margin %s ahead %s min_interval %s", got, tt.margin, tt.ahead, tt.minIntv)
			}
			if cfg.LogLevel != "warn" || !cfg.Metrics.Enabled || !cfg.Organizations["2.999.7.1"].AllowPrivateAddresses {
				t.Errorf("log level %q, metrics %v, organizations %+v", cfg.LogLevel, cfg.Metrics.Enabled, cfg.Organizations)
			}
		})
	}
	if y := CqgateConfig(CqgateOptions{Listen: "127.0.0.1:1", LogLevel: "error"}); !strings.Contains(y, `log_level: "error"`) {
		t.Errorf("log level not set:\n%s", y)
	}
}
