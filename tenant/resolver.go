package tenant

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
)

// Settings are the per-organization overrides from configuration. Empty
// fields fall back to the Resolver's defaults or to discovery.
type Settings struct {
	TokenURL string
	// Identity names the client identity; "" is the default one.
	Identity  string
	ClientID  string
	Scope     string
	Algorithm jose.SignatureAlgorithm
	// DiscoveryOrder is the precedence of discovery sources; nil is the
	// discoverer's default.
	DiscoveryOrder []discovery.Source
	// CernerOverride sends Cerner-Override-OAuth-URIs: on to /metadata.
	CernerOverride bool
	// FHIRVersions orders the preferred FHIR endpoint versions.
	FHIRVersions []string
	// AllowPrivate lets the FHIR base and token URL be http, loopback or
	// private.
	AllowPrivate bool
	// UDAP turns on UDAP B2B with this context; UDAPDiscovered turns it
	// on only when discovery finds verified UDAP metadata.
	UDAP            bool
	B2B             *assertion.B2B
	AllowedPurposes []string
	// AllowedTokenOrigins are origins (canonical, see ParseOrigin) a
	// discovered token URL or UDAP registration endpoint may be on
	// besides the FHIR base's own origin and registrable domain.
	AllowedTokenOrigins []string
	// Community names the UDAP trust community discovery verifies the
	// organization's metadata under; "" is the default one. TEFCA says
	// it is the TEFCA community, and ExchangePurposes are the identities
	// issued per TEFCA exchange purpose (XP code), for callers' choice.
	Community        string
	TEFCA            bool
	ExchangePurposes map[string]XPIdentity
}

// DirectoryLookup finds an OID's directory entry.
type DirectoryLookup interface {
	Lookup(ctx context.Context, oid string) (*directory.Entry, error)
}

// TokenDiscoverer finds a FHIR server's token endpoint.
type TokenDiscoverer interface {
	Discover(ctx context.Context, req discovery.Request) (*discovery.Result, error)
}

// Registrations knows the client ids UDAP registration handed out.
type Registrations interface {
	// ClientID returns the client id registered for t, or "" when there
	// is none (and none is to be made now).
	ClientID(ctx context.Context, t *Tenant) (string, error)
}

// Resolver resolves OIDs to Tenants.
type Resolver struct {
	Directory DirectoryLookup
	Discovery TokenDiscoverer
	// Registrations, when set, supplies client ids of UDAP tenants.
	Registrations Registrations
	// Defaults apply where an organization's Settings leave a field empty.
	Defaults Settings
	// Orgs are per-OID settings.
	Orgs map[string]Settings
}

// Resolve returns the tenant for a canonical (bare) OID.
// Its tenant is the one requests use (and the Reuser keeps), so it
// carries no descriptive copies: Endpoints, FHIREndpoint and Discovery
// are Describe's.
func (r *Resolver) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	t, tokenErr, err := r.describe(ctx, oid, false)
	if err != nil {
		return nil, err
	}
	if t.TokenURL == "" {
		// Describe only leaves it empty with discovery's error recorded.
		return nil, tokenErr
	}
	return t, nil
}

// Describe is Resolve for the lookup endpoint: it returns what is known
// even when token-URL discovery fails, with that failure in the returned
// Tenant's TokenURLError. Directory failures are still errors.
func (r *Resolver) Describe(ctx context.Context, oid string) (*Tenant, error) {
	t, _, err := r.describe(ctx, oid, true)
	return t, err
}

