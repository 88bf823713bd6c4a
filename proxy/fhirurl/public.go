package fhirurl

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// ParsePublicURL checks a server.public_url value: an absolute http or
// https URL without user info, query or fragment. A trailing "/" is
// dropped.
func ParsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fhirurl: public URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !ValidHost(u.Host) {
		return nil, fmt.Errorf("fhirurl: public URL %q must be http(s)://host[:port][/path] without user info, query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
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
