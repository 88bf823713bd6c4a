package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/revocation"
)

// Community is a UDAP trust community.
type Community struct {
	// URI is sent as ?community= on .well-known/udap; empty sends none.
	URI string `yaml:"uri"`
	// TrustAnchors are PEM files of the community's root certificates.
	TrustAnchors []string `yaml:"trust_anchors"`
	// Revocation is hard (the default: a status that cannot be checked
	// refuses the metadata) or soft (only a definite revocation does).
	Revocation string `yaml:"revocation"`
	// TEFCA marks the TEFCA community: hl7-b2b carries exactly one XP
	// code and registration carries the TEFCA Basic App Certification.
	// A community whose URI is TEFCAURI is TEFCA without it.
	TEFCA bool `yaml:"tefca"`
	// HomeCommunityID is cqgate's TEFCA home community id (urn:oid:...),
	// sent in the Basic App Certification.
	HomeCommunityID string `yaml:"home_community_id"`
}

// TEFCAURI is the TEFCA trust community's URI (udap-dotnet
// TefcaConstants).
const TEFCAURI = "urn:oid:2.16.840.1.113883.3.7204.1.5"

// IsTEFCA reports whether c is the TEFCA community.
func (c Community) IsTEFCA() bool { return c.TEFCA || c.URI == TEFCAURI }

// Revocation bounds revocation checking.
type Revocation struct {
	// Timeout bounds each CRL, OCSP or AIA fetch.
	Timeout time.Duration `yaml:"timeout"`
	// FailureTTL is how long a failed fetch is remembered.
	FailureTTL time.Duration `yaml:"failure_ttl"`
	// MaxCacheAge caps how long an answer is cached.
	MaxCacheAge time.Duration `yaml:"max_cache_age"`
	// MaxCRLBytes bounds a CRL's size.
	MaxCRLBytes int64 `yaml:"max_crl_bytes"`
}

// JWKS configures the published JWK Set.
type JWKS struct {
	// Overlap is how long a rotated-out key stays listed.
	Overlap time.Duration `yaml:"overlap"`
	// MaxAge is the Cache-Control max-age of the set.
	MaxAge time.Duration `yaml:"max_age"`
}

// validateTrust checks communities, revocation bounds, the JWK Set and
// the identities' communities and exchange purposes.
func (c *Config) validateTrust(add adder) {
	for _, name := range sortedKeys(c.UDAP.Communities) {
		checkCommunity(add, "udap.communities."+name, c.UDAP.Communities[name])
	}
	r := c.UDAP.Revocation
	// Zero takes the revocation package's defaults.
	notNegative(add, "udap.revocation.timeout", r.Timeout)
	notNegative(add, "udap.revocation.failure_ttl", r.FailureTTL)
	notNegative(add, "udap.revocation.max_cache_age", r.MaxCacheAge)
	if r.MaxCRLBytes < 0 {
		add("udap.revocation.max_crl_bytes: %d must not be negative", r.MaxCRLBytes)
	}
	notNegative(add, "keys.jwks.overlap", c.Keys.JWKS.Overlap)
	notNegative(add, "keys.jwks.max_age", c.Keys.JWKS.MaxAge)
	if c.Keys.ExpiryWarningDays < 0 {
		add("keys.expiry_warning_days: %d must not be negative", c.Keys.ExpiryWarningDays)
	}
	notNegative(add, "keys.revocation_check_interval", c.Keys.RevocationCheckInterval)
	c.checkCommunityName(add, "client.community", c.Client.Community)
	if c.Client.JKU != "" {
		checkURL(add, "client.jku", c.Client.JKU)
	}
	for _, name := range sortedKeys(c.Identities) {
		id, key := c.Identities[name], "identities."+name
		c.checkCommunityName(add, key+".community", id.Community)
		if id.JKU != "" {
			checkURL(add, key+".jku", id.JKU)
		}
		if id.Issuer != "" {
			checkURI(add, key+".issuer", id.Issuer)
		}
		if id.ExchangePurpose != "" {
			checkExchangePurpose(add, key+".exchange_purpose", id.ExchangePurpose)
			if !c.UDAP.Communities[id.Community].IsTEFCA() {
				add("%s.exchange_purpose: needs community to name the TEFCA community (uri %s or tefca: true)", key, TEFCAURI)
			}
		}
	}
	for _, name := range sortedKeys(c.Inbound.Callers) {
		for i, xp := range c.Inbound.Callers[name].ExchangePurposes {
			checkExchangePurpose(add, fmt.Sprintf("inbound.callers.%s.exchange_purposes[%d]", name, i), xp)
		}
	}
	for _, oid := range sortedKeys(c.Organizations) {
		o, key := c.Organizations[oid], "organizations."+oid
		c.checkCommunityName(add, key+".community", o.Community)
		if o.Identity == "" {
			if o.Community != "" && !c.issuedIn(o.Community) {
				add("%s.community: no identity was issued in community %q (client.community or identities.<name>.community)", key, o.Community)
			}
			continue
		}
		if idc := c.IdentityCommunity(o.Identity); idc != o.Community {
			add("%s.identity: %q was issued in community %q, not in the organization's community %q", key, o.Identity, idc, o.Community)
		}
	}
}

