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

// KV is the secret store VaultRegistrations uses (Vault KV v2);
// *vault.Client is one.
type KV interface {
	ReadKV(ctx context.Context, mount, path string) (*vault.KVSecret, error)
	WriteKV(ctx context.Context, mount, path string, data map[string]any, opts ...vault.WriteOption) (int, error)
}

// VaultRegistrations keeps registrations in Vault, one KV v2 secret per
// OID under Path, so that every replica uses the same client id
// (udap.registrations).
type VaultRegistrations struct {
	// KV is Vault; nil refuses every read and write.
	KV          KV
	Mount, Path string
}

var _ RegistrationStore = (*VaultRegistrations)(nil)

var errNeedsVault = errors.New("tenant: udap.registrations needs Vault")

func (v *VaultRegistrations) secretPath(oid string) string {
	return strings.Trim(v.Path, "/") + "/" + oid
}

// ClientID implements RegistrationStore.
func (v *VaultRegistrations) ClientID(ctx context.Context, oid string) (string, error) {
	if v.KV == nil {
		return "", errNeedsVault
	}
	s, err := v.KV.ReadKV(ctx, v.Mount, v.secretPath(oid))
	if errors.Is(err, vault.ErrSecretNotFound) || errors.Is(err, vault.ErrSecretDeleted) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id, _ := s.Data["client_id"].(string)
	return id, nil
}

// Store implements RegistrationStore.
func (v *VaultRegistrations) Store(ctx context.Context, oid string, r StoredRegistration) error {
	if v.KV == nil {
		return errNeedsVault
	}
	_, err := v.KV.WriteKV(ctx, v.Mount, v.secretPath(oid), map[string]any{
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

// UDAPConfig configures UDAPRegistrations.
type UDAPConfig struct {
	// Store keeps the client ids.
	Store RegistrationStore
	// Auto lists the OIDs registered at first use (register: auto).
	Auto map[string]bool
	// Registrars register with the signer of each identity, by name.
	Registrars map[string]*assertion.Registrar
	// Issuer, ClientName and Contacts go in the software statement.
	Issuer, ClientName string
	Contacts           []string
	Logger             logrus.FieldLogger
	// Issuers are the URI SANs identities register as, by identity name,
	// where they differ from Issuer.
	Issuers map[string]string
	// TEFCA, when set, returns the TEFCA Basic App Certification the
	// registration of a tenant of the TEFCA community carries.
	TEFCA func(*Tenant) *assertion.TEFCACertification
}

// UDAPRegistrations hands out registered client ids from a store, and
// registers at first use for the OIDs in Auto.
type UDAPRegistrations struct {
	cfg UDAPConfig

	mu     sync.RWMutex
	known  map[string]string
	flight singleflight.Group
}

var _ Registrations = (*UDAPRegistrations)(nil)

// NewUDAPRegistrations returns registrations as cfg says.
func NewUDAPRegistrations(cfg UDAPConfig) *UDAPRegistrations {
	if cfg.Logger == nil {
		cfg.Logger = logrus.New()
	}
	return &UDAPRegistrations{cfg: cfg}
}

// ClientID returns t's registered client id: from memory, else from the
// store, else (with register: auto) by registering now.
func (r *UDAPRegistrations) ClientID(ctx context.Context, t *Tenant) (string, error) {
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
func (r *UDAPRegistrations) read(ctx context.Context, oid string) (string, error) {
	id, err := r.cfg.Store.ClientID(ctx, oid)
	if err != nil {
		return "", err
	}
	if id != "" {
		r.remember(oid, id)
	}
	return id, nil
}

func (r *UDAPRegistrations) remember(oid, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]string{}
	}
	r.known[oid] = id
}

// Register registers cqgate with t's registration endpoint and stores
// the client id it answers.
func (r *UDAPRegistrations) Register(ctx context.Context, t *Tenant) (*assertion.Registered, error) {
	if t.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("tenant: %s advertises no UDAP registration endpoint (discovery found none)", t.OID)
	}
	registrar, ok := r.cfg.Registrars[t.IdentityName()]
	if !ok {
		return nil, t.UnknownIdentity()
	}
	issuer := r.cfg.Issuer
	if is := r.cfg.Issuers[t.IdentityName()]; is != "" {
		issuer = is
	}
	var tefca *assertion.TEFCACertification
	if t.TEFCA && r.cfg.TEFCA != nil {
		tefca = r.cfg.TEFCA(t)
	}
	reg, err := registrar.Register(ctx, assertion.Registration{
		URL:        t.RegistrationEndpoint,
		Issuer:     issuer,
		TEFCA:      tefca,
		ClientName: r.cfg.ClientName,
		Contacts:   r.cfg.Contacts,
		Scope:      t.Scope,
		Algorithm:  t.Algorithm,
		// The registration endpoint's own algorithms
		// (registration_endpoint_jwt_signing_alg_values_supported),
		// which need not be the token endpoint's: a server whose token
		// endpoint takes RS384 and RS256 but whose registration
		// endpoint takes RS256 alone gets an RS256 software statement.
		// Without that list, the token endpoint's; without either,
		// Negotiate's default rules.
		Accepted: t.RegistrationAlgorithms(),
	})
	if err != nil {
		return nil, err
	}
	if err := r.cfg.Store.Store(ctx, t.OID, StoredRegistration{
		ClientID: reg.ClientID, RegistrationEndpoint: t.RegistrationEndpoint, RegisteredAt: reg.At,
	}); err != nil {
		return nil, fmt.Errorf("tenant: registered %s as client %s but could not store it: %w", t.OID, reg.ClientID, err)
	}
	r.remember(t.OID, reg.ClientID)
	r.cfg.Logger.WithField("oid", t.OID).WithField("client_id", reg.ClientID).Info("tenant: registered with UDAP")
	return reg, nil
}
