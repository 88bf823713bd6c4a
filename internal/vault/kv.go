package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Errors returned (wrapped) by the KV methods.
var (
	// ErrSecretNotFound means there is no secret at the path (or the mount
	// does not exist). It is api.ErrSecretNotFound.
	ErrSecretNotFound = api.ErrSecretNotFound
	// ErrSecretDeleted means the secret's current version is deleted or
	// destroyed.
	ErrSecretDeleted = errors.New("the current version is deleted or destroyed")
)

// KVSecret is one version of a KV v2 secret.
type KVSecret struct {
	// Data is the secret's key/value data. Numbers are json.Number.
	Data map[string]any
	// Version is the version number, counting from 1.
	Version int
	// CreatedTime is when the version was written.
	CreatedTime time.Time
}

// String names the version, never the data.
func (s KVSecret) String() string {
	return fmt.Sprintf("vault.KVSecret{Version:%d CreatedTime:%s Fields:%d}", s.Version, s.CreatedTime.UTC().Format(time.RFC3339), len(s.Data))
}

// GoString is String.
func (s KVSecret) GoString() string { return s.String() }

// ReadKV reads the current version of the secret at path in the KV v2
// engine mounted at mount (GET /v1/<mount>/data/<path>). A missing secret
// wraps ErrSecretNotFound, a deleted or destroyed current version
// ErrSecretDeleted, an error answer *api.ResponseError. Errors name the
// path, never the token or the data.
func (c *Client) ReadKV(ctx context.Context, mount, path string) (_ *KVSecret, err error) {
	defer c.observe(OpKVRead, &err)
	full := kvPath(mount, "data", path)
	if err := c.checkLoggedIn(); err != nil {
		return nil, fmt.Errorf("vault: reading secret at %s: %w", full, err)
	}
	s, err := c.api.Logical().ReadWithContext(ctx, full)
	if err != nil {
		return nil, fmt.Errorf("vault: reading secret at %s: %w", full, err)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("vault: reading secret at %s: %w", full, ErrSecretNotFound)
	}
	out := &KVSecret{}
	if md, ok := s.Data["metadata"].(map[string]any); ok {
		out.Version, _ = intOf(md["version"])
		if ct, ok := md["created_time"].(string); ok {
			out.CreatedTime, _ = time.Parse(time.RFC3339Nano, ct)
		}
		deleted, _ := md["deletion_time"].(string)
		destroyed, _ := md["destroyed"].(bool)
		if deleted != "" || destroyed {
			return nil, fmt.Errorf("vault: reading secret at %s: version %d: %w", full, out.Version, ErrSecretDeleted)
		}
	}
	switch data := s.Data["data"].(type) {
	case map[string]any:
		out.Data = data
	case nil:
		return nil, fmt.Errorf("vault: reading secret at %s: version %d: %w", full, out.Version, ErrSecretDeleted)
	default:
		return nil, fmt.Errorf("vault: reading secret at %s: \"data\" is %T, not an object; is %s a KV version 2 mount?", full, data, strings.Trim(mount, "/"))
	}
	return out, nil
}

// KVVersion returns the current version of the secret at path in the KV v2
// engine mounted at mount, from its metadata (GET
// /v1/<mount>/metadata/<path>): a small request that tells whether the
// secret changed. The token's policy needs "read" on the metadata path.
func (c *Client) KVVersion(ctx context.Context, mount, path string) (_ int, err error) {
	defer c.observe(OpKVMetadata, &err)
	full := kvPath(mount, "metadata", path)
	if err := c.checkLoggedIn(); err != nil {
		return 0, fmt.Errorf("vault: reading secret metadata at %s: %w", full, err)
	}
	s, err := c.api.Logical().ReadWithContext(ctx, full)
	if err != nil {
		return 0, fmt.Errorf("vault: reading secret metadata at %s: %w", full, err)
	}
	if s == nil || s.Data == nil {
		return 0, fmt.Errorf("vault: reading secret metadata at %s: %w", full, ErrSecretNotFound)
	}
	v, err := intOf(s.Data["current_version"])
	if err != nil {
		return 0, fmt.Errorf("vault: reading secret metadata at %s: current_version: %w", full, err)
	}
	return v, nil
}

// WriteOption adjusts a WriteKV.
type WriteOption func(map[string]any)

// CheckAndSet makes WriteKV succeed only if the secret's current version is
// version (0: only if the secret does not exist yet), so that replicas
// racing to write do not overwrite each other.
func CheckAndSet(version int) WriteOption {
	return func(o map[string]any) { o["cas"] = version }
}

// WriteKV writes data as a new version of the secret at path in the KV v2
// engine mounted at mount (POST /v1/<mount>/data/<path>) and returns the
// new version number.
func (c *Client) WriteKV(ctx context.Context, mount, path string, data map[string]any, opts ...WriteOption) (_ int, err error) {
	defer c.observe(OpKVWrite, &err)
	full := kvPath(mount, "data", path)
	if err := c.checkLoggedIn(); err != nil {
		return 0, fmt.Errorf("vault: writing secret at %s: %w", full, err)
	}
	if data == nil {
		data = map[string]any{}
	}
	body := map[string]any{"data": data}
	if len(opts) > 0 {
		o := map[string]any{}
		for _, opt := range opts {
			opt(o)
		}
		body["options"] = o
	}
	s, err := c.api.Logical().WriteWithContext(ctx, full, body)
	if err != nil {
		return 0, fmt.Errorf("vault: writing secret at %s: %w", full, err)
	}
	if s == nil || s.Data == nil {
		return 0, fmt.Errorf("vault: writing secret at %s: the answer holds no version", full)
	}
	v, err := intOf(s.Data["version"])
	if err != nil {
		return 0, fmt.Errorf("vault: writing secret at %s: version: %w", full, err)
	}
	return v, nil
}

func kvPath(mount, kind, path string) string {
	return strings.Trim(mount, "/") + "/" + kind + "/" + strings.Trim(path, "/")
}

func intOf(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(n.String())
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", n.String())
		}
		return i, nil
	case float64:
		return int(n), nil
	case int:
		return n, nil
	case nil:
		return 0, errors.New("missing")
	default:
		return 0, fmt.Errorf("is %T, not a number", v)
	}
}
