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
	if a.Listen == c.Listen && port != "0" {
		add("admin.listen: %q is also listen; give the admin listener its own port", a.Listen)
	}
}
