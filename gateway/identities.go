package gateway

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// identity is one client identity: a signing key with its certificate
// chain, and the signer and exchanger that use it.
type identity struct {
	name      string
	holder    *keys.Holder
	signer    *assertion.Signer
	exchanger *assertion.Exchanger
	// watch is how often the key source is checked for a new version.
	watch time.Duration
}

// buildIdentities builds the default identity (keys and client) and every
// further one (identities). override replaces the default identity's key
// source.
func (g *Gateway) buildIdentities(override keys.Source, tokenClient *http.Client) (map[string]*identity, error) {
	cfg := g.cfg
	ids := make(map[string]*identity, 1+len(cfg.Identities))
	add := func(name string, k config.Keys, jku string, src keys.Source) error {
		if src == nil {
			var err error
			if src, err = g.keySource(k); err != nil {
				return fmt.Errorf("gateway: identity %s: %w", name, err)
			}
		}
		holder := keys.NewHolder(src, keys.HolderOptions{Clock: g.clock, Logger: g.log.WithField("identity", name),
			ExpiryWarning: g.expiryWarning(), OnReload: g.keyReloaded})
		signer := &assertion.Signer{Keys: holder, Clock: g.clock, Lifetime: cfg.Client.AssertionLifetime, Skew: cfg.Client.ClockSkew}
		ex := &assertion.Exchanger{Signer: signer, HTTPClient: tokenClient, Clock: g.clock, JKU: jku, Retry: assertion.RetryPolicy{
			Attempts:       cfg.Tokens.Retry.Attempts,
			InitialBackoff: cfg.Tokens.Retry.InitialBackoff,
			MaxBackoff:     cfg.Tokens.Retry.MaxBackoff,
		}}
		ids[name] = &identity{name: name, holder: holder, signer: signer, exchanger: ex, watch: k.WatchInterval}
		return nil
	}
	if err := add(config.DefaultIdentity, cfg.Keys, cfg.Client.JKU, override); err != nil {
		return nil, err
	}
	for name, id := range cfg.Identities {
		if err := add(name, id.Keys, id.JKU, nil); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// keySource builds the key source a keys block names.
func (g *Gateway) keySource(k config.Keys) (keys.Source, error) {
	switch k.Source {
	case "pem":
		return &keys.PEMFiles{CertificateFile: k.PEM.CertificateFile, PrivateKeyFile: k.PEM.PrivateKeyFile, Clock: g.clock}, nil
	case "vault":
		return &keys.VaultKV{Client: g.vault, Mount: k.Vault.Mount, Path: k.Vault.Path,
			CertificateField: k.Vault.CertificateField, PrivateKeyField: k.Vault.PrivateKeyField, Clock: g.clock}, nil
	case "transit":
		t := k.Transit
		return &keys.VaultTransit{Client: g.vault, Mount: t.Mount, Key: t.Key, CertMount: t.CertificateMount,
			CertPath: t.CertificatePath, CertificateField: t.CertificateField, Clock: g.clock}, nil
	}
	return nil, fmt.Errorf("keys.source %q needs a key supplied in memory", k.Source)
}

// readFile reads a small configuration file.
func readFile(path string) ([]byte, error) {
	return os.ReadFile(path)
}

// identityOf is the identity t's assertions are signed with.
func (g *Gateway) identityOf(t *tenant.Tenant) (*identity, error) {
	id, ok := g.identities[t.IdentityName()]
	if !ok {
		return nil, t.UnknownIdentity()
	}
	return id, nil
}

// tokens are the proxy's credentials: the token cache, every identity's
// exchanger, the metrics (when on).
func (g *Gateway) tokens() *proxy.Tokens {
	exchangers := make(map[string]*assertion.Exchanger, len(g.identities))
	for name, id := range g.identities {
		exchangers[name] = id.exchanger
	}
	var obs proxy.TokenObserver
	if g.Metrics != nil {
		obs = g.Metrics
	}
	return proxy.NewTokens(g.Tokens, exchangers, obs)
}

// registrations hands out client ids from store, registering with each
// identity's signer; auto lists the OIDs registered at first use.
func (g *Gateway) registrations(store tenant.RegistrationStore, auto map[string]bool) *tenant.UDAPRegistrations {
	u := g.cfg.UDAP
	rc := tenant.UDAPConfig{
		Store: store, Auto: auto,
		Registrars: make(map[string]*assertion.Registrar, len(g.identities)),
		Issuer:     u.Issuer, ClientName: u.ClientName, Contacts: u.Contacts,
		Logger: g.log, Issuers: map[string]string{}, TEFCA: g.tefcaCertification,
	}
	for name, id := range g.cfg.Identities {
		if id.Issuer != "" {
			rc.Issuers[name] = id.Issuer
		}
	}
	for name, id := range g.identities {
		rc.Registrars[name] = &assertion.Registrar{Signer: id.signer, HTTPClient: id.exchanger.HTTPClient, Clock: g.clock}
	}
	return tenant.NewUDAPRegistrations(rc)
}
