package tenant

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/outcome"
)

// Tenant is one organization as cqgate reaches it.
type Tenant struct {
	OID    string `json:"oid"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// FHIRBase is the FHIR server's base URL, without a trailing slash.
	FHIRBase string `json:"fhir_base"`
	// FHIREndpoint is the directory endpoint FHIRBase was taken from.
	FHIREndpoint directory.Endpoint `json:"fhir_endpoint"`
	// TokenURL is where client assertions are exchanged for tokens.
	TokenURL string `json:"token_url"`
	// TokenURLSource says where TokenURL came from: "config",
	// "carequality-token" or "token".
	TokenURLSource string                  `json:"token_url_source"`
	ClientID       string                  `json:"client_id"`
	Scope          string                  `json:"scope"`
	Algorithm      jose.SignatureAlgorithm `json:"algorithm"`
	// Endpoints are all the organization's directory endpoints.
	Endpoints []directory.Endpoint `json:"endpoints"`
	// DirectorySource is "static" or "directory".
	DirectorySource string `json:"directory_source"`
	// CachedAt is when the directory entry was fetched.
	CachedAt time.Time `json:"cached_at"`
	// DiscoveredAt is when the token URL was discovered (zero when
	// configured).
	DiscoveredAt time.Time `json:"discovered_at,omitzero"`
	// TokenURLError says why discovery failed, when it did (Describe only).
	TokenURLError string `json:"token_url_error,omitempty"`

	base     *url.URL
	tokenErr error
}

// BaseURL returns the parsed FHIR base.
func (t *Tenant) BaseURL() *url.URL { return t.base }

// Settings are the per-organization overrides from configuration. Empty
// fields fall back to the Resolver's defaults or to discovery.
type Settings struct {
	TokenURL  string
	ClientID  string
	Scope     string
	Algorithm jose.SignatureAlgorithm
}

// DirectoryLookup finds an OID's directory entry.
type DirectoryLookup interface {
	Lookup(ctx context.Context, oid string) (*directory.Entry, error)
}

// TokenDiscoverer finds a FHIR server's token endpoint.
type TokenDiscoverer interface {
	TokenEndpoint(ctx context.Context, fhirBase string) (*discovery.Result, error)
}

// Resolver resolves OIDs to Tenants.
type Resolver struct {
	Directory DirectoryLookup
	Discovery TokenDiscoverer
	// Defaults apply where an organization's Settings leave a field empty.
	Defaults Settings
	// Orgs are per-OID settings.
	Orgs map[string]Settings
}

// Resolve returns the tenant for a canonical (bare) OID.
func (r *Resolver) Resolve(ctx context.Context, oid string) (*Tenant, error) {
	t, err := r.Describe(ctx, oid)
	if err != nil {
		return nil, err
	}
	if t.TokenURL == "" {
		// Describe only leaves it empty with discovery's error recorded.
		return nil, t.tokenErr
	}
	return t, nil
}

// Describe is Resolve for the lookup endpoint: it returns what is known
// even when token-URL discovery fails, with that failure in the returned
// Tenant's TokenURLError. Directory failures are still errors.
func (r *Resolver) Describe(ctx context.Context, oid string) (*Tenant, error) {
	entry, err := r.Directory.Lookup(ctx, oid)
	if err != nil {
		if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrInvalidOID) {
			return nil, err
		}
		// Whatever else went wrong (status, transport, an unparsable
		// document) is the directory's failure, not the caller's.
		return nil, outcome.Errorf(http.StatusBadGateway, outcome.Exception, "tenant: looking up %s in the directory: %w", oid, err)
	}
	org := entry.Organization
	s := r.settings(oid)
	t := &Tenant{
		OID:             oid,
		Name:            org.Name,
		Active:          org.Active,
		ClientID:        s.ClientID,
		Scope:           s.Scope,
		Algorithm:       s.Algorithm,
		Endpoints:       org.Endpoints,
		DirectorySource: entry.Source,
		CachedAt:        entry.CachedAt,
	}
	ep, ok := org.FHIREndpoint()
	if !ok {
		return nil, outcome.Errorf(http.StatusBadGateway, outcome.NotSupported,
			"tenant: organization %s (%s) lists no usable FHIR REST endpoint in the directory (%d endpoint(s), none FHIR)", oid, org.Name, len(org.Endpoints))
	}
	base, err := url.Parse(strings.TrimRight(ep.Address, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, outcome.Errorf(http.StatusBadGateway, outcome.Exception,
			"tenant: organization %s has a FHIR endpoint address that is not an absolute http(s) URL: %q", oid, ep.Address)
	}
	t.FHIREndpoint, t.FHIRBase, t.base = ep, base.String(), base

	if s.TokenURL != "" {
		t.TokenURL, t.TokenURLSource = s.TokenURL, "config"
		return t, nil
	}
	res, err := r.Discovery.TokenEndpoint(ctx, t.FHIRBase)
	if err != nil {
		t.tokenErr = outcome.Errorf(http.StatusBadGateway, outcome.Exception, "tenant: discovering the token URL of %s: %w", oid, err)
		t.TokenURLError = t.tokenErr.Error()
		return t, nil
	}
	t.TokenURL, t.TokenURLSource, t.DiscoveredAt = res.TokenURL, res.Source, res.FetchedAt
	return t, nil
}

func (r *Resolver) settings(oid string) Settings {
	s := r.Orgs[oid]
	if s.ClientID == "" {
		s.ClientID = r.Defaults.ClientID
	}
	if s.Scope == "" {
		s.Scope = r.Defaults.Scope
	}
	if s.Algorithm == "" {
		s.Algorithm = r.Defaults.Algorithm
	}
	if s.Algorithm == "" {
		s.Algorithm = jose.RS384
	}
	return s
}
