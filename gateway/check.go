package gateway

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/keys"
)

// Check returns every problem New would refuse cfg for that
// config.Validate does not see, without connecting anywhere and without
// creating anything, so that cqgate -check and the start report them
// all at once: the Vault client's own checks (a login method's
// credentials present and readable, no credentials of another method),
// each prefixed "vault."; and the files New reads or opens: the audit
// file, the inbound TLS certificate, key and client CAs, the UDAP trust
// anchors, and the PEM signing keys and chains (keys.source: pem), each
// prefixed with its configuration key.
func Check(cfg *config.Config) []string {
	var out []string
	if needsVault(cfg) {
		for _, err := range vault.Check(vaultConfig(cfg.Vault)) {
			out = append(out, "vault."+err.Error())
		}
	}
	return append(out, checkFiles(cfg)...)
}

// checkFiles reads the files New reads, as New reads them, and opens
// none for writing that does not exist yet (audit.Check).
func checkFiles(cfg *config.Config) []string {
	var out []string
	add := func(key string, err error) {
		for _, e := range flatten(err) {
			out = append(out, key+": "+e.Error())
		}
	}
	if d := cfg.Audit.Destination; d != "none" {
		add("audit.destination", audit.Check(d))
	}
	if t := cfg.Inbound.TLS; t.CertFile != "" {
		_, err := callerauth.LoadServerTLS(callerauth.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile})
		add("inbound.tls", err)
	}
	if f := cfg.Discovery.UDAPTrustAnchors; f != "" {
		_, err := readTrustAnchors(f)
		add("discovery.udap_trust_anchors", err)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.UDAP.Communities)) {
		_, err := readTrustAnchors(cfg.UDAP.Communities[name].TrustAnchors...)
		add(fmt.Sprintf("udap.communities.%s.trust_anchors", name), err)
	}
	add("keys.pem", checkPEMKeys(cfg.Keys))
	for _, name := range slices.Sorted(maps.Keys(cfg.Identities)) {
		add(fmt.Sprintf("identities.%s.keys.pem", name), checkPEMKeys(cfg.Identities[name].Keys))
	}
	return out
}

// checkPEMKeys loads the signing key and chain of a keys.source: pem, as
// the key holder loads them at start (the key matches the leaf, the
// chain can be put in certification order); nil for other sources, which
// -check does not connect to. Its errors name the files, never their
// content.
func checkPEMKeys(k config.Keys) error {
	if k.Source != "pem" {
		return nil
	}
	f := &keys.PEMFiles{CertificateFile: k.PEM.CertificateFile, PrivateKeyFile: k.PEM.PrivateKeyFile}
	_, err := f.Load(context.Background())
	return err
}

// flatten lists the errors an errors.Join holds (err itself otherwise;
// none for nil).
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
