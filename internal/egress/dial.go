package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Resolver looks up a host name's addresses (net.DefaultResolver is one).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = net.DefaultResolver

// Dialer connects a transport to tenants, with the SSRF guard on every
// connection, whether or not an HTTP proxy is configured:
//
//   - a connection straight to a tenant (no proxy, or NO_PROXY names it)
//     is checked at connect time on the address DNS returned (Guard);
//   - a request that goes through a proxy is checked before the proxy is
//     asked (Proxy): its host by name (CheckURL's name rules) and by the
//     addresses it resolves to here, when it resolves here; the proxy
//     itself, an address the operator configured, is connected to
//     unchecked.
//
// Requests whose context allows private addresses (AllowPrivate) are
// not checked. The zero value is not usable; use NewDialer.
type Dialer struct {
	guarded, plain *net.Dialer
	resolver       Resolver
	// custom says the resolver is not the dialer's own: direct
	// connections resolve through it too.
	custom bool
	// proxies are the host:port addresses of the proxies Proxy handed
	// out: the only addresses connected to without the guard.
	proxies sync.Map
	// verdicts caches the check of a destination reached through a
	// proxy for verdictTTL, so that a request does not cost a DNS lookup.
	mu       sync.Mutex
	verdicts map[string]verdict
	// private says every connection is for organizations allowed
	// private addresses (NewPrivateDialer): nothing is checked, as under
	// a context from AllowPrivate.
	private bool
}

type verdict struct {
	err     error
	expires time.Time
}

// verdictTTL is how long a proxied destination's check is reused.
const verdictTTL = 30 * time.Second

// NewDialer returns a Dialer that dials with d (copied; its
// ControlContext is replaced by Guard for tenant connections) and
// resolves names with r (net.DefaultResolver when nil).
func NewDialer(d *net.Dialer, r Resolver) *Dialer {
	guarded, plain := *d, *d
	guarded.ControlContext = Guard
	plain.ControlContext = nil
	x := &Dialer{guarded: &guarded, plain: &plain, resolver: r, custom: r != nil, verdicts: map[string]verdict{}}
	if r == nil {
		x.resolver = net.DefaultResolver
	}
	return x
}

// NewPrivateDialer is NewDialer for the connections of organizations
// allowed private addresses only (allow_private_addresses): it checks
// nothing, whatever the request's context, as NewDialer's does under a
// context from AllowPrivate. Its transport must be kept apart from any
// other (see Pools): a connection it opened may lead anywhere.
func NewPrivateDialer(d *net.Dialer, r Resolver) *Dialer {
	x := NewDialer(d, r)
	x.private = true
	return x
}

// DialContext connects to addr: unchecked when it is a proxy this
// Dialer's Proxy handed out, through Guard otherwise.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.private {
		// Once per connection, not per request.
		ctx = AllowPrivate(ctx)
	}
	if _, ok := d.proxies.Load(addr); ok {
		return d.plain.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if !d.custom || err != nil {
		return d.guarded.DialContext(ctx, network, addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.guarded.DialContext(ctx, network, addr)
	}
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var errs []error
	for _, ip := range ips {
		c, err := d.guarded.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("no addresses")}
	}
	return nil, errors.Join(errs...)
}

// Proxy wraps next (http.ProxyFromEnvironment, say): when next sends
// req through a proxy, req's destination is checked first (unless req's
// context allows private addresses) and the proxy's address is
// remembered as one DialContext may connect to unchecked.
func (d *Dialer) Proxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		pu, err := next(req)
		if err != nil || pu == nil {
			return pu, err
		}
		if !d.private && !PrivateAllowed(req.Context()) {
			if err := d.checkProxied(req.Context(), req.URL); err != nil {
				return nil, err
			}
		}
		if addr := proxyAddr(pu); addr != "" {
			if _, ok := d.proxies.Load(addr); !ok {
				d.proxies.Store(addr, true)
			}
		}
		return pu, nil
	}
}

// checkProxied checks a destination reached through a proxy: by name,
// then by the addresses it resolves to here. A name that does not
// resolve here is left to the proxy (it may know names cqgate does not).
func (d *Dialer) checkProxied(ctx context.Context, u *url.URL) error {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if reason := hostReason(host); reason != "" {
		return &RefusedError{Address: u.Scheme + "://" + u.Host, Reason: reason + " (through the HTTP proxy)"}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // hostReason checked the literal
	}
	now := time.Now()
	d.mu.Lock()
	v, ok := d.verdicts[host]
	d.mu.Unlock()
	if ok && now.Before(v.expires) {
		return v.err
	}
	var refused error
	if ips, err := d.resolver.LookupNetIP(ctx, "ip", host); err == nil {
		for _, ip := range ips {
			if reason := addrReason(ip); reason != "" {
				refused = &RefusedError{Address: u.Scheme + "://" + u.Host, Reason: host + " resolves to " + ip.String() + ", " + reason + " (through the HTTP proxy)"}
				break
			}
		}
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	d.mu.Lock()
	if len(d.verdicts) > 4096 {
		clear(d.verdicts) // bounded; refilled as requests come
	}
	d.verdicts[host] = verdict{err: refused, expires: now.Add(verdictTTL)}
	d.mu.Unlock()
	return refused
}

// proxyAddr is the host:port a transport dials for proxy URL u.
func proxyAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host // as the transport dials it (canonicalAddr)
	}
	port := map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
