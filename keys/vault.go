package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vault"
)

// VaultClient is what the Vault sources need of a Vault client;
// *vault.Client implements it.
type VaultClient interface {
	// ReadKV reads the current version of a KV v2 secret.
	ReadKV(ctx context.Context, mount, path string) (*vault.KVSecret, error)
	// KVVersion returns the current version of a KV v2 secret from its
	// metadata.
	KVVersion(ctx context.Context, mount, path string) (int, error)
	// ReadTransitKey reads a transit key (path: <mount>/keys/<key>).
	ReadTransitKey(ctx context.Context, path string) (*api.Secret, error)
	// TransitSign signs with a transit key (path: <mount>/sign/<key>).
	TransitSign(ctx context.Context, path string, body map[string]any) (*api.Secret, error)
}

var _ VaultClient = (*vault.Client)(nil)

// noClient reports a missing client, including a nil *vault.Client stored
// in the interface.
func noClient(c VaultClient) bool {
	if c == nil {
		return true
	}
	vc, ok := c.(*vault.Client)
	return ok && vc == nil
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
	// Client talks to Vault: a *vault.Client.
	Client VaultClient
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

var (
	_ Source    = (*VaultKV)(nil)
	_ Versioner = (*VaultKV)(nil)
)

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

// Load reads the current version of the secret with Client.ReadKV and
// parses it with ParsePEM. Material.Version is "kv:v<N>" for KV version N.
// A missing secret wraps vault.ErrSecretNotFound (api.ErrSecretNotFound), a
// deleted one vault.ErrSecretDeleted, an error answer *api.ResponseError.
// Errors name mount, path and field, never values or the token.
func (v *VaultKV) Load(ctx context.Context) (*Material, error) {
	mount, path := v.mount(), v.path()
	if noClient(v.Client) {
		return nil, fmt.Errorf("keys: reading secret at %s/data/%s: no Vault client configured", mount, path)
	}
	if path == "" {
		return nil, fmt.Errorf("keys: reading secret at %s/data/: secret path is empty", mount)
	}
	secret, err := v.Client.ReadKV(ctx, mount, path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
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
	m.Version = fmt.Sprintf("kv:v%d", secret.Version)
	m.LoadedAt = now(v.Clock)
	return m, nil
}

// Version returns "kv:v<N>" for the secret's current version N, from its
// metadata: one small request, for Holder.Watch.
func (v *VaultKV) Version(ctx context.Context) (string, error) {
	mount, path := v.mount(), v.path()
	if noClient(v.Client) {
		return "", fmt.Errorf("keys: reading secret metadata at %s/metadata/%s: no Vault client configured", mount, path)
	}
	n, err := v.Client.KVVersion(ctx, mount, path)
	if err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	return fmt.Sprintf("kv:v%d", n), nil
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