func checkCommunity(add adder, key string, cm Community) {
	if cm.URI != "" {
		checkURI(add, key+".uri", cm.URI)
	}
	if len(cm.TrustAnchors) == 0 {
		add("%s.trust_anchors: must list at least one PEM file of root certificates", key)
	}
	if cm.Revocation != "" {
		if _, err := revocation.ParsePolicy(cm.Revocation); err != nil {
			add("%s.revocation: %q must be hard or soft", key, cm.Revocation)
		}
	}
	if cm.HomeCommunityID != "" {
		checkURI(add, key+".home_community_id", cm.HomeCommunityID)
	}
}

// checkCommunityName checks that name is empty or a configured community.
func (c *Config) checkCommunityName(add adder, key, name string) {
	if name == "" {
		return
	}
	if _, ok := c.UDAP.Communities[name]; !ok {
		add("%s: %q is not one of the udap.communities configured", key, name)
	}
}

// issuedIn reports whether some identity was issued in community.
func (c *Config) issuedIn(community string) bool {
	if c.Client.Community == community {
		return true
	}
	for _, id := range c.Identities {
		if id.Community == community {
			return true
		}
	}
	return false
}

// CommunityIdentity is the identity an organization of community uses
// when it names none: the default identity when its certificate was
// issued there (client.community), else the first by name of the
// identities issued there without an exchange purpose, else the first of
// those with one. "" when none was issued there (validation reports it).
func (c *Config) CommunityIdentity(community string) string {
	if c.Client.Community == community {
		return DefaultIdentity
	}
	var plain, xp []string
	for _, name := range sortedKeys(c.Identities) {
		if c.Identities[name].Community != community {
			continue
		}
		if c.Identities[name].ExchangePurpose == "" {
			plain = append(plain, name)
		} else {
			xp = append(xp, name)
		}
	}
	switch {
	case len(plain) > 0:
		return plain[0]
	case len(xp) > 0:
		return xp[0]
	}
	return ""
}

// ExchangePurposeIdentity names the identity issued in community for the
// TEFCA exchange purpose xp (identities.<name>.exchange_purpose), the
// first by name when several are.
func (c *Config) ExchangePurposeIdentity(community, xp string) (string, bool) {
	for _, name := range sortedKeys(c.Identities) {
		if id := c.Identities[name]; id.Community == community && id.ExchangePurpose == xp {
			return name, true
		}
	}
	return "", false
}

// OrganizationIdentity names the identity o's assertions are signed with
// when no caller chooses a TEFCA exchange purpose: its identity; else, in
// the TEFCA community, the identity issued for the exchange purpose its
// purpose_of_use names, when it names one; else the identity of its
// community (CommunityIdentity). "" is the default identity.
func (c *Config) OrganizationIdentity(o Organization) string {
	if o.Identity != "" || o.Community == "" {
		return o.Identity
	}
	if pou := o.UDAP.PurposeOfUse; c.UDAP.Communities[o.Community].IsTEFCA() && len(pou) == 1 {
		if xp, err := assertion.ExchangePurposeCode(pou[0]); err == nil {
			if name, ok := c.ExchangePurposeIdentity(o.Community, xp); ok {
				return name
			}
		}
	}
	return c.CommunityIdentity(o.Community)
}

// IdentityExchangePurpose is the TEFCA exchange purpose the named
// identity's certificate was issued for; "" when none.
func (c *Config) IdentityExchangePurpose(name string) string {
	if name == "" || name == DefaultIdentity {
		return ""
	}
	return c.Identities[name].ExchangePurpose
}

// IdentityCommunity is the community the named identity was issued in.
func (c *Config) IdentityCommunity(name string) string {
	if name == "" || name == DefaultIdentity {
		return c.Client.Community
	}
	return c.Identities[name].Community
}

func checkExchangePurpose(add adder, key, xp string) {
	if !slices.Contains(assertion.XPCodes, xp) {
		add("%s: %q is not a TEFCA exchange purpose code (%s)", key, xp, strings.Join(assertion.XPCodes, ", "))
	}
}
