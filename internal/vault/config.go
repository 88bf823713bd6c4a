package vault

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Auth methods for AuthConfig.Method.
const (
	MethodToken      = "token"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
)

// Defaults for empty Config and AuthConfig fields.
const (
	// DefaultTimeout bounds each request to Vault when neither
	// Config.Timeout nor VAULT_CLIENT_TIMEOUT is set.
	DefaultTimeout = 10 * time.Second
	// DefaultServiceAccountTokenFile is where Kubernetes mounts the pod's
	// service account token.
	DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// maxCredentialFile bounds what is read of a token, secret ID or service
// account token file.
const maxCredentialFile = 64 << 10

// Config says how to reach Vault and log in. Empty fields leave what
// api.DefaultConfig() found in the environment (VAULT_ADDR,
// VAULT_AGENT_ADDR, VAULT_CACERT, VAULT_CLIENT_TIMEOUT, VAULT_NAMESPACE, ...)
// in place.
//
// String and GoString never print credentials, so a Config is safe to log.
type Config struct {
	// Address is Vault's URL, e.g. "https://vault.example.org:8200";
	// VAULT_ADDR (or VAULT_AGENT_ADDR) when empty. One of them must be set:
	// the library's built-in default address is never used silently.
	Address string
	// Namespace is the Vault Enterprise namespace, if any.
	Namespace string
	// CACert is a PEM file of CA certificates to verify Vault's TLS
	// certificate with.
	CACert string
	// Timeout bounds each request to Vault; VAULT_CLIENT_TIMEOUT, else
	// DefaultTimeout, when zero.
	Timeout time.Duration
	// Auth says how to log in.
	Auth AuthConfig
}

// AuthConfig says how the client logs in to Vault.
type AuthConfig struct {
	// Method is MethodToken (the default when empty), MethodAppRole or
	// MethodKubernetes.
	Method string

	// Token is the token for MethodToken. It takes precedence over
	// TokenFile and VAULT_TOKEN.
	Token string
	// TokenFile names a file holding the token (e.g. a Vault Agent sink);
	// surrounding white space is trimmed. Read at every login; used when
	// Token is empty. VAULT_TOKEN is used when both are empty.
	TokenFile string

	// Mount is the auth method's mount path, without "auth/";
	// "approle" or "kubernetes" by default.
	Mount string

	// RoleID is the AppRole role ID.
	RoleID string
	// SecretID is the AppRole secret ID; set it or SecretIDFile, not both.
	// Response-wrapped secret IDs are not supported.
	SecretID string
	// SecretIDFile names a file holding the secret ID; surrounding white
	// space is trimmed. Read at every login.
	SecretIDFile string

	// Role is the Kubernetes auth role.
	Role string
	// ServiceAccountTokenFile names the file holding the pod's service
	// account JWT; DefaultServiceAccountTokenFile when empty. Read at
	// every login, so a projected token the kubelet rotates is picked up.
	ServiceAccountTokenFile string
}

func (a AuthConfig) method() string {
	if m := strings.ToLower(strings.TrimSpace(a.Method)); m != "" {
		return m
	}
	return MethodToken
}

func (a AuthConfig) mount() string {
	if m := strings.Trim(strings.TrimPrefix(strings.Trim(a.Mount, "/"), "auth/"), "/"); m != "" {
		return m
	}
	switch a.method() {
	case MethodAppRole:
		return "approle"
	case MethodKubernetes:
		return "kubernetes"
	}
	return "token"
}

func (a AuthConfig) serviceAccountTokenFile() string {
	if a.ServiceAccountTokenFile != "" {
		return a.ServiceAccountTokenFile
	}
	return DefaultServiceAccountTokenFile
}

// String describes the configuration with credentials redacted.
func (c Config) String() string {
	return fmt.Sprintf("vault.Config{Address:%q Namespace:%q CACert:%q Timeout:%s Auth:%s}",
		c.Address, c.Namespace, c.CACert, c.Timeout, c.Auth)
}

// GoString is String, so that %#v does not print credentials either.
func (c Config) GoString() string { return c.String() }

// String describes the auth configuration with the token, role ID and
// secret ID redacted.
func (a AuthConfig) String() string {
	return fmt.Sprintf("vault.AuthConfig{Method:%s Mount:%s Token:%s TokenFile:%q RoleID:%s SecretID:%s SecretIDFile:%q Role:%q ServiceAccountTokenFile:%q}",
		a.method(), a.mount(), redacted(a.Token), a.TokenFile, redacted(a.RoleID), redacted(a.SecretID), a.SecretIDFile, a.Role, a.ServiceAccountTokenFile)
}

// GoString is String.
func (a AuthConfig) GoString() string { return a.String() }

func redacted(s string) string {
	if s == "" {
		return "<unset>"
	}
	return "<redacted>"
}

// Check returns every problem New would refuse cfg for, without
// connecting to Vault: for a configuration check before starting
// (cqgate -check). It reads the credential files to check them, never
// printing their content.
func Check(cfg Config) []error {
	problems := validate(cfg)
	if cfg.CACert != "" {
		if err := api.DefaultConfig().ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			problems = append(problems, fmt.Errorf("ca_cert: loading %s: %w", cfg.CACert, err))
		}
	}
	return problems
}

