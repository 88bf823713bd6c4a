package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for empty Config fields.
const (
	// DefaultPrefix starts every Redis key and channel cqgate uses.
	DefaultPrefix = "cqgate:"
	// DefaultTimeout bounds each Redis operation.
	DefaultTimeout = 200 * time.Millisecond
	// DefaultPollInterval is how often a waiter looks at a lock when no
	// notification reaches it.
	DefaultPollInterval = 100 * time.Millisecond
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// Config says how to reach Redis and how to seal what is kept there. The
// zero Config (no Redis URL) means no cluster: each replica keeps its own
// state.
//
// String and GoString never print the password or the keys, so a Config
// is safe to log.
type Config struct {
	// Redis is the server (cluster.redis.*).
	Redis RedisConfig
	// EncryptionKey is the current key (cluster.encryption_key): 32
	// bytes, standard base64, optionally preceded by a key id and a
	// colon ("2026-12:BASE64"). Without an id, the id is derived from the
	// key (KeyID). Required when Redis.URL is set.
	EncryptionKey string
	// PreviousEncryptionKeys are older keys in the same form
	// (cluster.previous_encryption_keys): values sealed under them are
	// still read, nothing new is sealed with them.
	PreviousEncryptionKeys []string
	// Prefix starts every key and channel name (cluster.prefix);
	// DefaultPrefix when empty. Replicas that share state must share it;
	// deployments that share one Redis but not their tokens must not.
	Prefix string
	// Timeout bounds each Redis operation (cluster.timeout);
	// DefaultTimeout when zero.
	Timeout time.Duration
	// PollInterval is how often a waiter for another replica's exchange
	// looks whether the lock is gone, in case a notification was lost
	// (cluster.poll_interval); DefaultPollInterval when zero.
	PollInterval time.Duration
}

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// URL is redis://[user[:password]@]host[:port][/db] or rediss://...
	// for TLS (cluster.redis.url, env CQGATE_CLUSTER_REDIS_URL). Query
	// parameters go-redis understands (e.g. dial_timeout, pool_size) are
	// honoured.
	URL string
	// Username and Password, when set, replace those in URL, so the
	// credentials can come from Vault or the environment
	// (cluster.redis.username, cluster.redis.password).
	Username string
	Password string
	// CACert is a PEM file of CA certificates to verify a rediss://
	// server with (cluster.redis.ca_cert); the system pool when empty.
	CACert string
}

// Enabled reports whether a Redis URL is configured.
func (c Config) Enabled() bool { return c.Redis.URL != "" }

// String describes c without secrets.
func (c Config) String() string {
	return fmt.Sprintf("cluster.Config{Redis: %s, EncryptionKey: %s, PreviousEncryptionKeys: %d, Prefix: %q, Timeout: %s, PollInterval: %s}",
		c.Redis, redacted(c.EncryptionKey), len(c.PreviousEncryptionKeys), c.Prefix, c.Timeout, c.PollInterval)
}

// GoString is String, so %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }

// String describes r without the password.
func (r RedisConfig) String() string {
	return fmt.Sprintf("{URL: %s, Username: %q, Password: %s, CACert: %q}", RedactURL(r.URL), r.Username, redacted(r.Password), r.CACert)
}

// GoString is String.
func (r RedisConfig) GoString() string { return r.String() }

// RedactURL returns raw with any password replaced by "xxxxx"; a URL
// that does not parse comes back as "<unparsable URL>".
func RedactURL(raw string) string {
	if raw == "" {
		return `""`
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

func redacted(s string) string {
	if s == "" {
		return "<unset>"
	}
	return "<redacted>"
}

func (c Config) prefix() string {
	if c.Prefix == "" {
		return DefaultPrefix
	}
	return c.Prefix
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c Config) pollInterval() time.Duration {
	if c.PollInterval == 0 {
		return DefaultPollInterval
	}
	return c.PollInterval
}

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9._:{}-]{1,64}$`)

// Validate returns every problem with c, each naming its configuration
// key (cluster.*); none for a Config without a Redis URL whose other
// fields are empty. Problems never contain the password or a key.
func Validate(c Config) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	if !c.Enabled() {
		if c.EncryptionKey != "" || len(c.PreviousEncryptionKeys) > 0 {
			add("cluster.redis.url: not set, but cluster.encryption_key is: set both to share state through Redis, or neither")
		}
		return problems
	}
	if _, err := redisOptions(c.Redis); err != nil {
		add("cluster.redis.url: %w", err)
	}
	if c.EncryptionKey == "" {
		add("cluster.encryption_key: required when cluster.redis.url is set (32 random bytes, base64: head -c 32 /dev/urandom | base64)")
	} else if _, err := NewKeyring(c.EncryptionKey, c.PreviousEncryptionKeys...); err != nil {
		add("%w", err)
	}
	if c.Prefix != "" && !prefixPattern.MatchString(c.Prefix) {
		add("cluster.prefix: %q must be 1 to 64 letters, digits or ._:{}-", c.Prefix)
	}
	if c.Timeout < 0 {
		add("cluster.timeout: %s is negative", c.Timeout)
	}
	if c.PollInterval < 0 {
		add("cluster.poll_interval: %s is negative", c.PollInterval)
	}
	return problems
}

// redisOptions parses r into go-redis options. Its errors never contain
// the URL's password.
func redisOptions(r RedisConfig) (*redis.Options, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, errors.New("not a URL") // url.Error would print the password
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("scheme %q: must be redis:// or rediss://", u.Scheme)
	}
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		msg := err.Error()
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		return nil, fmt.Errorf("%s: %s", RedactURL(r.URL), msg)
	}
	if r.Username != "" {
		opts.Username = r.Username
	}
	if r.Password != "" {
		opts.Password = r.Password
	}
	if r.CACert != "" {
		if u.Scheme != "rediss" {
			return nil, errors.New("ca_cert is set but the URL is not rediss://")
		}
		pem, err := os.ReadFile(r.CACert)
		if err != nil {
			return nil, fmt.Errorf("ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert: %s holds no PEM certificate", r.CACert)
		}
		if opts.TLSConfig == nil {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts.TLSConfig.RootCAs = pool
	}
	return opts, nil
}

// decodeKey parses "[id:]BASE64" into an id and a 32-byte key. Errors
// never contain the key.
func decodeKey(s string) (id string, key []byte, err error) {
	b64 := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		id, b64 = s[:i], s[i+1:]
		if !keyIDPattern.MatchString(id) {
			return "", nil, fmt.Errorf("key id %q must be 1 to 32 letters, digits or ._-", id)
		}
	}
	key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(b64))
	}
	if err != nil {
		return "", nil, errors.New("not standard base64")
	}
	if len(key) != KeySize {
		return "", nil, fmt.Errorf("%d bytes, must be %d (head -c 32 /dev/urandom | base64)", len(key), KeySize)
	}
	if id == "" {
		id = KeyID(key)
	}
	return id, key, nil
}