// describe is Describe, with the descriptive fields (Endpoints,
// FHIREndpoint, Discovery) only when full: a kept tenant would hold its
// own copy of the discovery attempts, 128 bytes per organization.
// tokenErr is why TokenURL is empty (TokenURLError in words), nil when
// it is set.
func (r *Resolver) describe(ctx context.Context, oid string, full bool) (t *Tenant, tokenErr error, err error) {
	entry, err := r.Directory.Lookup(ctx, oid)
	if err != nil {
		if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrInvalidOID) {
			return nil, nil, err
		}
		// Whatever else went wrong (status, transport, an unparsable
		// document) is the directory's failure, not the caller's.
		return nil, nil, failure.Errorf(failure.UpstreamFailed, "tenant: looking up %s in the directory: %w", oid, err)
	}
	s := r.settings(oid)
	t = &Tenant{
		party:           newParty(s.ExchangePurposes, s.AllowedTokenOrigins),
		OID:             keptOID(oid, entry),
		Name:            entry.Name(),
		Active:          entry.Active(),
		Identity:        s.Identity,
		ClientID:        s.ClientID,
		Scope:           CanonicalScope(s.Scope), // as WithScope writes a caller's
		Algorithm:       s.Algorithm,
		AllowPrivate:    s.AllowPrivate,
		AllowedPurposes: s.AllowedPurposes,
		Community:       s.Community,
		TEFCA:           s.TEFCA,
		DirectorySource: entry.Source,
		CachedAt:        entry.CachedAt,
		DirectoryStale:  entry.Stale,
		StaleReason:     entry.StaleReason,
	}
	// What vouches for the tenant while it is reused (Current): a
	// fresh directory answer the lookup can check again.
	built := &resolution{org: entry.Answer()}
	_, t.vouched = r.Directory.(CurrentLookup)
	t.vouched = t.vouched && !entry.Stale
	t.res = built
	addr, ok := entry.FHIRAddress(s.FHIRVersions)
	if !ok {
		return nil, nil, failure.Errorf(failure.UpstreamUnsupported,
			"tenant: organization %s (%s) lists no usable FHIR REST endpoint in the directory (%d endpoint(s), none FHIR)", oid, entry.Name(), entry.EndpointCount())
	}
	address := strings.TrimRight(addr, "/")
	base, err := url.Parse(address)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, nil, failure.Errorf(failure.UpstreamFailed,
			"tenant: organization %s has a FHIR endpoint address that is not an absolute http(s) URL: %q", oid, addr)
	}
	if err := egress.CheckURL(base, s.AllowPrivate); err != nil {
		return nil, nil, refused(oid, "the FHIR base", err)
	}
	t.FHIRBase = base.String()
	if full {
		// The lookup API's view: built from the directory's compact
		// entry, the same endpoint FHIRAddress chose.
		org := entry.Organization()
		t.FHIREndpoint, t.Endpoints = org.FHIREndpointRef(s.FHIRVersions), org.Endpoints
	}
	if t.FHIRBase == address {
		// The directory's own string, not a second copy of it per tenant.
		t.FHIRBase = address
	}
	if plainURL(t.FHIRBase) != *base {
		t.base = base // BaseURL could not parse it again on demand
	}
	ctx = t.Context(ctx)

	if s.TokenURL != "" {
		t.TokenURL, t.TokenURLSource = s.TokenURL, "config"
	} else {
		req := discovery.Request{FHIRBase: t.FHIRBase, Order: s.DiscoveryOrder, CernerOverride: s.CernerOverride, Community: s.Community}
		cur, ok := r.Discovery.(CurrentDiscoverer)
		t.vouched = t.vouched && ok
		res, err := r.Discovery.Discover(ctx, req)
		var none *discovery.NoTokenURLError
		switch {
		case !full:
		case res != nil:
			t.Discovery = res.Attempts
		case errors.As(err, &none):
			t.Discovery = none.Attempts
		}
		if err != nil {
			tokenErr = failure.Errorf(failure.UpstreamFailed, "tenant: discovering the token URL of %s: %w", oid, err)
			t.TokenURLError = tokenErr.Error()
			return t, tokenErr, nil
		}
		if t.vouched {
			// A stale result (stale-if-error) is served only until the
			// discoverer can refresh it: not one to keep building on.
			key, ok := cur.Key(req)
			if ok && !res.Stale {
				built.result, t.vouched = cur.Version(key, res)
			} else {
				t.vouched = false
			}
		}
		t.TokenURL, t.TokenURLSource, t.DiscoveredAt = res.TokenURL, string(res.Source), res.FetchedAt
		t.setAlgorithms(res.SigningAlgorithms, res.RegistrationSigningAlgorithms)
		t.RegistrationEndpoint = res.RegistrationEndpoint
		t.askInSyntax(res.ScopesSupported, res.Capabilities)
		// Verified UDAP metadata turns B2B on when a context is configured.
		if res.UDAP && s.B2B != nil {
			s.UDAP = true
		}
	}
	u, err := url.Parse(t.TokenURL)
	if err != nil {
		tokenErr = failure.Errorf(failure.UpstreamFailed, "tenant: token URL of %s is not a URL", oid)
	} else if err := egress.CheckURL(u, s.AllowPrivate); err != nil {
		tokenErr = refused(oid, "the token URL", err)
	} else if t.TokenURLSource != "config" {
		// The FHIR server is untrusted: what it advertises must be its
		// own, or a token for another partner would be obtained and
		// sent to it (docs/reliability.md, threat model, property 1).
		tokenErr = checkParty(oid, "token URL", t.TokenURLSource, base, u, s.AllowedTokenOrigins)
		if tokenErr == nil && t.RegistrationEndpoint != "" {
			if ru, err := url.Parse(t.RegistrationEndpoint); err != nil {
				tokenErr = failure.Errorf(failure.UpstreamFailed, "tenant: UDAP registration endpoint of %s is not a URL", oid)
			} else {
				tokenErr = checkParty(oid, "UDAP registration endpoint", t.TokenURLSource, base, ru, s.AllowedTokenOrigins)
			}
		}
	}
	if tokenErr != nil {
		t.TokenURLError, t.TokenURL, t.RegistrationEndpoint = tokenErr.Error(), "", ""
		return t, tokenErr, nil
	}
	if s.UDAP {
		t.UDAP = true
		if s.B2B != nil {
			b2b := *s.B2B
			t.B2B = &b2b
			// Turned on by discovery too: a context that cannot be
			// sent is said here, naming the settings, not at every
			// token request.
			if err := t.checkB2B(); err != nil {
				tokenErr = failure.Errorf(failure.Misconfigured, "tenant: cqgate is misconfigured for %s (organizations.%s.udap): %w", oid, oid, err)
				t.TokenURLError, t.TokenURL = tokenErr.Error(), ""
				return t, tokenErr, nil
			}
		}
	}
	if r.Registrations != nil && t.UDAP {
		id, err := r.Registrations.ClientID(ctx, t)
		if err != nil {
			tokenErr = failure.Errorf(failure.UpstreamFailed, "tenant: UDAP registration of %s: %w", oid, err)
			t.TokenURLError, t.TokenURL = tokenErr.Error(), ""
			return t, tokenErr, nil
		}
		if id != "" {
			t.ClientID = id
		} else {
			// Not registered yet: a registration may come at any
			// time, and nothing says when.
			t.vouched = false
		}
	}
	return t, tokenErr, nil
}

