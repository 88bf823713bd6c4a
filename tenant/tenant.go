package tenant

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
)

// Tenant is one organization as cqgate reaches it.
type Tenant struct {
	// res is what the tenant was built from (Resolver.Current) and the
	// values derived from it (Derived); nil for a tenant not made by
	// Describe. It and base come first: with OID and FHIRBase they
	// are what every request reads, in the tenant's first 72 bytes
	// (issue 18: at 10,000 organizations each line a request reads of
	// a tenant is a CPU cache miss).
	res *resolution
	// base is the parsed FHIR base when it is more than plainURL
	// makes of FHIRBase (user info, a query, escapes in its path): a
	// usual base is parsed again on demand (BaseURL), 144 bytes less per
	// kept tenant.
	base *url.URL

	OID    string `json:"oid"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// syntax is the SMART scope syntax (a callerauth.ScopeSyntax) the
	// token endpoint advertises alone; scopes are asked for in it. One
	// byte in Active's padding: the Tenant fits 480 bytes.
	syntax uint8
	// vouched says the directory entry and (when the token URL was
	// discovered) the discovery result res names are what the tenant
	// was built from, and that nothing else it rests on can change
	// unseen: while they are current, so is the tenant
	// (Resolver.Current). In Active's padding too, so that a resolution
	// is 48 bytes.
	vouched bool
	// regAlgs is how many algorithms of the registration endpoint's own
	// list (UDAP registration_endpoint_jwt_signing_alg_values_supported)
	// follow SigningAlgorithms in its array (setAlgorithms,
	// RegistrationAlgorithms). Registration reads them once per
	// organization and registration lifetime, while a Tenant is kept for
	// every cached organization: a slice field of their own would take
	// every Tenant from the 480-byte size class to 512, and re-reading
	// discovery at registration time would need the discovery request
	// (order, override, community) the Tenant does not keep. A count in
	// Active's padding costs nothing, and the list shares the array
	// SigningAlgorithms has anyway.
	regAlgs uint8
	// purposesAsked says a caller's purposes of use replaced the
	// configured ones (WithPurposes) of a TEFCA tenant: WithExchangePurpose
	// then holds them to the certificate's exchange purpose. In Active's
	// padding too: it costs no byte.
	purposesAsked bool
	// FHIRBase is the FHIR server's base URL, without a trailing slash.
	FHIRBase string `json:"fhir_base"`
	// FHIREndpoint is the directory endpoint FHIRBase was taken from
	// (Describe only: tenants Resolve returns, which are kept for
	// requests, carry no descriptive copies). Do not modify it.
	FHIREndpoint *directory.Endpoint `json:"fhir_endpoint"`
	// TokenURL is where client assertions are exchanged for tokens.
	TokenURL string `json:"token_url,omitempty"`
	// TokenURLSource says where TokenURL came from: "config" or the
	// discovery source that answered (see discovery.Source).
	TokenURLSource string `json:"token_url_source,omitempty"`
	// Identity names the client identity (certificate and key) used.
	Identity string `json:"identity"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	// Algorithm is the configured signing algorithm; empty follows the key
	// and what the server accepts (see assertion.Negotiate).
	Algorithm jose.SignatureAlgorithm `json:"algorithm,omitempty"`
	// SigningAlgorithms are the algorithms the server says it accepts for
	// client assertions; empty when it does not say. Do not modify it
	// (nor append to it): its array may hold RegistrationAlgorithms past
	// its length.
	SigningAlgorithms []string `json:"server_signing_algorithms,omitempty"`
	// UDAP says token requests carry hl7-b2b extensions and udap=1.
	UDAP bool `json:"udap"`
	// B2B is the asserted UDAP B2B context (when UDAP).
	B2B *assertion.B2B `json:"b2b,omitempty"`
	// AllowedPurposes are the purposes of use a caller may assert.
	AllowedPurposes []string `json:"allowed_purposes,omitempty"`
	// RegistrationEndpoint is the UDAP registration endpoint, when known.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// AllowPrivate lets this tenant's addresses be http, loopback or
	// private (a sandbox).
	AllowPrivate bool `json:"allow_private_addresses,omitempty"`
	// Community is the organization's UDAP trust community; TEFCA says
	// it is the TEFCA community, where a caller chooses an exchange
	// purpose (ExchangePurpose, see WithExchangePurpose).
	Community string `json:"community,omitempty"`
	// ScopeSyntax is the SMART scope syntax the token endpoint
	// advertises alone ("SMART v1", "SMART v2"); Scope is written in it.
	ScopeSyntax     string `json:"scope_syntax,omitempty"`
	TEFCA           bool   `json:"tefca,omitempty"`
	ExchangePurpose string `json:"exchange_purpose,omitempty"`
	// Endpoints are all the organization's directory endpoints
	// (Describe only).
	Endpoints []directory.Endpoint `json:"endpoints"`
	// DirectorySource is "static" or "directory".
	DirectorySource string `json:"directory_source"`
	// CachedAt is when the directory entry was fetched.
	CachedAt time.Time `json:"cached_at"`
	// DirectoryStale says the directory entry is past its TTL and served
	// because the directory is failing; StaleReason says how.
	DirectoryStale bool   `json:"directory_stale,omitempty"`
	StaleReason    string `json:"stale_reason,omitempty"`
	// DiscoveredAt is when the token URL was discovered (zero when
	// configured).
	DiscoveredAt time.Time `json:"discovered_at,omitzero"`
	// Discovery lists every discovery source tried and what it answered
	// (Describe only).
	Discovery []discovery.Attempt `json:"discovery,omitempty"`
	// TokenURLError says why discovery failed, when it did (Describe only).
	TokenURLError string `json:"token_url_error,omitempty"`

	// party is what configuration adds for this organization, nil when
	// it adds nothing (the usual case: 24 bytes less per kept tenant).
	party *party
}

