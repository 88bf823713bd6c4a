package tenant

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/origin"
)

// Origin returns the origin of u (RFC 6454) as internal/origin writes it:
// lower-case scheme and host, and the port, written only when it is not
// the scheme's default. IPv6 hosts keep their brackets.
func Origin(u *url.URL) string { return origin.Of(u) }

// ParseOrigin parses an origin as written in configuration
// (https://auth.example.com, http://127.0.0.1:8443) and returns its
// canonical form. A path, query or fragment is refused.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("tenant: %q is not an origin (scheme://host[:port])", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("tenant: %q is not an origin: it has a path, query, fragment or credentials", s)
	}
	return Origin(u), nil
}

// sameParty reports whether endpoint, advertised by the FHIR server at
// base, belongs to the same party as base:
//
//   - the same origin (scheme, host and port); or
//   - the same scheme and the same registrable domain (the public suffix
//     list's eTLD+1: fhir-ehr.cerner.com and authorization.cerner.com),
//     any port. Host names without a registrable domain (localhost, a
//     bare public suffix such as github.io) match only by origin; or
//   - an origin listed in allowed (canonical, see ParseOrigin).
//
// IP literals have no registrable domain: they match only by origin, so
// 127.0.0.1:8443 and 127.0.0.1:9443 are different parties.
func sameParty(base, endpoint *url.URL, allowed []string) bool {
	if origin.Same(base, endpoint) {
		return true
	}
	if len(allowed) > 0 && slices.Contains(allowed, Origin(endpoint)) {
		return true
	}
	if !strings.EqualFold(base.Scheme, endpoint.Scheme) {
		return false
	}
	bd, ok1 := registrableDomain(base.Hostname())
	ed, ok2 := registrableDomain(endpoint.Hostname())
	return ok1 && ok2 && bd == ed
}

// SameParty reports whether u belongs to the same party as t's FHIR
// base, by the rule token URLs are held to (see sameParty): the same
// origin, the same scheme and registrable domain, or an origin in
// organizations.<oid>.allowed_token_origins. Bulk file downloads get the
// token only on such a URL.
func (t *Tenant) SameParty(u *url.URL) bool {
	if t.res == nil || u.Host == "" {
		return false // not made by Describe: no parsed base
	}
	base := t.BaseURL()
	return sameParty(&base, u, t.allowedOrigins())
}

// registrableDomain is host's eTLD+1, when host is a DNS name that has
// one.
func registrableDomain(host string) (string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || net.ParseIP(host) != nil {
		return "", false
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return "", false
	}
	return d, true
}

// checkParty refuses an endpoint (what: "token URL", "UDAP registration
// endpoint") that the FHIR server at base advertised, through discovery
// source, for another party. The 502 names both origins and the
// configuration key that would allow it.
func checkParty(oid, what, source string, base, endpoint *url.URL, allowed []string) error {
	if endpoint.Host != "" && sameParty(base, endpoint, allowed) {
		return nil
	}
	return failure.Errorf(failure.UpstreamUntrusted,
		"tenant: the %s advertised for %s (from %s) is on origin %s, which is neither the FHIR base's origin %s nor in its registrable domain; "+
			"nothing was signed or sent to it (allow it with organizations.%s.allowed_token_origins)",
		what, oid, source, Origin(endpoint), Origin(base), oid)
}
