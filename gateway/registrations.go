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

// registrations keeps the client ids UDAP dynamic client registration
// handed out, one KV v2 secret per OID under path, so that every replica
// uses the same client id. It registers at first use for the OIDs in auto.
type registrations struct {
	g           *Gateway
	mount, path string
	auto        map[string]bool

	mu     sync.RWMutex
	known  map[string]string
	flight singleflight.Group
}

var _ tenant.Registrations = (*registrations)(nil)

func (r *registrations) secretPath(oid string) string {
	return strings.Trim(r.path, "/") + "/" + oid
}

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
	if r.g.vault == nil {
		return "", errors.New("gateway: udap.registrations needs Vault")
	}
	s, err := r.g.vault.ReadKV(ctx, r.mount, r.secretPath(oid))
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
	if r.g.vault == nil {
		return nil, errors.New("gateway: udap.registrations needs Vault")
	}
	if _, err := r.g.vault.WriteKV(ctx, r.mount, r.secretPath(t.OID), map[string]any{
		"client_id":             reg.ClientID,
		"registration_endpoint": t.RegistrationEndpoint,
		"registered_at":         reg.At.UTC().Format(time.RFC3339),
	}); err != nil {
		return nil, fmt.Errorf("gateway: registered %s as client %s but could not store it: %w", t.OID, reg.ClientID, err)
	}
	r.remember(t.OID, reg.ClientID)
	r.g.log.WithField("oid", t.OID).WithField("client_id", reg.ClientID).Info("gateway: registered with UDAP")
	return reg, nil
}
