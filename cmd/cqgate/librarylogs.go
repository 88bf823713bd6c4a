package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/upstream"
)

// routeLibraryLogs sends what go-redis and OpenTelemetry write through
// their process-global loggers (by default straight to stderr, unformatted)
// into log, as JSON lines with a "library" field. Both libraries hold
// their logger in an atomic, so a later call replaces an earlier one.
// Messages are scrubbed first: the password of a URL's user info, and the
// secrets of cfg these libraries are given (the Redis password, OTLP
// header values), become "xxxxx".
//
// These are process globals: only cmd/ sets them, once per run.
func routeLibraryLogs(log *logrus.Logger, cfg *config.Config, lookup func(string) (string, bool)) {
	s := newScrubber(librarySecrets(cfg, lookup)...)
	redis.SetLogger(redisLog{log: log.WithField("library", "go-redis"), scrub: s})
	otlog := log.WithField("library", "opentelemetry")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		otlog.Warn("opentelemetry: " + s.scrub(err.Error()))
	}))
	otel.SetLogger(logr.New(&otelSink{log: otlog, scrub: s, debug: func() bool { return log.IsLevelEnabled(logrus.DebugLevel) }}))
}

// librarySecrets are the secrets in cfg that go-redis and the OTLP
// exporter hold, and so might repeat in a message.
func librarySecrets(cfg *config.Config, lookup func(string) (string, bool)) []string {
	var out []string
	r := cfg.Cluster.Redis
	out = append(out, r.Password)
	if u, err := url.Parse(r.URL); err == nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p, url.QueryEscape(p))
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		raw, _ := lookup(name)
		for kv := range strings.SplitSeq(raw, ",") {
			if _, v, ok := strings.Cut(kv, "="); ok {
				v = strings.TrimSpace(v)
				out = append(out, v)
				if d, err := url.QueryUnescape(v); err == nil {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// userInfoPassword is the password of a URL's user info
// (scheme://user:password@host).
var userInfoPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@`)

type scrubber struct{ secrets []string }

// newScrubber scrubs secrets; ones shorter than 4 bytes are left out (they
// would blot ordinary words and cannot be told from them).
func newScrubber(secrets ...string) *scrubber {
	s := &scrubber{}
	for _, v := range secrets {
		if len(v) >= 4 {
			s.secrets = append(s.secrets, v)
		}
	}
	return s
}

func (s *scrubber) scrub(msg string) string {
	msg = userInfoPassword.ReplaceAllString(msg, "${1}:"+upstream.Redacted+"@")
	// Raw, percent-encoded, JSON-escaped and base64-encoded, as everywhere else.
	return upstream.Scrub(msg, s.secrets...)
}

// redisLog is go-redis's Logging: what it prints is about connections
// failing or being retired, a warning.
type redisLog struct {
	log   logrus.FieldLogger
	scrub *scrubber
}

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(l.scrub.scrub(strings.TrimSpace(fmt.Sprintf(format, v...))))
}

// otelSink is OpenTelemetry's logr sink. OpenTelemetry logs errors,
// warnings at V(1), information at V(4) and debugging at V(8); the last
// two only reach a logger at debug level.
type otelSink struct {
	log   logrus.FieldLogger
	scrub *scrubber
	debug func() bool // whether the logger is at debug level
	name  string
	kvs   []any
}

func (s *otelSink) Init(logr.RuntimeInfo) {}

func (s *otelSink) Enabled(level int) bool {
	return level <= 1 || s.debug()
}

func (s *otelSink) Info(level int, msg string, kvs ...any) {
	e := s.entry(kvs)
	if level <= 1 {
		e.Warn(s.scrub.scrub(msg))
		return
	}
	e.Debug(s.scrub.scrub(msg))
}

func (s *otelSink) Error(err error, msg string, kvs ...any) {
	e := s.entry(kvs)
	if err != nil {
		e = e.WithField("error", s.scrub.scrub(err.Error()))
	}
	e.Error(s.scrub.scrub(msg))
}

func (s *otelSink) entry(kvs []any) logrus.FieldLogger {
	e := s.log
	if s.name != "" {
		e = e.WithField("logger", s.name)
	}
	all := append(append([]any(nil), s.kvs...), kvs...)
	for i := 0; i+1 < len(all); i += 2 {
		k, ok := all[i].(string)
		if !ok {
			continue
		}
		e = e.WithField(k, s.scrub.scrub(fmt.Sprint(all[i+1])))
	}
	return e
}

func (s *otelSink) WithValues(kvs ...any) logr.LogSink {
	c := *s
	c.kvs = append(append([]any(nil), s.kvs...), kvs...)
	return &c
}

func (s *otelSink) WithName(name string) logr.LogSink {
	c := *s
	if c.name != "" {
		name = c.name + "/" + name
	}
	c.name = name
	return &c
}
