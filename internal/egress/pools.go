package egress

import "net/http"

// Pools sends a request through Private when its context allows private
// addresses (AllowPrivate) and through Public otherwise, so that the two
// never share a connection: Guard checks an address when a connection is
// dialled, and a pooled connection is reused without a new check. A
// caller that knows whom a request is for picks the pool itself (For),
// and its requests need no context value.
type Pools struct {
	// Public refuses what Guard refuses; Private, only for organizations
	// allowed private addresses, lets everything through (a transport on
	// NewPrivateDialer), whatever the request's context.
	Public, Private http.RoundTripper
}

// For is the pool for an organization's requests: Private when it is
// allowed private addresses, else Public.
func (p Pools) For(allowPrivate bool) http.RoundTripper {
	if allowPrivate {
		return p.Private
	}
	return p.Public
}

var _ http.RoundTripper = Pools{}

// RoundTrip sends r through the pool its context calls for.
func (p Pools) RoundTrip(r *http.Request) (*http.Response, error) {
	if PrivateAllowed(r.Context()) {
		return p.Private.RoundTrip(r)
	}
	return p.Public.RoundTrip(r)
}

// CloseIdleConnections closes both pools' idle connections.
func (p Pools) CloseIdleConnections() {
	for _, rt := range []http.RoundTripper{p.Public, p.Private} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}
