package origin

import (
	"net/url"
	"strings"
)

// Port returns u's port, or its scheme's default port (443 for https,
// 80 for http) when u names none; "" for another scheme without a port.
func Port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return defaultPort(u.Scheme)
}

// defaultPort is the port a URL of scheme names when it names none.
func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// Same reports whether a and b have the same origin: the same scheme and
// host (case-insensitive) and the same port, a default port counting as
// absent. It builds no string.
func Same(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		Port(a) == Port(b)
}

// Of returns the origin of u: lower-case scheme and host, and the port,
// written only when it is not the scheme's default. IPv6 hosts keep
// their brackets. Two URLs have the same origin exactly when Of gives
// the same string (Same compares without building it).
func Of(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == defaultPort(scheme) {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}
