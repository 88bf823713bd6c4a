package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestValidateReportsEverySectionInOnePass breaks every section at once
// and wants a problem from each, in one ValidationError.
func TestValidateReportsEverySectionInOnePass(t *testing.T) {
	c := validConfig()
	c.Listen = ""
	c.Inbound.Auth = "password"
	c.Audit.Destination = "syslog"
	c.Directory.Flavor = "dstu2"
	c.Discovery.Order = []string{"wellknown"}
	c.Keys.Source = "hsm"
	c.Vault.Auth.Method = "ldap"
	c.Directory.APIKeyVault.Path = "cqgate/directory" // so that Vault is used
	c.Identities = map[string]Identity{"ehx": {Keys: Keys{Source: "pem"}}}
	c.Client.Scope = ""
	c.Tokens.Timeout = 0
	c.Proxy.Timeout = -time.Second
	c.UDAP.Contacts = []string{"ops@example.org"}
	c.Organizations = map[string]Organization{"1.2.x": {}}
	c.Vault.MaxRetries = -2

	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	for _, prefix := range []string{
		"listen:", "inbound.auth:", "audit.destination:", "directory.flavor:", "discovery.order:",
		"keys.source:", "vault.auth.method:", "vault.max_retries:", "identities.ehx.", "client.scope:",
		"tokens.timeout:", "proxy.timeout:", "udap.contacts[0]:", "organizations.1.2.x:",
	} {
		found := false
		for _, p := range ve.Problems {
			found = found || strings.HasPrefix(p, prefix)
		}
		if !found {
			t.Errorf("no problem starting %q in:\n%v", prefix, err)
		}
	}
}

// TestDiscoveryOrderNamesComeFromDiscovery: the default order and the
// names validation accepts are discovery's own.
func TestDiscoveryOrderNamesComeFromDiscovery(t *testing.T) {
	want := "carequality-token, udap, smart-configuration, token"
	if got := strings.Join(Default().Discovery.Order, ", "); got != want {
		t.Errorf("default discovery.order = %s, want %s", got, want)
	}
	c := validConfig()
	c.Discovery.Order = []string{"smart"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"smart" is not one of `+want) {
		t.Errorf("err = %v, want the known names listed", err)
	}
}

// TestDecodeGoesOnPastKeyProblems: unknown keys and wrong types are
// problems with their lines, and the rest of the file still applies.
func TestDecodeGoesOnPastKeyProblems(t *testing.T) {
	cfg, problems, err := Decode([]byte("lisen: x\nproxy:\n  timeout: forever\n  max_replay_body: 7\nlisten: 127.0.0.1:9\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "line 1: field lisen not found") || !strings.Contains(problems[1], "line 3:") {
		t.Errorf("problems = %q", problems)
	}
	if cfg.Listen != "127.0.0.1:9" || cfg.Proxy.MaxReplayBody != 7 || cfg.Proxy.Timeout != Default().Proxy.Timeout {
		t.Errorf("the rest did not apply: listen %q, max_replay_body %d, timeout %s", cfg.Listen, cfg.Proxy.MaxReplayBody, cfg.Proxy.Timeout)
	}
	if _, _, err := Decode([]byte("listen: [\n")); err == nil {
		t.Error("a syntax error: want err")
	}
}