// validate checks cfg against itself and the environment and returns every
// problem. It reads the credential files to check them, never printing
// their content.
func validate(cfg Config) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	if cfg.Address == "" && os.Getenv(api.EnvVaultAddress) == "" && os.Getenv(api.EnvVaultAgentAddr) == "" {
		add("address: missing (set Address or VAULT_ADDR)")
	}
	if cfg.Timeout < 0 {
		add("timeout: %s is negative", cfg.Timeout)
	}

	a := cfg.Auth
	unused := func(method string, fields ...[2]string) {
		for _, f := range fields {
			if f[1] != "" {
				add("auth: %s is set but the method is %s", f[0], method)
			}
		}
	}
	switch m := a.method(); m {
	case MethodToken:
		switch {
		case a.Token != "":
		case a.TokenFile != "":
			if _, err := readCredentialFile(a.TokenFile); err != nil {
				add("auth: token file: %w", err)
			}
		case os.Getenv(api.EnvVaultToken) == "":
			add("auth: token missing (set Token, TokenFile or VAULT_TOKEN)")
		}
		unused(m, [2]string{"role_id", a.RoleID}, [2]string{"secret_id", a.SecretID}, [2]string{"secret_id_file", a.SecretIDFile},
			[2]string{"role", a.Role}, [2]string{"service_account_token_file", a.ServiceAccountTokenFile})
	case MethodAppRole:
		if a.RoleID == "" {
			add("auth: approle needs a role_id")
		}
		switch {
		case a.SecretID != "" && a.SecretIDFile != "":
			add("auth: approle takes secret_id or secret_id_file, not both")
		case a.SecretID == "" && a.SecretIDFile == "":
			add("auth: approle needs a secret_id or secret_id_file")
		case a.SecretIDFile != "":
			if _, err := readCredentialFile(a.SecretIDFile); err != nil {
				add("auth: secret ID file: %w", err)
			}
		}
		unused(m, [2]string{"token", a.Token}, [2]string{"token_file", a.TokenFile},
			[2]string{"role", a.Role}, [2]string{"service_account_token_file", a.ServiceAccountTokenFile})
	case MethodKubernetes:
		if a.Role == "" {
			add("auth: kubernetes needs a role")
		}
		if _, err := readCredentialFile(a.serviceAccountTokenFile()); err != nil {
			add("auth: service account token file: %w", err)
		}
		unused(m, [2]string{"token", a.Token}, [2]string{"token_file", a.TokenFile},
			[2]string{"role_id", a.RoleID}, [2]string{"secret_id", a.SecretID}, [2]string{"secret_id_file", a.SecretIDFile})
	default:
		add("auth: method %q is not one of %s, %s, %s", a.Method, MethodToken, MethodAppRole, MethodKubernetes)
	}
	return problems
}

// readCredentialFile reads a token-like file: bounded, white space
// trimmed, empty refused. Errors name the file, never its content.
func readCredentialFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // *fs.PathError: "open <path>: <reason>"
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxCredentialFile {
		return "", fmt.Errorf("%s is larger than %d KiB; not a credential", path, maxCredentialFile>>10)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ErrNotLoggedIn is wrapped by requests made before any login succeeded,
// and by Ready's error.
var ErrNotLoggedIn = errors.New("not logged in to Vault")
