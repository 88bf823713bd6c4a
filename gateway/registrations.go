package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/tenant"
)

// RegistrationStore keeps the client ids that UDAP dynamic client
// registration handed out, by OID.
type RegistrationStore interface {
	// ClientID returns the client id stored for oid, "" when there is
	// none.
	ClientID(ctx context.Context, oid string) (string, error)
	// Store keeps a registration.
	Store(ctx context.Context, oid string, r StoredRegistration) error
}

// StoredRegistration is what is kept of one registration.
type StoredRegistration struct {
	ClientID             string
	RegistrationEndpoint string
	RegisteredAt         time.Time
}

// vaultRegistrations keeps registrations in Vault, one KV v2 secret per
// OID under path, so that every replica uses the same client id
// (udap.registrations).
type vaultRegistrations struct {
	g           *Gateway
	mount, path string
}

var _ RegistrationStore = (*vaultRegistrations)(nil)

func (v *vaultRegistrations) secretPath(oid string) string {
	return strings.Trim(v.path, "/") + "/" + oid
}

func (v *vaultRegistrations) ClientID(ctx context.Context, oid string) (string, error) {
	if v.g.vault == nil {
		return "", errors.New("gateway: udap.registrations needs Vault")
	}
	s, err := v.g.vault.ReadKV(ctx, v.mount, v.secretPath(oid))
	if errors.Is(err, vault.ErrSecretNotFound) || errors.Is(err, vault.ErrSecretDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id, _ := s.Data["client_id"].(string)
	return id, nil
}

func (v *vaultRegistrations) Store(ctx context.Context, oid string, r StoredRegistration) error {
	if v.g.vault == nil {
		return errors.New("gateway: udap.registrations needs Vault")
	}
	_, err := v.g.vault.WriteKV(ctx, v.mount, v.secretPath(oid), map[string]any{
		"client_id":             r.ClientID,
		"registration_endpoint": r.RegistrationEndpoint,
		"registered_at":         r.RegisteredAt.UTC().Format(time.RFC3339),
	})
	return err
}

// MemoryRegistrations keeps registrations in this process only: for dev
// mode and tests, never for replicas that must agree on a client id.
type MemoryRegistrations struct {
	mu   sync.Mutex
	regs map[string]StoredRegistration
}

var _ RegistrationStore = (*MemoryRegistrations)(nil)

// ClientID implements RegistrationStore.
func (m *MemoryRegistrations) ClientID(_ context.Context, oid string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.regs[oid].ClientID, nil
}

// Store implements RegistrationStore.
func (m *MemoryRegistrations) Store(_ context.Context, oid string, r StoredRegistration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.regs == nil {
		m.regs = map[string]StoredRegistration{}
	}
	m.regs[oid] = r
	return nil
}

// registrations hands out registered client ids from a store, and
// registers at first use for the OIDs in auto.
type registrations struct {
	g     *Gateway
	store RegistrationStore
	auto  map[string]bool

	mu     sync.RWMutex
	known  map[string]string
	flight singleflight.Group
}

var _ tenant.Registrations = (*registrations)(nil)

// ClientID returns t's registered client id: from memory, else from
// Vault, else (with register: auto) by registering now.
func (r *registrations) ClientID(ctx context.Context, t *tenant.Tenant) (string, error) {
	r.mu.RLock()
	id, ok := r.known[t.OID]
	r.mu.RUnlock()
	if ok {
		return id, nil
	}
	v, err, _ := r.flight.Do(t.OID, func() (any, error) {
		id, err := r.read(ctx, t.OID)
		if err != nil || id != "" || !r.auto[t.OID] {
			return id, err
		}
		reg, err := r.register(ctx, t)
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
func (r *registrations) read(ctx context.Context, oid string) (string, error) {
	id, err := r.store.ClientID(ctx, oid)
	if err != nil {
		return "", err
	}
	if id != "" {
		r.remember(oid, id)
	}
	return id, nil
}

func (r *registrations) remember(oid, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]string{}
	}
	r.known[oid] = id
}

// register registers cqgate with t's registration endpoint and stores the
// client id it answers.
func (r *registrations) register(ctx context.Context, t *tenant.Tenant) (*assertion.Registered, error) {
	if t.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("gateway: %s advertises no UDAP registration endpoint (discovery found none)", t.OID)
	}
	id, ok := r.g.identities[identityName(t)]
	if !ok {
		return nil, fmt.Errorf("gateway: %s uses identity %q, which is not configured", t.OID, identityName(t))
	}
	u := r.g.cfg.UDAP
	registrar := &assertion.Registrar{Signer: id.signer, HTTPClient: id.exchanger.HTTPClient, Clock: r.g.clock}
	reg, err := registrar.Register(ctx, assertion.Registration{
		URL:        t.RegistrationEndpoint,
		Issuer:     r.g.identityIssuer(identityName(t)),
		ClientName: u.ClientName,
		Contacts:   u.Contacts,
		Scope:      t.Scope,
		Algorithm:  t.Algorithm,
		TEFCA:      r.g.tefcaCertification(t),
	})
	if err != nil {
		return nil, err
	}
	if err := r.store.Store(ctx, t.OID, StoredRegistration{
		ClientID: reg.ClientID, RegistrationEndpoint: t.RegistrationEndpoint, RegisteredAt: reg.At,
	}); err != nil {
		return nil, fmt.Errorf("gateway: registered %s as client %s but could not store it: %w", t.OID, reg.ClientID, err)
	}
	r.remember(t.OID, reg.ClientID)
	r.g.log.WithField("oid", t.OID).WithField("client_id", reg.ClientID).Info("gateway: registered with UDAP")
	return reg, nil
}
