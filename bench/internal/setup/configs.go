package setup

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// WriteNginxConf writes dir/nginx.conf for the baseline nginx: workers
// worker processes (one per CPU it may use), keep-alive connections to
// upstream (host:port), a fixed Authorization header, and every path
// (pid, logs, temp) inside dir.
func WriteNginxConf(dir, listen, upstream, authorization string, workers int) (string, error) {
	for _, d := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return "", fmt.Errorf("setup: %w", err)
		}
	}
	for _, addr := range []string{listen, upstream} {
		if err := loopback.CheckAddr(addr); err != nil {
			return "", fmt.Errorf("setup: nginx: %w", err)
		}
	}
	if strings.ContainsAny(authorization, "\"\\;\n\r") {
		// Not quoted: the value is a token.
		return "", errors.New("setup: the Authorization value cannot be quoted for nginx")
	}
	userLine := ""
	if os.Geteuid() == 0 {
		// As root nginx would switch its workers to nobody; keep them
		// as the user running the benchmark.
		if u, err := user.Current(); err == nil {
			userLine = "user " + u.Username + ";\n"
		}
	}
	conf := userLine + `worker_processes ` + strconv.Itoa(max(workers, 1)) + `;
pid ` + filepath.Join(dir, "nginx.pid") + `;
error_log ` + filepath.Join(dir, "logs", "error.log") + ` warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path ` + filepath.Join(dir, "tmp/body") + `;
    proxy_temp_path ` + filepath.Join(dir, "tmp/proxy") + `;
    fastcgi_temp_path ` + filepath.Join(dir, "tmp/fastcgi") + `;
    uwsgi_temp_path ` + filepath.Join(dir, "tmp/uwsgi") + `;
    scgi_temp_path ` + filepath.Join(dir, "tmp/scgi") + `;
    upstream fhir {
        server ` + upstream + `;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen ` + listen + `;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://fhir;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "` + authorization + `";
        }
    }
}
`
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("setup: %w", err)
	}
	return path, nil
}

// CqgateYAML is cqgate's configuration for the benchmark: the bench
// directory, a PEM key, no audit trail, and the benchmark organizations
// allowed their loopback http addresses. It holds no secret: the
// directory API key is given in the environment (CQGATE_DIRECTORY_API_KEY).
func CqgateYAML(listen, directoryURL, certFile, keyFile, clientID string, oids []string) string {
	return CqgateConfig(CqgateOptions{
		Listen: listen, DirectoryURL: directoryURL, CertFile: certFile, KeyFile: keyFile,
		ClientID: clientID, OIDs: oids,
	})
}

// CqgateOptions are the settings of CqgateConfig. Zero values leave
// cqgate's defaults.
type CqgateOptions struct {
	Listen, DirectoryURL string
	CertFile, KeyFile    string
	ClientID             string
	OIDs                 []string
	LogLevel             string // "warn" when empty
	// The tokens: section (tokens.refresh_margin, refresh_ahead,
	// min_interval), each left at cqgate's default when zero.
	RefreshMargin, RefreshAhead, MinInterval time.Duration
	// Admin, when set, moves health, readiness and metrics to this
	// address (admin.listen) and serves pprof there too (admin.pprof),
	// for a probe that profiles cqgate while it is measured.
	Admin string
}

// CqgateConfig is CqgateYAML with further settings, for the soak.
func CqgateConfig(o CqgateOptions) string {
	q := strconv.Quote
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nlog_level: %s\n", q(o.Listen), q(level))
	b.WriteString("audit:\n  destination: none\n")
	b.WriteString("metrics:\n  enabled: true\n")
	if o.Admin != "" {
		fmt.Fprintf(&b, "admin:\n  listen: %s\n  pprof: true\n", q(o.Admin))
	}
	fmt.Fprintf(&b, "directory:\n  url: %s\n", q(o.DirectoryURL))
	fmt.Fprintf(&b, "keys:\n  source: pem\n  pem:\n    certificate_file: %s\n    private_key_file: %s\n", q(o.CertFile), q(o.KeyFile))
	fmt.Fprintf(&b, "client:\n  client_id: %s\n", q(o.ClientID))
	if o.RefreshMargin != 0 || o.RefreshAhead != 0 || o.MinInterval != 0 {
		b.WriteString("tokens:\n")
		for _, kv := range []struct {
			key string
			d   time.Duration
		}{{"refresh_margin", o.RefreshMargin}, {"refresh_ahead", o.RefreshAhead}, {"min_interval", o.MinInterval}} {
			if kv.d != 0 {
				fmt.Fprintf(&b, "  %s: %s\n", kv.key, q(kv.d.String()))
			}
		}
	}
	b.WriteString("organizations:\n")
	for _, oid := range o.OIDs {
		fmt.Fprintf(&b, "  %s:\n    allow_private_addresses: true\n", q(oid))
	}
	return b.String()
}