// party is an organization's per-exchange-purpose identities and the
// extra origins its token URL may be on, from configuration.
type party struct {
	xps map[string]XPIdentity
	// allowedOrigins are organizations.<oid>.allowed_token_origins.
	allowedOrigins []string
}

// newParty returns the party for xps and origins, nil when both are
// empty.
func newParty(xps map[string]XPIdentity, origins []string) *party {
	if len(xps) == 0 && len(origins) == 0 {
		return nil
	}
	return &party{xps: xps, allowedOrigins: origins}
}

func (t *Tenant) xps() map[string]XPIdentity {
	if t.party == nil {
		return nil
	}
	return t.party.xps
}

func (t *Tenant) allowedOrigins() []string {
	if t.party == nil {
		return nil
	}
	return t.party.allowedOrigins
}

// RegistrationAlgorithms are the algorithms t's UDAP software statement
// may be signed with: the registration endpoint's own list when
// discovery found one, else the token endpoint's (SigningAlgorithms,
// what registration used before the registration list was read);
// empty when neither is known, for assertion.Negotiate's default rules.
func (t *Tenant) RegistrationAlgorithms() []string {
	n, k := len(t.SigningAlgorithms), int(t.regAlgs)
	if k == 0 || cap(t.SigningAlgorithms)-n < k {
		return t.SigningAlgorithms
	}
	return t.SigningAlgorithms[n : n+k : n+k]
}

// setAlgorithms sets SigningAlgorithms to token and keeps registration,
// when it is not empty, right after it in one array, for
// RegistrationAlgorithms (see regAlgs). It allocates only then. A
// registration list longer than a byte counts keeps its first 255
// (JWA defines 14 signature algorithms).
func (t *Tenant) setAlgorithms(token, registration []string) {
	registration = registration[:min(len(registration), math.MaxUint8)]
	if len(registration) == 0 {
		t.SigningAlgorithms, t.regAlgs = token, 0
		return
	}
	all := make([]string, 0, len(token)+len(registration))
	all = append(append(all, token...), registration...)
	t.SigningAlgorithms, t.regAlgs = all[:len(token)], uint8(len(registration))
}

// scopeSyntax is the scope syntax requests ask in.
func (t *Tenant) scopeSyntax() callerauth.ScopeSyntax { return callerauth.ScopeSyntax(t.syntax) }

// BaseURL returns the parsed FHIR base, as url.Parse parses FHIRBase;
// the zero URL for a tenant not made by Describe. It allocates nothing.
func (t *Tenant) BaseURL() url.URL {
	switch {
	case t.base != nil:
		return *t.base
	case t.res == nil:
		return url.URL{}
	}
	return plainURL(t.FHIRBase)
}

// plainURL is s, when it is scheme://host[/path] with a path that
// needs no escaping, as url.Parse parses it, without allocating: its
// fields are slices of s. Describe checks that it is (else it keeps the
// parsed URL).
func plainURL(s string) url.URL {
	scheme, rest, _ := strings.Cut(s, "://")
	host, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	return url.URL{Scheme: scheme, Host: host, Path: path}
}

