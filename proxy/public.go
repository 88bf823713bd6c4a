package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/cqgate/cqgate/proxy/fhirurl"
	"github.com/cqgate/cqgate/tenant"
)

// PublicBase says which scheme and host cqgate's own URLs carry in what
// it hands back (rewritten Bundle links, Location headers, bulk
// manifests):
//
//   - URL, when set (server.public_url), always;
//   - else X-Forwarded-Proto and X-Forwarded-Host (the first value of
//     each), but only when the request's immediate peer is in Trusted
//     (server.trusted_proxies);
//   - else the request's own scheme (https when it came over TLS) and
//     Host header (for a request without one, the local address it came
//     in on).
//
// A Host (or forwarded host) that is not a plain host[:port] is refused,
// so a hostile header cannot turn into a link to somewhere else.
type PublicBase struct {
	// URL is the configured public URL (scheme, host, optional path
	// prefix, no trailing slash); nil when not configured.
	URL *url.URL
	// Trusted are the networks of reverse proxies whose X-Forwarded-*
	// headers are believed.
	Trusted []netip.Prefix
}

// ErrBadHost: the Host (or trusted X-Forwarded-Host) header is not a
// host[:port] cqgate could build its own URLs on.
var ErrBadHost = errors.New("proxy: the request's host is not a valid host[:port]; set server.public_url")

// origin returns the scheme and host (and path prefix, when configured)
// of cqgate's own URLs for r.
func (pb *PublicBase) origin(r *http.Request) (scheme, host string, err error) {
	if pb != nil && pb.URL != nil {
		return pb.URL.Scheme, pb.URL.Host + pb.URL.EscapedPath(), nil
	}
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if pb != nil && len(pb.Trusted) > 0 && pb.trusted(r.RemoteAddr) {
		if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v != "" {
			v = strings.ToLower(v)
			if v != "http" && v != "https" {
				return "", "", ErrBadHost
			}
			scheme = v
		}
		if v := firstValue(r.Header.Get("X-Forwarded-Host")); v != "" {
			host = v
		}
	}
	if host == "" {
		// HTTP/1.0 without Host: the address the request came in on.
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host = a.String()
		}
	}
	if !fhirurl.ValidHost(host) {
		return "", "", ErrBadHost
	}
	return scheme, host, nil
}

func (pb *PublicBase) trusted(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range pb.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// PathPrefix is the path of cqgate's FHIR route, before the OID.
const PathPrefix = "/fhir/"

// rewriterKind names the proxy's rewriters among a tenant's derived
// values.
const rewriterKind = "proxy.rewriter"

// rewriter returns the Rewriter from t's FHIR base to cqgate's URL for
// t's organization at scheme and host. It is kept on the resolved
// tenant (tenant.Tenant.Derived: built once per tenant and public base,
// for as long as the tenant is reused, up to a few public bases per
// tenant), so a lookup allocates nothing whatever the number of
// organizations.
func rewriter(t *tenant.Tenant, scheme, host string) (*fhirurl.Rewriter, error) {
	v, err := t.Derived(tenant.DerivedKey{Kind: rewriterKind, A: scheme, B: host}, func() (any, error) {
		base := t.BaseURL()
		return fhirurl.NewRewriter(base.String(), scheme+"://"+host+PathPrefix+url.PathEscape(t.OID))
	})
	if err != nil {
		return nil, err
	}
	return v.(*fhirurl.Rewriter), nil
}
