package loopback

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// IsLoopbackHost reports whether host (no port) is the name localhost or a
// literal loopback IP address. Other names are not resolved: a name that
// resolves to loopback today may not tomorrow.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// CheckAddr returns an error unless addr is a host:port whose host is
// loopback. An empty host (":8080", all interfaces) is refused.
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("loopback: address %q: %w", addr, err)
	}
	if !IsLoopbackHost(host) {
		return fmt.Errorf("loopback: address %q is not on loopback (127.0.0.0/8, ::1 or localhost)", addr)
	}
	return nil
}

// CheckURL parses raw and returns it unless it is not an http URL on a
// loopback host.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loopback: URL: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("loopback: URL %q: scheme must be http", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("loopback: URL must not carry user info")
	}
	if !IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("loopback: URL %q is not on loopback (127.0.0.0/8, ::1 or localhost)", raw)
	}
	return u, nil
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago,
// for a child process to listen on.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