// Context returns ctx marked for t's outbound calls: when t may use
// private addresses, egress.Guard lets them through.
func (t *Tenant) Context(ctx context.Context) context.Context {
	if t.AllowPrivate {
		return egress.AllowPrivate(ctx)
	}
	return ctx
}

// WithPurposes returns a copy of t asserting the given purposes of use
// (as a set: each once, sorted) instead of the configured ones. Each must be one of AllowedPurposes; a
// tenant without UDAP takes none. A TEFCA tenant takes exactly one
// exchange purpose (TEFCA Facilitated FHIR), which must be its
// certificate's: WithExchangePurpose, always called after it, checks
// that, as the exchange purpose chosen may change the certificate.
func (t *Tenant) WithPurposes(purposes []string) (*Tenant, error) {
	if len(purposes) == 0 {
		return t, nil
	}
	if !t.UDAP || t.B2B == nil {
		return nil, failure.Errorf(failure.Unsupported,
			"tenant: %s is not reached with UDAP B2B, so a purpose of use cannot be asserted", t.OID)
	}
	for _, p := range purposes {
		if !slices.Contains(t.AllowedPurposes, p) {
			return nil, failure.Errorf(failure.Forbidden,
				"tenant: purpose of use %q is not allowed for %s (organizations.%s.udap.allowed_purposes)", p, t.OID, t.OID)
		}
	}
	// A set: each purpose once, sorted, so that orderings of one set
	// share a token context.
	purposes = slices.Compact(slices.Sorted(slices.Values(purposes)))
	c := *t
	b2b := *t.B2B
	b2b.PurposeOfUse = purposes
	c.B2B = &b2b
	if t.TEFCA {
		if len(purposes) != 1 {
			return nil, tefcaRefusal(t.OID, fmt.Sprintf("%d purposes of use were asked for", len(purposes)))
		}
		if _, err := assertion.ExchangePurposeCode(purposes[0]); err != nil {
			return nil, tefcaRefusal(t.OID, "purpose of use "+err.Error())
		}
		c.purposesAsked = true
	}
	return &c, nil
}

// WithScope returns a copy of t requesting scope instead of the
// configured one. The scope is written canonically (each value once,
// sorted, single spaces: OAuth scopes are a set), so that spellings of
// one scope share one token.
func (t *Tenant) WithScope(scope string) *Tenant {
	if scope == "" || scope == t.Scope {
		return t
	}
	scope = CanonicalScope(t.inSyntax(scope))
	if scope == "" || scope == t.Scope || scope == CanonicalScope(t.Scope) {
		return t // the configured scope, however it is written
	}
	c := *t
	c.Scope = scope
	return &c
}

// CanonicalScope writes scope canonically: each value once, sorted,
// single spaces (OAuth scopes are a set). A scope written so already is
// returned as it is, not copied: settings written canonically once (as
// the gateway's are) cost a kept tenant no string of its own.
func CanonicalScope(scope string) string {
	if isCanonicalScope(scope) {
		return scope
	}
	f := strings.Fields(scope)
	slices.Sort(f)
	return strings.Join(slices.Compact(f), " ")
}

// isCanonicalScope reports whether scope is space-separated values in
// strictly increasing order, with no other whitespace.
func isCanonicalScope(scope string) bool {
	if scope == "" {
		return true
	}
	prev, first := "", true
	for rest := scope; ; {
		v, after, more := strings.Cut(rest, " ")
		if v == "" || strings.ContainsAny(v, "\t\n\v\f\r") || (!first && v <= prev) {
			return false
		}
		if !more {
			return true
		}
		prev, first, rest = v, false, after
	}
}

// Summary describes an organization from a directory search the way
// Describe does, without resolving its token URL.
func Summary(org *directory.Organization, prefs []string) *Tenant {
	t := &Tenant{OID: org.OID, Name: org.Name, Active: org.Active, Endpoints: org.Endpoints, DirectorySource: "directory"}
	if ep := org.FHIREndpointRef(prefs); ep != nil {
		t.FHIREndpoint, t.FHIRBase = ep, strings.TrimRight(ep.Address, "/")
	} else {
		t.FHIREndpoint = &directory.Endpoint{} // described as it always was
	}
	return t
}

func refused(oid, what string, err error) error {
	return failure.Errorf(failure.Refused, "tenant: %s of %s: %w", what, oid, err)
}
