package gateway

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/keys"
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
