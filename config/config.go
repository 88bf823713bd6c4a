package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole of cqgate's configuration.
type Config struct {
	// Listen is the address the gateway listens on.
	Listen string `yaml:"listen"`
	// LogLevel is the logrus level: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`

	Server    Server    `yaml:"server"`
	Directory Directory `yaml:"directory"`
	Discovery Discovery `yaml:"discovery"`
	Keys      Keys      `yaml:"keys"`
	Client    Client    `yaml:"client"`
	Tokens    Tokens    `yaml:"tokens"`
	Proxy     Proxy     `yaml:"proxy"`

	// Organizations holds per-OID settings, keyed by OID. An entry with a
	// fhir_base serves an organization that is not in the directory.
	Organizations map[string]Organization `yaml:"organizations"`
}

// Server holds the inbound HTTP server's limits.
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
}

// Directory selects and configures the Carequality directory.
type Directory struct {
	// Flavor is "r4" (the current directory) or "stu3" (the legacy one).
	Flavor string `yaml:"flavor"`
	// URL is the directory's FHIR base, e.g.
	// https://directory.prod.carequality.org/fhir. Empty means only
	// organizations configured with a fhir_base can be reached.
	URL string `yaml:"url"`
	// APIKey is the directory API key. Prefer CQGATE_DIRECTORY_API_KEY.
	APIKey string `yaml:"api_key"`
	// APIKeyIn says how the R4 directory gets the key: "header"
	// (Authorization: api-key <key>) or "query" (_apiKey=<key>).
	APIKeyIn string        `yaml:"api_key_in"`
	CacheTTL time.Duration `yaml:"cache_ttl"`
	Timeout  time.Duration `yaml:"timeout"`
}

// Discovery configures token-URL discovery from CapabilityStatements.
type Discovery struct {
	CacheTTL time.Duration `yaml:"cache_ttl"`
	Timeout  time.Duration `yaml:"timeout"`
}

// Keys says where the signing key and certificate chain come from.
type Keys struct {
	// Source is "vault" or "pem".
	Source string    `yaml:"source"`
	Vault  VaultKeys `yaml:"vault"`
	PEM    PEMKeys   `yaml:"pem"`
}

// VaultKeys reads the key from a Vault KV v2 secret.
type VaultKeys struct {
	// Address defaults to VAULT_ADDR.
	Address string `yaml:"address"`
	// Token defaults to VAULT_TOKEN; TokenFile is read when set.
	Token     string        `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	Namespace string        `yaml:"namespace"`
	CACert    string        `yaml:"ca_cert"`
	Timeout   time.Duration `yaml:"timeout"`
	// Mount is the KV v2 mount, Path the secret's path within it.
	Mount string `yaml:"mount"`
	Path  string `yaml:"path"`
	// CertificateField holds the PEM chain (leaf first),
	// PrivateKeyField the PEM private key.
	CertificateField string `yaml:"certificate_field"`
	PrivateKeyField  string `yaml:"private_key_field"`
}

// PEMKeys reads the key and chain from files.
type PEMKeys struct {
	CertificateFile string `yaml:"certificate_file"`
	PrivateKeyFile  string `yaml:"private_key_file"`
}

// Client is cqgate's Carequality client identity and its defaults.
type Client struct {
	// ClientID is the FQDN the Carequality certificate was issued for.
	ClientID string `yaml:"client_id"`
	// Scope requested from token endpoints.
	Scope string `yaml:"scope"`
	// Algorithm signs client assertions: RS384 (default) or RS256.
	Algorithm string `yaml:"algorithm"`
	// AssertionLifetime is exp - iat of each assertion, at most 5m.
	AssertionLifetime time.Duration `yaml:"assertion_lifetime"`
}

// Tokens configures the access-token cache and exchanges.
type Tokens struct {
	// RefreshMargin: a token is replaced this long before it expires.
	RefreshMargin time.Duration `yaml:"refresh_margin"`
	// DefaultLifetime is assumed when a token response has no expires_in.
	DefaultLifetime time.Duration `yaml:"default_lifetime"`
	Timeout         time.Duration `yaml:"timeout"`
}

// Proxy configures forwarding to FHIR servers.
type Proxy struct {
	// Timeout bounds the wait for an upstream's response headers.
	Timeout time.Duration `yaml:"timeout"`
	// MaxReplayBody is the largest request body kept in memory so the
	// request can be retried after a 401; larger bodies are streamed and
	// not retried.
	MaxReplayBody int64 `yaml:"max_replay_body"`
}

// Organization is per-OID configuration. Every field is optional.
type Organization struct {
	// Name is used when the organization is not in the directory.
	Name string `yaml:"name"`
	// FHIRBase makes this a static entry: the directory is not asked.
	FHIRBase string `yaml:"fhir_base"`
	// TokenURL overrides discovery.
	TokenURL string `yaml:"token_url"`
	// ClientID, Scope and Algorithm override the client defaults.
	ClientID  string `yaml:"client_id"`
	Scope     string `yaml:"scope"`
	Algorithm string `yaml:"algorithm"`
}

// Default returns the configuration cqgate runs with when nothing is set.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:8080",
		LogLevel: "info",
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      0, // FHIR responses stream; bounded by proxy.timeout upstream
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   25 * time.Second,
		},
		Directory: Directory{
			Flavor:   "r4",
			APIKeyIn: "header",
			CacheTTL: time.Hour,
			Timeout:  10 * time.Second,
		},
		Discovery: Discovery{CacheTTL: time.Hour, Timeout: 10 * time.Second},
		Keys: Keys{
			Source: "vault",
			Vault: VaultKeys{
				Mount:            "secret",
				CertificateField: "certificate",
				PrivateKeyField:  "private_key",
				Timeout:          10 * time.Second,
			},
		},
		Client: Client{
			Scope:             "system/*.read",
			Algorithm:         "RS384",
			AssertionLifetime: 5 * time.Minute,
		},
		Tokens: Tokens{
			RefreshMargin:   60 * time.Second,
			DefaultLifetime: 5 * time.Minute,
			Timeout:         15 * time.Second,
		},
		Proxy: Proxy{
			Timeout:       60 * time.Second,
			MaxReplayBody: 1 << 20,
		},
	}
}

// Load reads the YAML file at path over the defaults. Unknown keys are
// errors, so a typo does not silently fall back to a default.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	return cfg, nil
}
