package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/cmd/cqgate/internal/sandbox"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/tenant"
)

// startDev starts the sandbox and points cfg and opts at it; stop closes
// the sandbox.
func startDev(ctx context.Context, cfg *config.Config, opts *gateway.Options, log logrus.FieldLogger) (stop func(), err error) {
	sb, err := sandbox.Start(ctx, sandbox.Options{Logger: log.WithField("component", "sandbox")})
	if err != nil {
		return nil, err
	}
	devConfig(cfg, sb)
	opts.Keys = keys.NewStatic(sb.Material)
	// cqgate register -dev registers with the sandbox; with no
	// udap.registrations.path (no Vault in dev mode) the client ids it
	// hands out are kept in this process's memory only.
	if cfg.UDAP.Registrations.Path == "" {
		opts.Registrations = &tenant.MemoryRegistrations{}
	}
	return func() { _ = sb.Close() }, nil
}

// devConfig points cfg at the sandbox: its R4 directory, its client id and
// an in-memory key. Everything else keeps the file/env/flag values.
func devConfig(cfg *config.Config, sb *sandbox.Sandbox) {
	cfg.Directory.Flavor = "r4"
	cfg.Directory.URL = sb.DirectoryURL
	cfg.Directory.APIKey = sb.APIKey
	cfg.Directory.APIKeyIn = "header"
	cfg.Keys.Source = "static"
	cfg.Client.ClientID = sb.ClientID
	// UDAP registration: the sandbox certificate's URI SAN is the issuer.
	cfg.UDAP.Issuer = sb.UDAPIssuer
	if cfg.UDAP.ClientName == "" {
		cfg.UDAP.ClientName = "cqgate dev mode"
	}
	if len(cfg.UDAP.Contacts) == 0 {
		cfg.UDAP.Contacts = []string{"mailto:dev@" + sb.ClientID}
	}
	// The sandbox is plain http on loopback: allowed for it alone.
	if cfg.Organizations == nil {
		cfg.Organizations = map[string]config.Organization{}
	}
	o := cfg.Organizations[sandbox.OID]
	o.AllowPrivateAddresses = true
	cfg.Organizations[sandbox.OID] = o
}

// printDevBanner tells a newcomer what to try.
func printDevBanner(w io.Writer, addr string) {
	fmt.Fprintf(w, "cqgate dev mode on http://%s (sandbox tenant OID %s)\n", addr, sandbox.OID)
	fmt.Fprintf(w, "  curl http://%s/fhir/%s/Patient/1316024\n", addr, sandbox.OID)
	fmt.Fprintf(w, "  curl 'http://%s/fhir/%s/Patient?name=peters'\n", addr, sandbox.OID)
	fmt.Fprintf(w, "  curl http://%s/directory/Organization/%s\n", addr, sandbox.OID)
	fmt.Fprintf(w, "  curl 'http://%s/directory/Organization?name=cqgate'\n", addr)
}
