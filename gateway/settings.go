package gateway

import (
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/tenant"
)

// settings are the tenant settings the configuration gives.
type settings struct {
	defaults tenant.Settings
	orgs     map[string]tenant.Settings
	// autoRegister lists the OIDs registered with UDAP at first use.
	autoRegister map[string]bool
}

func orgSettings(cfg *config.Config) (*settings, error) {
	alg := func(s string) jose.SignatureAlgorithm {
		a, _ := assertion.SupportedAlgorithm(s) // validated with the config
		return a
	}
	out := &settings{
		defaults: tenant.Settings{
			Identity:     config.DefaultIdentity,
			ClientID:     cfg.Client.ClientID,
			Scope:        tenant.CanonicalScope(cfg.Client.Scope),
			FHIRVersions: cfg.Directory.FHIRVersions,
		},
		orgs:         make(map[string]tenant.Settings, len(cfg.Organizations)),
		autoRegister: map[string]bool{},
	}
	if cfg.Client.Algorithm != "" {
		out.defaults.Algorithm = alg(cfg.Client.Algorithm)
	}
	for oid, o := range cfg.Organizations {
		order, err := discovery.ParseOrder(o.DiscoveryOrder)
		if err != nil {
			return nil, fmt.Errorf("gateway: organizations.%s.discovery_order: %w", oid, err)
		}
		s := tenant.Settings{
			TokenURL: o.TokenURL,
			// Configured, else (TEFCA) the identity issued for the XP
			// configured as purpose of use, else the community's.
			Identity:       cfg.OrganizationIdentity(o),
			ClientID:       o.ClientID,
			Scope:          tenant.CanonicalScope(o.Scope),
			DiscoveryOrder: order,
			CernerOverride: o.CernerOverrideOAuthURIs,
			FHIRVersions:   o.FHIRVersions,
			AllowPrivate:   o.AllowPrivateAddresses,
		}
		if o.Community != "" {
			s.Community = o.Community
			if cm := cfg.UDAP.Communities[o.Community]; cm.IsTEFCA() {
				s.TEFCA = true
				s.ExchangePurposes = exchangePurposes(cfg, o.Community)
			}
		}
		for _, origin := range o.AllowedTokenOrigins {
			c, err := tenant.ParseOrigin(origin)
			if err != nil {
				return nil, fmt.Errorf("gateway: organizations.%s.allowed_token_origins: %w", oid, err)
			}
			s.AllowedTokenOrigins = append(s.AllowedTokenOrigins, c)
		}
		// An organization using another identity takes that identity's
		// client id and algorithm unless it sets its own.
		if id, ok := cfg.Identities[s.Identity]; ok {
			if s.ClientID == "" {
				s.ClientID = id.ClientID
			}
			if o.Algorithm == "" && id.Algorithm != "" {
				s.Algorithm = alg(id.Algorithm)
			}
		}
		if o.Algorithm != "" {
			s.Algorithm = alg(o.Algorithm)
		}
		// hl7-b2b when enabled, or once discovery finds verified UDAP
		// metadata when organization_id is set.
		if b2b := o.UDAP.B2B(); b2b != nil {
			s.UDAP, s.B2B, s.AllowedPurposes = o.UDAP.Enabled, b2b, o.UDAP.AllowedPurposes
		}
		if o.UDAP.Register == "auto" {
			out.autoRegister[oid] = true
		}
		out.orgs[oid] = s
	}
	return out, nil
}

// staticEntries turns organizations configured with a fhir_base into
// directory entries that never touch the network.
func staticEntries(orgs map[string]config.Organization) map[string]*directory.Organization {
	out := make(map[string]*directory.Organization)
	for oid, o := range orgs {
		if o.FHIRBase == "" {
			continue
		}
		name := o.Name
		if name == "" {
			name = oid
		}
		out[oid] = &directory.Organization{
			OID:    oid,
			Name:   name,
			Active: true,
			Endpoints: []directory.Endpoint{{
				ID:             "configured-fhir",
				Name:           "FHIR base from cqgate configuration",
				Address:        o.FHIRBase,
				ConnectionType: "hl7-fhir-rest",
				Transaction:    "FHIR REST",
				Status:         "active",
			}},
		}
	}
	return out
}