// keptOID is oid as a tenant keeps it: not a slice of the caller's
// request line, which tenants must not keep alive (Reuser, token cache
// keys, metrics labels). The directory entry's own OID when it is the
// same (the usual case: no copy of its own), else a copy.
func keptOID(oid string, entry *directory.Entry) string {
	if o := entry.OID(); o == oid {
		return o
	}
	return strings.Clone(oid)
}

func (r *Resolver) settings(oid string) Settings {
	s := r.Orgs[oid]
	d := r.Defaults
	if s.Identity == "" {
		s.Identity = d.Identity
	}
	if s.ClientID == "" {
		s.ClientID = d.ClientID
	}
	if s.Scope == "" {
		s.Scope = d.Scope
	}
	if s.Algorithm == "" {
		s.Algorithm = d.Algorithm
	}
	if s.DiscoveryOrder == nil {
		s.DiscoveryOrder = d.DiscoveryOrder
	}
	if len(s.FHIRVersions) == 0 {
		s.FHIRVersions = d.FHIRVersions
	}
	if len(s.AllowedPurposes) == 0 && s.B2B != nil {
		s.AllowedPurposes = s.B2B.PurposeOfUse
	}
	s.AllowedPurposes = slices.Clip(s.AllowedPurposes)
	return s
}

// Scope is the scope configured for oid, without any network call.
func (r *Resolver) Scope(oid string) string { return r.settings(oid).Scope }
