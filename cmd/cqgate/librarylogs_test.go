package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel"

	"github.com/cqgate/cqgate/config"
)

func jsonLogger(buf *bytes.Buffer, level logrus.Level) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetLevel(level)
	return log
}

// lines decodes the JSON lines of buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestScrubber(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.Redis.URL = "rediss://cqgate:url-p%40ss@redis.internal:6380/0"
	cfg.Cluster.Redis.Password = "field-password"
	env := map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20otlp-token-1,x-tenant=abc"}
	s := newScrubber(librarySecrets(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })...)
	tests := []struct {
		name, in, want string
	}{
		{"user info of any URL", `dial "redis://u:pw@10.0.0.1:6379"`, `dial "redis://u:REDACTED@10.0.0.1:6379"`},
		{"user info without a user name", "rediss://:topsecret@r:6380/1", "rediss://:REDACTED@r:6380/1"},
		{"the Redis URL's password, decoded", "AUTH failed for url-p@ss", "AUTH failed for REDACTED"},
		{"the Redis URL's password, encoded", "pass url-p%40ss", "pass REDACTED"},
		{"cluster.redis.password", "WRONGPASS field-password", "WRONGPASS REDACTED"},
		{"an OTLP header value, decoded", "header Authorization: Bearer otlp-token-1", "header Authorization: REDACTED"},
		{"a short header value is left alone", "abc is not a secret worth blotting", "abc is not a secret worth blotting"},
		{"nothing to scrub", "redis: connection pool: failed to dial", "redis: connection pool: failed to dial"},
		{"a URL without user info", "https://collector:4318/v1/traces", "https://collector:4318/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.scrub(tt.in); got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestLibraryLogsReachLogrus: after routeLibraryLogs, OpenTelemetry's
// global error handler and logger and go-redis's logger write JSON lines
// to cqgate's logger, scrubbed, and nothing to stderr of their own.
func TestLibraryLogsReachLogrus(t *testing.T) {
	var buf bytes.Buffer
	log := jsonLogger(&buf, logrus.InfoLevel)
	cfg := config.Default()
	cfg.Cluster.Redis.URL = "redis://cqgate:redis-secret-1@redis.internal:6379"
	routeLibraryLogs(log, cfg, func(string) (string, bool) { return "", false })

	otel.Handle(errors.New(`traces export: Post "https://svc:otlp-secret@collector:4318/v1/traces": connection refused`))
	redisLog{log: log.WithField("library", "go-redis"), scrub: newScrubber(librarySecrets(cfg, func(string) (string, bool) { return "", false })...)}.
		Printf(context.Background(), "redis: re-authentication failed: WRONGPASS for %s\n", "redis-secret-1")
	sink := logr.New(&otelSink{log: log.WithField("library", "opentelemetry"), scrub: newScrubber(), debug: func() bool { return log.IsLevelEnabled(logrus.DebugLevel) }})
	sink.Error(errors.New("exporter failed"), "otel error", "endpoint", "https://a:b-secret@c")
	sink.V(1).Info("otel warning")
	sink.V(4).Info("otel info, debug only")

	got := lines(t, &buf)
	want := []struct{ library, level, msg string }{
		{"opentelemetry", "warning", `opentelemetry: traces export: Post "https://svc:REDACTED@collector:4318/v1/traces": connection refused`},
		{"go-redis", "warning", "redis: re-authentication failed: WRONGPASS for REDACTED"},
		{"opentelemetry", "error", "otel error"},
		{"opentelemetry", "warning", "otel warning"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i, w := range want {
		if got[i]["library"] != w.library || got[i]["level"] != w.level || got[i]["msg"] != w.msg {
			t.Errorf("line %d = %v, want library %s level %s msg %q", i, got[i], w.library, w.level, w.msg)
		}
	}
	if got[2]["error"] != "exporter failed" || got[2]["endpoint"] != "https://a:REDACTED@c" {
		t.Errorf("the error line's fields: %v", got[2])
	}
	for _, secret := range []string{"otlp-secret", "redis-secret-1", "b-secret"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, buf.String())
		}
	}
}
