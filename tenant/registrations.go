package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/vault"
)

// KV is the secret store registered client ids are kept in (Vault KV v2);
// *vault.Client is one.
type KV interface {
	ReadKV(ctx context.Context, mount, path string) (*vault.KVSecret, error)
	WriteKV(ctx context.Context, mount, path string, data map[string]any, opts ...vault.WriteOption) (int, error)
}

// RegistrationsConfig configures VaultRegistrations.
type RegistrationsConfig struct {
	// KV keeps one secret per OID under Mount and Path; nil refuses
	// every read and registration (udap.registrations needs Vault).
	KV          KV
	Mount, Path string
	// Auto lists the OIDs registered at first use (register: auto).
	Auto map[string]bool
	// Registrars register with the signer of each identity, by name.
	Registrars map[string]*assertion.Registrar
	// Issuer, ClientName and Contacts go in the software statement.
	Issuer, ClientName string
	Contacts           []string
	Logger             logrus.FieldLogger
}

// VaultRegistrations keeps the client ids UDAP dynamic client
// registration handed out, one KV v2 secret per OID, so that every
// replica uses the same client id. It registers at first use for the
// OIDs in Auto.
type VaultRegistrations struct {
	cfg RegistrationsConfig

	mu     sync.RWMutex
	known  map[string]string
	flight singleflight.Group
}

var _ Registrations = (*VaultRegistrations)(nil)

// NewVaultRegistrations returns registrations kept as cfg says.
func NewVaultRegistrations(cfg RegistrationsConfig) *VaultRegistrations {
	if cfg.Logger == nil {
		cfg.Logger = logrus.New()
	}
	return &VaultRegistrations{cfg: cfg}
}

var errNeedsVault = errors.New("tenant: udap.registrations needs Vault")

func (r *VaultRegistrations) secretPath(oid string) string {
	return strings.Trim(r.cfg.Path, "/") + "/" + oid
}

// ClientID returns t's registered client id: from memory, else from
// Vault, else (with register: auto) by registering now.
func (r *VaultRegistrations) ClientID(ctx context.Context, t *Tenant) (string, error) {
	r.mu.RLock()
	id, ok := r.known[t.OID]
	r.mu.RUnlock()
	if ok {
		return id, nil
	}
	v, err, _ := r.flight.Do(t.OID, func() (any, error) {
		id, err := r.read(ctx, t.OID)
		if err != nil || id != "" || !r.cfg.Auto[t.OID] {
			return id, err
		}
		reg, err := r.Register(ctx, t)
		if err != nil {
			return "", err
		}
		return reg.ClientID, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// read returns the client id stored for oid, "" when there is none.
func (r *VaultRegistrations) read(ctx context.Context, oid string) (string, error) {
	if r.cfg.KV == nil {
		return "", errNeedsVault
	}
	s, err := r.cfg.KV.ReadKV(ctx, r.cfg.Mount, r.secretPath(oid))
	if errors.Is(err, vault.ErrSecretNotFound) || errors.Is(err, vault.ErrSecretDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id, _ := s.Data["client_id"].(string)
	if id != "" {
		r.remember(oid, id)
	}
	return id, nil
}

func (r *VaultRegistrations) remember(oid, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]string{}
	}
	r.known[oid] = id
}

// Register registers cqgate with t's registration endpoint and stores
// the client id it answers.
func (r *VaultRegistrations) Register(ctx context.Context, t *Tenant) (*assertion.Registered, error) {
	if t.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("tenant: %s advertises no UDAP registration endpoint (discovery found none)", t.OID)
	}
	registrar, ok := r.cfg.Registrars[t.IdentityName()]
	if !ok {
		return nil, fmt.Errorf("tenant: %s uses identity %q, which is not configured", t.OID, t.IdentityName())
	}
	reg, err := registrar.Register(ctx, assertion.Registration{
		URL:        t.RegistrationEndpoint,
		Issuer:     r.cfg.Issuer,
		ClientName: r.cfg.ClientName,
		Contacts:   r.cfg.Contacts,
		Scope:      t.Scope,
		Algorithm:  t.Algorithm,
	})
	if err != nil {
		return nil, err
	}
	if r.cfg.KV == nil {
		return nil, errNeedsVault
	}
	if _, err := r.cfg.KV.WriteKV(ctx, r.cfg.Mount, r.secretPath(t.OID), map[string]any{
		"client_id":             reg.ClientID,
		"registration_endpoint": t.RegistrationEndpoint,
		"registered_at":         reg.At.UTC().Format(time.RFC3339),
	}); err != nil {
		return nil, fmt.Errorf("tenant: registered %s as client %s but could not store it: %w", t.OID, reg.ClientID, err)
	}
	r.remember(t.OID, reg.ClientID)
	r.cfg.Logger.WithField("oid", t.OID).WithField("client_id", reg.ClientID).Info("tenant: registered with UDAP")
	return reg, nil
}
