package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/vault"
)

// buildInbound opens the audit trail and sets up caller authentication
// and the inbound TLS listener's configuration.
func (g *Gateway) buildInbound() error {
	in := g.cfg.Inbound
	if d := g.cfg.Audit.Destination; d != "none" {
		a, err := audit.Open(d)
		if err != nil {
			return fmt.Errorf("gateway: audit.destination: %w", err)
		}
		g.Audit = a
	}
	if in.TLS.CertFile != "" {
		st, err := callerauth.LoadServerTLS(callerauth.TLSFiles{CertFile: in.TLS.CertFile, KeyFile: in.TLS.KeyFile, ClientCAFile: in.TLS.ClientCAFile})
		if err != nil {
			return fmt.Errorf("gateway: inbound.tls: %w", err)
		}
		g.TLS = st
	}
	if in.Auth == callerauth.MethodAPIKey {
		var src callerauth.Source
		if in.APIKeysVault.Path != "" {
			src = &vaultAPIKeys{v: g.vault, mount: in.APIKeysVault.Mount, path: in.APIKeysVault.Path}
		}
		keys, err := callerauth.NewAPIKeys(in.APIKeys, src)
		if err != nil {
			return fmt.Errorf("gateway: inbound.api_keys: %w", err)
		}
		g.apiKeys = keys
	}
	if in.Auth == callerauth.MethodNone && in.AllowUnauthenticated {
		g.log.WithField("listen", g.cfg.Listen).Warn("gateway: inbound.auth is none and allow_unauthenticated is set: anyone who reaches this address can use cqgate's system account")
	}
	return nil
}

// vaultAPIKeys reads callers' API key hashes from a KV v2 secret whose
// fields are caller names.
type vaultAPIKeys struct {
	v           *vault.Client
	mount, path string
}

var _ callerauth.Source = (*vaultAPIKeys)(nil)

func (s *vaultAPIKeys) Load(ctx context.Context) (map[string]string, error) {
	if s.v == nil {
		return nil, errors.New("gateway: inbound.api_keys_vault needs Vault")
	}
	sec, err := s.v.ReadKV(ctx, s.mount, s.path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(sec.Data))
	for caller, v := range sec.Data {
		h, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("gateway: %s/%s: field %s is not a string", s.mount, s.path, caller)
		}
		out[caller] = h
	}
	return out, nil
}

// vaultAPIKey supplies the directory API key from a field of a KV v2
// secret, re-read every keyTTL so a rotated key is picked up.
type vaultAPIKey struct {
	v                  *vault.Client
	mount, path, field string
	clock              func() time.Time

	mu      sync.Mutex
	key     string
	fetched time.Time
}

var _ directory.APIKeySource = (*vaultAPIKey)(nil)

const keyTTL = 5 * time.Minute

func (s *vaultAPIKey) APIKey(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != "" && s.clock().Sub(s.fetched) < keyTTL {
		return s.key, nil
	}
	if s.v == nil {
		return "", errors.New("gateway: directory.api_key_vault needs Vault")
	}
	sec, err := s.v.ReadKV(ctx, s.mount, s.path)
	if err != nil {
		if s.key != "" {
			return s.key, nil // keep using the key read last; Vault is down
		}
		return "", err
	}
	key, _ := sec.Data[s.field].(string)
	if key == "" {
		return "", fmt.Errorf("gateway: %s/%s has no string field %q", s.mount, s.path, s.field)
	}
	s.key, s.fetched = key, s.clock()
	return key, nil
}
