package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/cqgate/cqgate/internal/failure"
)

// ErrRefused is wrapped by every refusal.
var ErrRefused = failure.New(failure.Refused, "egress: address refused")

// RefusedError says which address was refused and why.
type RefusedError struct {
	// Address is the URL or host:port refused.
	Address string
	Reason  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("egress: refusing %s: %s (allowed only for organizations configured with allow_private_addresses)", e.Address, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// CheckURL refuses a tenant URL that is not https or whose host is a
// loopback, private, link-local or otherwise non-public literal address or
// a name reserved for the local machine. With allowPrivate every absolute
// http(s) URL passes. It does not resolve names: Guard does that at
// connect time.
func CheckURL(u *url.URL, allowPrivate bool) error {
	if u == nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return &RefusedError{Address: withoutSecrets(u), Reason: "not an absolute http(s) URL"}
	}
	if allowPrivate {
		return nil
	}
	if u.Scheme != "https" {
		return &RefusedError{Address: withoutSecrets(u), Reason: "not https"}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if reason := hostReason(host); reason != "" {
		return &RefusedError{Address: withoutSecrets(u), Reason: reason}
	}
	return nil
}

// withoutSecrets is u as a refusal names it: without its user
// information, query and fragment (a presigned URL's signature, PHI in a
// search).
func withoutSecrets(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// hostReason says why host may not be connected to, or "".
func hostReason(host string) string {
	switch {
	case host == "":
		return "no host"
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return "a name for this machine"
	case host == "metadata.google.internal" || strings.HasSuffix(host, ".internal") || strings.HasSuffix(host, ".local"):
		return "a name that only resolves inside a private network"
	case host == "svc" || strings.HasSuffix(host, ".svc") || host == "cluster.local" || host == "home.arpa" || strings.HasSuffix(host, ".home.arpa"):
		// Kubernetes service names (name.namespace.svc[.cluster.local])
		// and home networks (RFC 8375).
		return "a name that only resolves inside a private network"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return addrReason(ip)
	}
	if numericHost(host) {
		// 2130706433, 0x7f.1, 0177.0.0.1: forms some resolvers read as
		// IPv4 addresses. Nothing public is named like that.
		return "a numeric host that is not a dotted-quad address"
	}
	return ""
}

// numericHost reports whether every label of host is a decimal, octal or
// hex number.
func numericHost(host string) bool {
	for label := range strings.SplitSeq(host, ".") {
		l := strings.TrimPrefix(strings.TrimPrefix(label, "0x"), "0X")
		if l == "" {
			return false
		}
		for _, r := range l {
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
		if l == label && strings.Trim(label, "0123456789") != "" {
			return false // letters without 0x: a name like "cafe"
		}
	}
	return true
}

// addrReason says why ip is not a public unicast address, or "".
func addrReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata services live here)"
	case ip.IsPrivate():
		return "a private-network address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case !ip.IsGlobalUnicast():
		return "not a global unicast address"
	case cgnat.Contains(ip), benchmarking.Contains(ip):
		return "a shared or special-purpose address"
	case nat64Local.Contains(ip):
		// RFC 8215: a prefix of the local network's own translator,
		// where the IPv4 address sits where that network chose; never
		// a public destination.
		return "a local-use NAT64 address"
	case nat64.Contains(ip):
		// 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
		b := ip.As16()
		if addrReason(netip.AddrFrom4([4]byte(b[12:16]))) != "" {
			return "a shared or special-purpose address"
		}
	}
	return ""
}

var (
	cgnat        = netip.MustParsePrefix("100.64.0.0/10")
	benchmarking = netip.MustParsePrefix("198.18.0.0/15")
	nat64        = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local   = netip.MustParsePrefix("64:ff9b:1::/48")
)

type allowKey struct{}

// AllowPrivate returns a context under which Guard lets connections to
// private addresses through: for organizations configured with
// allow_private_addresses.
func AllowPrivate(ctx context.Context) context.Context {
	return context.WithValue(ctx, allowKey{}, true)
}

// PrivateAllowed reports whether ctx came from AllowPrivate.
func PrivateAllowed(ctx context.Context) bool {
	v, _ := ctx.Value(allowKey{}).(bool)
	return v
}

// Guard is a net.Dialer ControlContext: it refuses a connection to an
// address that is not public unless ctx allows private addresses.
func Guard(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if PrivateAllowed(ctx) {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &RefusedError{Address: address, Reason: "not host:port"}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &RefusedError{Address: address, Reason: "not an IP address"}
	}
	if reason := addrReason(ip); reason != "" {
		return &RefusedError{Address: address, Reason: reason}
	}
	return nil
}
