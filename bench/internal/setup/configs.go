package setup

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// WriteNginxConf writes dir/nginx.conf for the baseline nginx: two
// workers, keep-alive connections to upstream (host:port), a fixed
// Authorization header, and every path (pid, logs, temp) inside dir.
func WriteNginxConf(dir, listen, upstream, authorization string) (string, error) {
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
	conf := userLine + `worker_processes 2;
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
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nlog_level: warn\n", q(listen))
	b.WriteString("audit:\n  destination: none\n")
	b.WriteString("metrics:\n  enabled: true\n")
	fmt.Fprintf(&b, "directory:\n  url: %s\n", q(directoryURL))
	fmt.Fprintf(&b, "keys:\n  source: pem\n  pem:\n    certificate_file: %s\n    private_key_file: %s\n", q(certFile), q(keyFile))
	fmt.Fprintf(&b, "client:\n  client_id: %s\n", q(clientID))
	b.WriteString("organizations:\n")
	for _, oid := range oids {
		fmt.Fprintf(&b, "  %s:\n    allow_private_addresses: true\n", q(oid))
	}
	return b.String()
}
