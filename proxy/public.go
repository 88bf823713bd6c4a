package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"

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

// ParsePublicURL checks a server.public_url value: an absolute http or
// https URL without user info, query or fragment. A trailing "/" is
// dropped.
func ParsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("proxy: public URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !ValidHost(u.Host) {
		return nil, fmt.Errorf("proxy: public URL %q must be http(s)://host[:port][/path] without user info, query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

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
	if !ValidHost(host) {
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

// ValidHost reports whether h is a plain host[:port]: a DNS name (letters,
// digits, "-", "_" and "."), an IPv4 address or a bracketed IPv6 address,
// optionally followed by ":" and a port of 1 to 5 digits. Nothing else:
// no user info, spaces, slashes, percent signs or other delimiters.
func ValidHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		addr, err := netip.ParseAddr(h[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
		rest := h[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
			if port == "" {
				return false
			}
		}
		name = ""
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if port == "" {
			return false
		}
	}
	if len(port) > 5 {
		return false
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	if name == "" {
		return strings.HasPrefix(h, "[")
	}
	if len(name) > 253 || name[0] == '.' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// rewriterKey names one Rewriter: a tenant's FHIR base seen through one
// public base for one organization.
type rewriterKey struct {
	partner, oid, scheme, host string
}

// rewriters keeps one fhirurl.Rewriter per (FHIR base, public base): a
// lookup allocates nothing. At most maxRewriters are kept; beyond that
// (many Host names, many partners) a Rewriter is built per request.
type rewriters struct {
	mu sync.RWMutex
	m  map[rewriterKey]*fhirurl.Rewriter
}

const maxRewriters = 4096

// PathPrefix is the path of cqgate's FHIR route, before the OID.
const PathPrefix = "/fhir/"

func (c *rewriters) get(t *tenant.Tenant, scheme, host string) (*fhirurl.Rewriter, error) {
	k := rewriterKey{partner: t.FHIRBase, oid: t.OID, scheme: scheme, host: host}
	c.mu.RLock()
	rw := c.m[k]
	c.mu.RUnlock()
	if rw != nil {
		return rw, nil
	}
	rw, err := fhirurl.NewRewriter(t.BaseURL().String(), scheme+"://"+host+PathPrefix+url.PathEscape(t.OID))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[rewriterKey]*fhirurl.Rewriter)
	}
	if len(c.m) < maxRewriters {
		c.m[k] = rw
	}
	c.mu.Unlock()
	return rw, nil
}
