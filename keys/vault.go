package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// VaultConfig says how to reach Vault. Empty fields leave what
// api.DefaultConfig() found in the environment (VAULT_ADDR, VAULT_CACERT,
// VAULT_CLIENT_TIMEOUT, VAULT_TOKEN, VAULT_NAMESPACE, ...) in place.
//
// VaultConfig's String and GoString never print the token, so it is safe
// to log.
type VaultConfig struct {
	// Address is Vault's URL, e.g. "https://vault.example.org:8200".
	Address string
	// Token is the Vault token. It takes precedence over TokenFile and
	// VAULT_TOKEN.
	Token string
	// TokenFile names a file holding the token (e.g. written by Vault
	// Agent); surrounding white space is trimmed. Used when Token is empty.
	TokenFile string
	// Namespace is the Vault Enterprise namespace, if any.
	Namespace string
	// CACert is a PEM file of CA certificates to verify Vault's TLS
	// certificate with.
	CACert string
	// Timeout bounds each request to Vault.
	Timeout time.Duration
}

// String describes the configuration with the token redacted.
func (c VaultConfig) String() string {
	token := "<unset>"
	if c.Token != "" {
		token = "<redacted>"
	}
	return fmt.Sprintf("VaultConfig{Address:%q Token:%s TokenFile:%q Namespace:%q CACert:%q Timeout:%s}",
		c.Address, token, c.TokenFile, c.Namespace, c.CACert, c.Timeout)
}

// GoString is String, so that %#v does not print the token either.
func (c VaultConfig) GoString() string { return c.String() }

// NewVaultClient returns a Vault API client. It starts from
// api.DefaultConfig(), which honours the standard VAULT_* environment
// variables, and overrides it with the non-empty fields of cfg. The token
// is cfg.Token, else the trimmed content of cfg.TokenFile, else VAULT_TOKEN.
// An explicit cfg.Address also takes precedence over VAULT_AGENT_ADDR.
//
// It fails when no address (cfg.Address, VAULT_ADDR or VAULT_AGENT_ADDR) or
// no token is configured, naming what is missing: the library's built-in
// default address is never used silently. A TokenFile that is set but
// empty is an error too, rather than a silent fall back to VAULT_TOKEN.
func NewVaultClient(cfg VaultConfig) (*api.Client, error) {
	apiCfg := api.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, fmt.Errorf("keys: configuring Vault client from the environment: %w", apiCfg.Error)
	}
	if cfg.Address != "" {
		apiCfg.Address = cfg.Address
		apiCfg.AgentAddress = ""
	}
	if cfg.Timeout > 0 {
		apiCfg.Timeout = cfg.Timeout
	}
	if cfg.CACert != "" {
		if err := apiCfg.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("keys: loading Vault CA certificate %s: %w", cfg.CACert, err)
		}
	}

	var missing []string
	if cfg.Address == "" && os.Getenv(api.EnvVaultAddress) == "" && os.Getenv(api.EnvVaultAgentAddr) == "" {
		missing = append(missing, "address (set Address or VAULT_ADDR)")
	}

	token := cfg.Token
	if token == "" && cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("keys: reading Vault token file %s: %w", cfg.TokenFile, err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			missing = append(missing, fmt.Sprintf("token (token file %s is empty)", cfg.TokenFile))
		}
	}

	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("keys: creating Vault client: %w", err)
	}
	if token != "" {
		client.SetToken(token)
	} else if client.Token() == "" && cfg.TokenFile == "" {
		missing = append(missing, "token (set Token, TokenFile or VAULT_TOKEN)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("keys: creating Vault client: missing %s", strings.Join(missing, " and "))
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return client, nil
}

// Defaults for VaultKV's empty fields.
const (
	DefaultKVMount          = "secret"
	DefaultCertificateField = "certificate"
	DefaultPrivateKeyField  = "private_key"
)

// VaultKV is a Source that reads the PEM certificate chain and private key
// from two string fields of one secret in a KV version 2 secrets engine.
//
// Example secret, written with
// `vault kv put secret/cqgate/signing certificate=@chain.pem private_key=@key.pem`:
//
//	{"certificate": "-----BEGIN CERTIFICATE-----\n...", "private_key": "-----BEGIN PRIVATE KEY-----\n..."}
type VaultKV struct {
	// Client talks to Vault; see NewVaultClient.
	Client *api.Client
	// Mount is the KV v2 mount path; DefaultKVMount if empty.
	Mount string
	// Path is the secret's path inside the mount, e.g. "cqgate/signing".
	Path string
	// CertificateField names the field holding the PEM chain, leaf first;
	// DefaultCertificateField if empty.
	CertificateField string
	// PrivateKeyField names the field holding the PEM private key;
	// DefaultPrivateKeyField if empty.
	PrivateKeyField string
	// Clock stamps Material.LoadedAt; time.Now if nil.
	Clock func() time.Time
}

var _ Source = (*VaultKV)(nil)

func (v *VaultKV) mount() string {
	if m := strings.Trim(v.Mount, "/"); m != "" {
		return m
	}
	return DefaultKVMount
}

func (v *VaultKV) path() string { return strings.Trim(v.Path, "/") }

func (v *VaultKV) certField() string {
	if v.CertificateField != "" {
		return v.CertificateField
	}
	return DefaultCertificateField
}

func (v *VaultKV) keyField() string {
	if v.PrivateKeyField != "" {
		return v.PrivateKeyField
	}
	return DefaultPrivateKeyField
}

// String names the secret, never its content.
func (v *VaultKV) String() string {
	return fmt.Sprintf("vault-kv:%s/data/%s", v.mount(), v.path())
}

// Load reads the latest version of the secret with Client.KVv2(Mount).Get
// and parses it with ParsePEM. Material.Version is "kv:v<N>" for KV version
// N. A missing secret wraps api.ErrSecretNotFound; a permission error wraps
// *api.ResponseError. Errors name mount, path and field, never values.
func (v *VaultKV) Load(ctx context.Context) (*Material, error) {
	mount, path := v.mount(), v.path()
	if v.Client == nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: no Vault client configured", mount, path)
	}
	if path == "" {
		return nil, fmt.Errorf("keys: reading secret at %s/data/: secret path is empty", mount)
	}
	secret, err := v.Client.KVv2(mount).Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: %w", mount, path, err)
	}
	version := 0
	if secret.VersionMetadata != nil {
		version = secret.VersionMetadata.Version
	}
	if secret.Data == nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: latest version %d is deleted or destroyed", mount, path, version)
	}
	certField, keyField := v.certField(), v.keyField()
	certPEM, err := stringField(secret.Data, certField)
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: %w", mount, path, err)
	}
	keyPEM, err := stringField(secret.Data, keyField)
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: %w", mount, path, err)
	}
	m, err := parsePEM([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s (fields %q and %q): %w", mount, path, certField, keyField, err)
	}
	m.Version = fmt.Sprintf("kv:v%d", version)
	m.LoadedAt = now(v.Clock)
	return m, nil
}

func stringField(data map[string]any, name string) (string, error) {
	raw, ok := data[name]
	if !ok || raw == nil {
		return "", fmt.Errorf("field %q is missing", name)
	}
	s, ok := raw.(string)
	if !ok {
		// The type only: the value may be a secret put in the wrong field.
		return "", fmt.Errorf("field %q is %s, want a PEM string", name, jsonKind(raw))
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("field %q is empty", name)
	}
	return s, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
