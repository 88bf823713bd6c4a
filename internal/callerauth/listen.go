package callerauth

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CheckListen refuses a configuration in which anyone who can reach the
// listener could use cqgate's system account without authenticating:
// auth "none" on an address that is not loopback (127.0.0.0/8, ::1 or
// "localhost"). An empty host (":8080"), an unspecified address
// ("0.0.0.0", "::") and any other host name count as not loopback. With
// allowUnauthenticated the configuration is accepted anyway (the caller
// should then warn loudly). auth must be "none", "api_key" or "mtls".
func CheckListen(addr, auth string, allowUnauthenticated bool) error {
	switch auth {
	case MethodAPIKey, MethodMTLS:
		return nil
	case MethodNone:
	default:
		return fmt.Errorf("callerauth: inbound auth %q: want %s, %s or %s", truncate(auth), MethodNone, MethodAPIKey, MethodMTLS)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("callerauth: listen address %q: %w", truncate(addr), err)
	}
	if isLoopback(host) || allowUnauthenticated {
		return nil
	}
	what := "is not a loopback address"
	if host == "" {
		what = "listens on every interface"
	} else if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		what = "listens on every interface"
	}
	return fmt.Errorf("callerauth: inbound auth %q on listen address %q, which %s: anyone who can reach it could use cqgate's system account; "+
		"listen on 127.0.0.1 (sidecar), choose auth api_key or mtls, or set allow_unauthenticated: true", auth, addr, what)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, "localhost.") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
