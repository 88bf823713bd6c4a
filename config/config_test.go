package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validConfig() *Config {
	c := Default()
	c.Directory.URL = "https://directory.prod.carequality.org/fhir"
	c.Keys.Vault.Path = "cqgate/carequality"
	c.Client.ClientID = "gateway.example.org"
	return c
}

func TestExampleParsesAndDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data)
	if err != nil {
		t.Fatalf("config.example.yaml does not parse: %v", err)
	}
	// The example writes empty maps and lists out ({}, []); the defaults
	// leave them nil.
	nilEmpty(reflect.ValueOf(cfg).Elem())
	if got, want := *cfg, *Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.yaml shows values that differ from the defaults:\n got %+v\nwant %+v", got, want)
	}
	text := string(data)
	for _, name := range EnvNames() {
		path := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "_")
		// The last YAML key may itself contain underscores; look for a
		// line that starts with some suffix of the path followed by ':'.
		found := false
		for i := range path {
			if strings.Contains(text, " "+strings.Join(path[i:], "_")+":") || strings.Contains(text, "\n"+strings.Join(path[i:], "_")+":") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("config.example.yaml does not document %s", name)
		}
	}
}

func TestIdentityKeysGetDefaults(t *testing.T) {
	cfg, err := Parse([]byte("identities:\n  ehx:\n    client_id: gw.example.org\n    keys:\n      vault:\n        path: cqgate/ehx\n"))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Identities["ehx"].Keys
	if k.Source != "vault" || k.Vault.Mount != "secret" || k.Vault.CertificateField != "certificate" || k.WatchInterval != time.Minute {
		t.Errorf("identity keys = %+v", k)
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("listen: 127.0.0.1:1\ndirectory:\n  ulr: https://x\n"))
	if err == nil || !strings.Contains(err.Error(), "ulr") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings, one per expected problem
	}{
		{"valid", func(*Config) {}, nil},
		{"everything wrong at once", func(c *Config) {
			c.Listen = ""
			c.LogLevel = "loud"
			c.Directory.Flavor = "dstu2"
			c.Directory.URL = "ftp://dir"
			c.Keys.Vault.Path = ""
			c.Client.ClientID = ""
			c.Client.Algorithm = "HS256"
			c.Client.AssertionLifetime = 10 * time.Minute
			c.Proxy.Timeout = 0
		}, []string{"listen", "log_level", "directory.flavor", "directory.url", "keys.vault.path", "client.client_id", "client.algorithm", "client.assertion_lifetime", "proxy.timeout"}},
		{"pem needs both files", func(c *Config) { c.Keys.Source = "pem" }, []string{"keys.pem.certificate_file", "keys.pem.private_key_file"}},
		{"bad proxy pools, reuse and rate limits", func(c *Config) {
			c.Proxy.MaxConnsPerHost = 8
			c.Proxy.MaxIdleConnsPerHost = 16
			c.Proxy.MaxIdleConns = -1
			c.Proxy.ReuseResolved = time.Hour
			c.Proxy.RateLimit = RateLimit{RequestsPerSecond: -1, Burst: -2, MaxWait: -time.Second}
			c.Organizations = map[string]Organization{"1.2.3": {RateLimit: &RateLimit{RequestsPerSecond: -5}}}
		}, []string{"proxy.max_idle_conns_per_host", "proxy.max_idle_conns: -1", "proxy.reuse_resolved", "proxy.rate_limit.requests_per_second",
			"proxy.rate_limit.burst", "proxy.rate_limit.max_wait", "organizations.1.2.3.rate_limit.requests_per_second"}},
		{"a rate limit per organization", func(c *Config) {
			c.Organizations = map[string]Organization{"1.2.3": {RateLimit: &RateLimit{RequestsPerSecond: 20, Burst: 40, MaxWait: time.Second}}}
		}, nil},
		{"unknown key source", func(c *Config) { c.Keys.Source = "hsm" }, []string{"keys.source"}},
		{"bad r4 key placement", func(c *Config) { c.Directory.APIKeyIn = "cookie" }, []string{"directory.api_key_in"}},
		{"no directory and no static orgs", func(c *Config) { c.Directory.URL = "" }, []string{"directory.url"}},
		{"static org without directory is fine", func(c *Config) {
			c.Directory.URL = ""
			c.Organizations = map[string]Organization{"2.16.840.1.113883.3.13.1": {FHIRBase: "https://fhir.example.org/r4"}}
		}, nil},
		{"bad organizations", func(c *Config) {
			c.Organizations = map[string]Organization{
				"urn:oid:1.2.3":    {},
				"not-an-oid":       {},
				"2.16.840.1.99999": {FHIRBase: "fhir.example.org", TokenURL: "https://user:pw@x/token", Algorithm: "none"},
			}
		}, []string{"organizations.urn:oid:1.2.3: write the OID bare", "organizations.not-an-oid", "fhir_base", "token_url: must not carry credentials", "organizations.2.16.840.1.99999.algorithm"}},
		{"algorithm may follow the key", func(c *Config) { c.Client.Algorithm = "" }, nil},
		{"transit needs key and certificate", func(c *Config) { c.Keys.Source = "transit" }, []string{"keys.transit.key", "keys.transit.certificate_path"}},
		{"vault auth methods", func(c *Config) { c.Vault.Auth.Method = "approle" }, []string{"vault.auth.role_id", "exactly one of secret_id and secret_id_file"}},
		{"kubernetes needs a role", func(c *Config) { c.Vault.Auth.Method = "kubernetes" }, []string{"vault.auth.role"}},
		{"vault auth ignored without vault", func(c *Config) { c.Keys.Source = "pem"; c.Keys.PEM = PEMKeys{"a", "b"}; c.Vault.Auth.Method = "ldap" }, nil},
		{"unknown vault auth", func(c *Config) { c.Vault.Auth.Method = "ldap" }, []string{"vault.auth.method"}},
		{"discovery order", func(c *Config) { c.Discovery.Order = []string{"udap", "udap", "wellknown"} }, []string{`"udap" is listed twice`, `"wellknown" is not one of`}},
		{"empty discovery order", func(c *Config) { c.Discovery.Order = nil }, []string{"discovery.order"}},
		{"fhir versions", func(c *Config) { c.Directory.FHIRVersions = []string{"R6"} }, []string{"directory.fhir_versions"}},
		{"retry bounds", func(c *Config) {
			c.Tokens.Retry = Retry{Attempts: 0, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}
		}, []string{"tokens.retry.attempts", "tokens.retry.max_backoff"}},
		{"identities", func(c *Config) {
			c.Identities = map[string]Identity{"default": {ClientID: "x", Keys: Keys{Source: "pem", PEM: PEMKeys{"a", "b"}}}, "ehx": {Keys: Keys{Source: "vault", Vault: VaultKeys{Mount: "secret"}}}}
			c.Organizations = map[string]Organization{"1.2.3": {Identity: "nope"}}
		}, []string{`identities.default: the name "default" is reserved`, "identities.ehx.client_id", "identities.ehx.keys.vault.path", `organizations.1.2.3.identity: "nope"`}},
		{"udap org", func(c *Config) {
			c.Organizations = map[string]Organization{"1.2.3": {UDAP: OrgUDAP{Enabled: true, Register: "auto"}}}
		}, []string{"udap.register: auto needs udap.issuer", "auto needs udap.registrations.path", "udap: organization_id is required",
			"udap: purpose_of_use needs at least one code"}},
		// Discovery finding verified UDAP metadata sends hl7-b2b from
		// these settings without enabled: they are checked then too.
		{"udap org discovered", func(c *Config) {
			c.Organizations = map[string]Organization{"1.2.3": {UDAP: OrgUDAP{OrganizationID: "Example Health",
				ConsentReference: []string{"https://example.org/Consent/1"}, AllowedPurposes: []string{" "}}}}
		}, []string{`udap: organization_id "Example Health" is not an absolute URI; the hl7-b2b context must be valid when organization_id is set`,
			"udap: purpose_of_use needs at least one code", "udap: consent_reference requires consent_policy", "udap.allowed_purposes[0] is empty"}},
		{"udap org valid", func(c *Config) {
			c.UDAP.Issuer = "https://gw.example.org/udap"
			c.UDAP.Registrations.Path = "cqgate/registrations"
			c.Organizations = map[string]Organization{"1.2.3": {UDAP: OrgUDAP{Enabled: true, Register: "auto", OrganizationID: "urn:oid:1.2.840.1", PurposeOfUse: []string{"urn:oid:2.16.840.1.113883.5.8#TREAT"}}}}
		}, nil},
		{"inbound api keys", func(c *Config) {
			c.Inbound.Auth = "api_key"
			c.Inbound.APIKeys = map[string]string{"billing": "hunter2"}
		}, []string{"inbound.api_keys.billing: must be the hex SHA-256", "inbound.callers"}},
		{"inbound mtls", func(c *Config) {
			c.Inbound.Auth = "mtls"
			c.Inbound.MTLSIdentity = "email"
			c.Inbound.TLS.KeyFile = "k"
			c.Inbound.Callers = map[string]Caller{"svc": {Organizations: []string{"1.2.*", "x.*"}, Methods: []string{"FETCH"}}}
		}, []string{"client_ca_file", "mtls_identity", "cert_file and key_file go together", "inbound.tls.cert_file", `callers.svc.organizations[1]`, `callers.svc.methods[0]`}},
		{"auth none off loopback", func(c *Config) { c.Listen = "0.0.0.0:8080" }, []string{"inbound.auth: inbound auth \"none\" on listen address \"0.0.0.0:8080\""}},
		{"auth none off loopback, forced", func(c *Config) { c.Listen = "0.0.0.0:8080"; c.Inbound.AllowUnauthenticated = true }, nil},
		{"operations", func(c *Config) {
			c.Audit.Destination = "syslog"
			c.Metrics.Path = "/fhir/metrics"
			c.Warmup.Organizations = []string{"1.2.x"}
		}, []string{"audit.destination", "metrics.path", "warmup.organizations"}},
		{"metrics path on the JWKS", func(c *Config) { c.Metrics.Path = "/.well-known/jwks.json" }, []string{"metrics.path"}},
		{"metrics path under pprof", func(c *Config) { c.Metrics.Path = "/debug/pprof/metrics" }, []string{"metrics.path"}},
		{"metrics path with a wildcard", func(c *Config) { c.Metrics.Path = "/m/:x" }, []string{"metrics.path"}},
		{"negative server timeouts", func(c *Config) {
			c.Server.ReadHeaderTimeout, c.Server.ReadTimeout, c.Server.WriteTimeout, c.Server.IdleTimeout = 0, -time.Second, -time.Second, -time.Second
		}, []string{"server.read_header_timeout", "server.read_timeout", "server.write_timeout", "server.idle_timeout"}},
		{"no refresh margin", func(c *Config) { c.Tokens.RefreshMargin = 0 }, []string{"tokens.refresh_margin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want problems, got none")
			}
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("want *ValidationError, got %T", err)
			}
			if len(ve.Problems) != len(tt.want) {
				t.Errorf("want %d problems, got %d:\n%v", len(tt.want), len(ve.Problems), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing problem %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"CQGATE_LISTEN":                               "0.0.0.0:9000",
		"CQGATE_DIRECTORY_API_KEY":                    "k3y",
		"CQGATE_DIRECTORY_CACHE_TTL":                  "15m",
		"CQGATE_KEYS_VAULT_PATH":                      "kv/path",
		"CQGATE_PROXY_MAX_REPLAY_BODY":                "2048",
		"CQGATE_CLIENT_CLIENT_ID":                     "gw.example.org",
		"CQGATE_DISCOVERY_ORDER":                      " udap, token ,",
		"CQGATE_PROXY_RATE_LIMIT_REQUESTS_PER_SECOND": "2.5",
	}
	cfg := Default()
	if err := ApplyEnv(cfg, mapLookup(env)); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:9000" || cfg.Directory.APIKey != "k3y" || cfg.Directory.CacheTTL != 15*time.Minute ||
		cfg.Keys.Vault.Path != "kv/path" || cfg.Proxy.MaxReplayBody != 2048 || cfg.Client.ClientID != "gw.example.org" {
		t.Errorf("env not applied: %+v", cfg)
	}
	if cfg.Proxy.RateLimit.RequestsPerSecond != 2.5 {
		t.Errorf("a number from env = %g", cfg.Proxy.RateLimit.RequestsPerSecond)
	}
	if !reflect.DeepEqual(cfg.Discovery.Order, []string{"udap", "token"}) {
		t.Errorf("list from env = %q", cfg.Discovery.Order)
	}

	bad := map[string]string{"CQGATE_DIRECTORY_TIMEOUT": "soon", "CQGATE_PROXY_MAX_REPLAY_BODY": "big", "CQGATE_PROXY_RATE_LIMIT_REQUESTS_PER_SECOND": "fast"}
	err := ApplyEnv(Default(), mapLookup(bad))
	if err == nil || !strings.Contains(err.Error(), "CQGATE_DIRECTORY_TIMEOUT") || !strings.Contains(err.Error(), "CQGATE_PROXY_MAX_REPLAY_BODY") ||
		!strings.Contains(err.Error(), "CQGATE_PROXY_RATE_LIMIT_REQUESTS_PER_SECOND") {
		t.Fatalf("want both bad variables reported, got %v", err)
	}
}

func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// nilEmpty sets every empty map and slice under v to nil.
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			nilEmpty(v.Field(i))
		}
	case reflect.Map, reflect.Slice:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

// Changed names what differs by its YAML path, a section's keys one by
// one, a map as a whole.
func TestChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"top-level scalar", func(c *Config) { c.Listen = "127.0.0.1:9" }, []string{"listen"}},
		{"keys of sections", func(c *Config) {
			c.Server.ShutdownTimeout = time.Minute
			c.Inbound.APIKeys = map[string]string{"billing": "x"}
			c.Inbound.TLS.CertFile = "/c.pem"
		}, []string{"server.shutdown_timeout", "inbound.api_keys", "inbound.tls"}},
		{"map", func(c *Config) {
			c.Organizations = map[string]Organization{"1.2.3": {FHIRBase: "https://x.example/r4"}}
		}, []string{"organizations"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Default(), Default()
			tt.change(b)
			if got := Changed(a, b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
}
