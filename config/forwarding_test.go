package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateForwarding(t *testing.T) {
	tests := []struct {
		name    string
		tune    func(*Config)
		problem string // "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"public URL", func(c *Config) { c.Server.PublicURL = "https://cqgate.internal/" }, ""},
		{"public URL with a path prefix", func(c *Config) { c.Server.PublicURL = "https://gw.internal:8443/cqgate" }, ""},
		{"public URL with user info", func(c *Config) { c.Server.PublicURL = "https://u:p@cqgate.internal" }, "server.public_url:"},
		{"public URL with a query", func(c *Config) { c.Server.PublicURL = "https://cqgate.internal/?x=1" }, "server.public_url:"},
		{"public URL not http", func(c *Config) { c.Server.PublicURL = "ftp://cqgate.internal" }, "server.public_url:"},
		{"trusted CIDR and address", func(c *Config) { c.Server.TrustedProxies = []string{"10.0.0.0/8", "::1"} }, ""},
		{"trusted garbage", func(c *Config) { c.Server.TrustedProxies = []string{"10.0.0.0/33"} }, "server.trusted_proxies:"},
		{"link key", func(c *Config) { c.Bulk.LinkKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }, ""},
		{"short link key", func(c *Config) { c.Bulk.LinkKey = "c2hvcnQ=" }, "bulk.link_key:"},
		{"link key not base64", func(c *Config) { c.Bulk.LinkKey = "not base64 at all!" }, "bulk.link_key:"},
		{"link TTL", func(c *Config) { c.Bulk.LinkTTL = time.Hour }, ""},
		{"link TTL zero", func(c *Config) { c.Bulk.LinkTTL = 0 }, "bulk.link_ttl:"},
		{"link TTL negative", func(c *Config) { c.Bulk.LinkTTL = -time.Minute }, "bulk.link_ttl:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.tune(c)
			err := c.Validate()
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a problem %q, got %v", tc.problem, err)
			}
			for _, p := range ve.Problems {
				if strings.HasPrefix(p, tc.problem) {
					if strings.Contains(p, c.Bulk.LinkKey) && c.Bulk.LinkKey != "" {
						t.Errorf("the problem repeats the link key: %s", p)
					}
					return
				}
			}
			t.Fatalf("no problem starting %q in %v", tc.problem, ve.Problems)
		})
	}
}
