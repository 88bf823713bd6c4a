package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/internal/failure"
)

func TestValidate(t *testing.T) {
	key := testKey(3)
	tests := []struct {
		name string
		cfg  Config
		want []string // one substring per problem
	}{
		{"no cluster", Config{}, nil},
		{"complete", Config{Redis: RedisConfig{URL: "rediss://u:p@redis.internal:6380/2"}, EncryptionKey: key, PreviousEncryptionKeys: []string{testKey(4)}, Prefix: "{cqgate}:", Timeout: time.Second}, nil},
		{"key without url", Config{EncryptionKey: key}, []string{"cluster.redis.url: not set, but cluster.encryption_key is"}},
		{"url without key", Config{Redis: RedisConfig{URL: "redis://127.0.0.1:6379"}}, []string{"cluster.encryption_key: required when cluster.redis.url is set"}},
		{"scheme", Config{Redis: RedisConfig{URL: "http://127.0.0.1:6379"}, EncryptionKey: key}, []string{`cluster.redis.url: scheme "http": must be redis:// or rediss://`}},
		{"unix socket", Config{Redis: RedisConfig{URL: "unix:///run/redis.sock"}, EncryptionKey: key}, []string{"must be redis:// or rediss://"}},
		{"bad port, password kept out", Config{Redis: RedisConfig{URL: "redis://user:hunter2hunter2@127.0.0.1:notaport"}, EncryptionKey: key}, []string{"cluster.redis.url: not a URL"}},
		{"bad db, password kept out", Config{Redis: RedisConfig{URL: "redis://user:hunter2hunter2@127.0.0.1:6379/notadb"}, EncryptionKey: key}, []string{"cluster.redis.url: redis://user:xxxxx@127.0.0.1:6379/notadb"}},
		{"ca cert without tls", Config{Redis: RedisConfig{URL: "redis://127.0.0.1:6379", CACert: "/nonexistent"}, EncryptionKey: key}, []string{"ca_cert is set but the URL is not rediss://"}},
		{"ca cert missing", Config{Redis: RedisConfig{URL: "rediss://127.0.0.1:6379", CACert: "/nonexistent/ca.pem"}, EncryptionKey: key}, []string{"cluster.redis.url: ca_cert: open /nonexistent/ca.pem"}},
		{"everything wrong", Config{Redis: RedisConfig{URL: "redis://127.0.0.1"}, EncryptionKey: "abc", Prefix: "has space", Timeout: -time.Second, PollInterval: -time.Second},
			[]string{"cluster.encryption_key: ", "cluster.prefix:", "cluster.timeout: -1s is negative", "cluster.poll_interval: -1s is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := Validate(tt.cfg)
			if len(problems) != len(tt.want) {
				t.Fatalf("%d problems, want %d: %v", len(problems), len(tt.want), problems)
			}
			for i, w := range tt.want {
				if !strings.Contains(problems[i].Error(), w) {
					t.Errorf("problem %d %q does not contain %q", i, problems[i], w)
				}
				for _, secret := range []string{"hunter2hunter2", key} {
					if strings.Contains(problems[i].Error(), secret) {
						t.Errorf("problem %q contains a secret", problems[i])
					}
				}
			}
		})
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	_, err := New(Config{Redis: RedisConfig{URL: "redis://127.0.0.1:6379"}})
	var ce *failure.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "cluster.encryption_key: required") ||
		!strings.HasPrefix(err.Error(), "cluster: invalid configuration: ") || ce.Kind() != failure.Misconfigured {
		t.Fatalf("New: %v, want a ConfigError naming the missing key", err)
	}
	if _, err := New(Config{}); !errors.As(err, &ce) {
		t.Fatalf("New without a URL: %v, want a ConfigError", err)
	}
}

func TestRedisOptionsCredentials(t *testing.T) {
	opts, err := redisOptions(RedisConfig{URL: "rediss://urluser:urlpass@redis.internal:6380/3"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Username != "urluser" || opts.Password != "urlpass" || opts.DB != 3 || opts.TLSConfig == nil || opts.Addr != "redis.internal:6380" {
		t.Errorf("from the URL: user %q, db %d, addr %q, tls %v", opts.Username, opts.DB, opts.Addr, opts.TLSConfig != nil)
	}
	opts, err = redisOptions(RedisConfig{URL: "redis://urluser:urlpass@127.0.0.1", Username: "vaultuser", Password: "vaultpass"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Username != "vaultuser" || opts.Password != "vaultpass" {
		t.Errorf("separately supplied credentials not used: user %q", opts.Username)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := redisOptions(RedisConfig{URL: "rediss://127.0.0.1", CACert: ca}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("CA file without certificates: %v", err)
	}
}

func TestConfigStringHidesSecrets(t *testing.T) {
	cfg := Config{
		Redis:                  RedisConfig{URL: "redis://u:urlsecret@127.0.0.1:6379", Password: "sepsecret"},
		EncryptionKey:          testKey(5),
		PreviousEncryptionKeys: []string{testKey(6)},
	}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		for _, secret := range []string{"urlsecret", "sepsecret", testKey(5), testKey(6)} {
			if strings.Contains(s, secret) {
				t.Errorf("%q contains a secret", s)
			}
		}
		if !strings.Contains(s, "127.0.0.1:6379") {
			t.Errorf("%q does not say which server", s)
		}
	}
}
