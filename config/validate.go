package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
)

// Problems is every problem found in a configuration.
type Problems []string

// Err returns nil when there are no problems.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// ValidationError lists every problem found, so they can all be fixed in
// one pass.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("config: %d problem(s):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// Validate checks the whole configuration and reports every problem.
func (c *Config) Validate() error {
	var p Problems
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if c.Listen == "" {
		add("listen: must be set, e.g. 127.0.0.1:8080")
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		add("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}

	switch c.Directory.Flavor {
	case "r4", "stu3":
	default:
		add("directory.flavor: %q must be r4 or stu3", c.Directory.Flavor)
	}
	if c.Directory.URL != "" {
		checkURL(add, "directory.url", c.Directory.URL)
	}
	if c.Directory.Flavor == "r4" && c.Directory.APIKeyIn != "header" && c.Directory.APIKeyIn != "query" {
		add("directory.api_key_in: %q must be header or query", c.Directory.APIKeyIn)
	}
	positive(add, "directory.cache_ttl", c.Directory.CacheTTL)
	positive(add, "directory.timeout", c.Directory.Timeout)
	positive(add, "discovery.cache_ttl", c.Discovery.CacheTTL)
	positive(add, "discovery.timeout", c.Discovery.Timeout)

	switch c.Keys.Source {
	case "vault":
		if c.Keys.Vault.Path == "" {
			add("keys.vault.path: must name the KV v2 secret holding the certificate and private key")
		}
		if c.Keys.Vault.Mount == "" {
			add("keys.vault.mount: must be set (usually secret)")
		}
	case "pem":
		if c.Keys.PEM.CertificateFile == "" {
			add("keys.pem.certificate_file: must be set when keys.source is pem")
		}
		if c.Keys.PEM.PrivateKeyFile == "" {
			add("keys.pem.private_key_file: must be set when keys.source is pem")
		}
	case "static":
		// Only the dev sandbox supplies keys in memory.
	default:
		add("keys.source: %q must be vault or pem", c.Keys.Source)
	}

	if c.Client.ClientID == "" {
		add("client.client_id: must be set to the FQDN your Carequality certificate was issued for")
	}
	if c.Client.Scope == "" {
		add("client.scope: must be set, e.g. system/*.read")
	}
	if _, err := assertion.SupportedAlgorithm(c.Client.Algorithm); err != nil {
		add("client.algorithm: %v", err)
	}
	if c.Client.AssertionLifetime <= 0 || c.Client.AssertionLifetime > 5*time.Minute {
		add("client.assertion_lifetime: %s must be more than 0 and at most 5m", c.Client.AssertionLifetime)
	}
	if c.Tokens.RefreshMargin < 0 {
		add("tokens.refresh_margin: %s must not be negative", c.Tokens.RefreshMargin)
	}
	positive(add, "tokens.default_lifetime", c.Tokens.DefaultLifetime)
	positive(add, "tokens.timeout", c.Tokens.Timeout)
	positive(add, "proxy.timeout", c.Proxy.Timeout)
	if c.Proxy.MaxReplayBody < 0 {
		add("proxy.max_replay_body: %d must not be negative", c.Proxy.MaxReplayBody)
	}
	if c.Directory.URL == "" && !anyStatic(c.Organizations) {
		add("directory.url: must be set unless every organization is configured with a fhir_base")
	}

	oids := make([]string, 0, len(c.Organizations))
	for oid := range c.Organizations {
		oids = append(oids, oid)
	}
	sort.Strings(oids)
	for _, oid := range oids {
		o := c.Organizations[oid]
		key := "organizations." + oid
		if canon, err := directory.ParseOID(oid); err != nil {
			add("%s: %v", key, err)
		} else if canon != oid {
			add("%s: write the OID bare, as %s", key, canon)
		}
		if o.FHIRBase != "" {
			checkURL(add, key+".fhir_base", o.FHIRBase)
		}
		if o.TokenURL != "" {
			checkURL(add, key+".token_url", o.TokenURL)
		}
		if o.Algorithm != "" {
			if _, err := assertion.SupportedAlgorithm(o.Algorithm); err != nil {
				add("%s.algorithm: %v", key, err)
			}
		}
	}
	return p.Err()
}

func anyStatic(orgs map[string]Organization) bool {
	for _, o := range orgs {
		if o.FHIRBase != "" {
			return true
		}
	}
	return false
}

func positive(add func(string, ...any), key string, d time.Duration) {
	if d <= 0 {
		add("%s: %s must be more than 0", key, d)
	}
}

func checkURL(add func(string, ...any), key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("%s: %q is not an absolute http(s) URL", key, raw)
		return
	}
	if u.User != nil {
		add("%s: must not carry credentials in the URL", key)
	}
}
