package config

import (
	"net"
)

// validateAdmin checks the admin listener.
func (c *Config) validateAdmin(add adder) {
	a := c.Admin
	if a.Listen == "" {
		if a.Pprof {
			add("admin.pprof: needs admin.listen (profiles are never served on the main listener)")
		}
		return
	}
	_, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		add("admin.listen: %q is not host:port (e.g. 0.0.0.0:9090): %v", a.Listen, err)
		return
	}
	if port != "0" && sharesPort(a.Listen, c.Listen) {
		add("admin.listen: %q and listen %q would bind the same port; give the admin listener its own", a.Listen, c.Listen)
	}
}

// sharesPort reports whether listeners on a and b (host:port) would
// clash: the same port on the same host, or on a wildcard host (empty,
// 0.0.0.0, ::), which takes the port on every address.
func sharesPort(a, b string) bool {
	ha, pa, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	hb, pb, err := net.SplitHostPort(b)
	if err != nil || pa != pb {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}
