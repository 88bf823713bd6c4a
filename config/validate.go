package config

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/proxy/fhirurl"
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

// adder records one problem.
type adder func(format string, args ...any)

// validators check one section of the configuration each, in the order
// their problems are reported. Every validator runs, so that one pass
// reports every problem.
var validators = []func(c *Config, add adder){
	(*Config).validateServer,
	(*Config).validateInflight,
	(*Config).validateInbound,
	(*Config).validateOperations,
	(*Config).validateAdmin,
	(*Config).validateTracing,
	(*Config).validateDirectory,
	(*Config).validateDiscovery,
	(*Config).validateKeys,
	(*Config).validateVault,
	(*Config).validateClient,
	(*Config).validateIdentities,
	(*Config).validateTokens,
	(*Config).validateProxy,
	(*Config).validateUpstream,
	(*Config).validateUDAP,
	(*Config).validateOrganizations,
	(*Config).validateForwarding,
	(*Config).validateTrust,
	(*Config).validateCluster,
}

// Validate checks the whole configuration and reports every problem.
func (c *Config) Validate() error {
	var p Problems
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	for _, v := range validators {
		v(c, add)
	}
	return p.Err()
}

// validateServer checks the listener, logging and the HTTP server.
func (c *Config) validateServer(add adder) {
	if c.Listen == "" {
		add("listen: must be set, e.g. 127.0.0.1:8080")
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		add("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.Server.MaxHeaderBytes <= 0 {
		add("server.max_header_bytes: %d must be more than 0", c.Server.MaxHeaderBytes)
	}
	if c.Server.MaxBodyBytes <= 0 {
		add("server.max_body_bytes: %d must be more than 0", c.Server.MaxBodyBytes)
	}
	positive(add, "server.shutdown_timeout", c.Server.ShutdownTimeout)
	// net/http takes a negative timeout (and a zero header timeout with
	// no read timeout) for none: a slow caller could hold a connection.
	positive(add, "server.read_header_timeout", c.Server.ReadHeaderTimeout)
	notNegative(add, "server.read_timeout", c.Server.ReadTimeout)
	notNegative(add, "server.write_timeout", c.Server.WriteTimeout)
	notNegative(add, "server.idle_timeout", c.Server.IdleTimeout)
}

// validateDirectory checks the Carequality directory client.
func (c *Config) validateDirectory(add adder) {
	d := c.Directory
	switch d.Flavor {
	case "r4", "stu3":
	default:
		add("directory.flavor: %q must be r4 or stu3", d.Flavor)
	}
	switch {
	case d.URL != "":
		checkURL(add, "directory.url", d.URL)
	case !anyStatic(c.Organizations):
		add("directory.url: must be set unless every organization is configured with a fhir_base")
	}
	if d.Flavor == "r4" && d.APIKeyIn != "header" && d.APIKeyIn != "query" {
		add("directory.api_key_in: %q must be header or query", d.APIKeyIn)
	}
	if d.APIKey != "" && d.APIKeyVault.Path != "" {
		add("directory: set api_key or api_key_vault.path, not both")
	}
	if d.APIKeyVault.Path != "" && (d.APIKeyVault.Mount == "" || d.APIKeyVault.Field == "") {
		add("directory.api_key_vault: mount and field must be set with path")
	}
	positive(add, "directory.cache_ttl", d.CacheTTL)
	positive(add, "directory.timeout", d.Timeout)
	notNegative(add, "directory.negative_ttl", d.NegativeTTL)
	notNegative(add, "directory.max_stale", d.MaxStale)
	notNegative(add, "directory.stale_retry", d.StaleRetry)
	checkFHIRVersions(add, "directory.fhir_versions", d.FHIRVersions, false)
	checkRetry(add, "directory.retry", d.Retry)
}

// validateDiscovery checks token-URL discovery.
func (c *Config) validateDiscovery(add adder) {
	checkDiscoveryOrder(add, "discovery.order", c.Discovery.Order, false)
	positive(add, "discovery.cache_ttl", c.Discovery.CacheTTL)
	positive(add, "discovery.timeout", c.Discovery.Timeout)
	notNegative(add, "discovery.max_stale", c.Discovery.MaxStale)
}

// validateKeys checks the default identity's key source and how loading
// it is retried.
func (c *Config) validateKeys(add adder) {
	checkKeys(add, "keys", c.Keys)
	positive(add, "keys.load_retry.initial_backoff", c.Keys.LoadRetry.InitialBackoff)
	if b := c.Keys.LoadRetry; b.MaxBackoff < b.InitialBackoff {
		add("keys.load_retry.max_backoff: %s must be at least initial_backoff (%s)", b.MaxBackoff, b.InitialBackoff)
	}
}

// validateClient checks the default identity's client settings.
func (c *Config) validateClient(add adder) {
	if c.Client.ClientID == "" {
		add("client.client_id: must be set to the FQDN your Carequality certificate was issued for")
	}
	if c.Client.Scope == "" {
		add("client.scope: must be set, e.g. system/*.read")
	}
	checkAlgorithm(add, "client.algorithm", c.Client.Algorithm)
	if c.Client.AssertionLifetime <= 0 || c.Client.AssertionLifetime > 5*time.Minute {
		add("client.assertion_lifetime: %s must be more than 0 and at most 5m", c.Client.AssertionLifetime)
	}
	if c.Client.ClockSkew < 0 || c.Client.ClockSkew > time.Minute {
		add("client.clock_skew: %s must be between 0 and 1m", c.Client.ClockSkew)
	}
}

// validateIdentities checks the further identities.
func (c *Config) validateIdentities(add adder) {
	for _, name := range sortedKeys(c.Identities) {
		id, key := c.Identities[name], "identities."+name
		if name == DefaultIdentity || strings.TrimSpace(name) == "" {
			add("%s: the name %q is reserved for keys and client; choose another", key, name)
		}
		if id.ClientID == "" {
			add("%s.client_id: must be set", key)
		}
		checkAlgorithm(add, key+".algorithm", id.Algorithm)
		checkKeys(add, key+".keys", id.Keys)
	}
}

// validateTokens checks token caching and exchange.
func (c *Config) validateTokens(add adder) {
	t := c.Tokens
	// A token is never used up to its expiry: a request sent just before
	// would reach the partner with an expired token.
	positive(add, "tokens.refresh_margin", t.RefreshMargin)
	notNegative(add, "tokens.refresh_ahead", t.RefreshAhead)
	notNegative(add, "tokens.min_interval", t.MinInterval)
	if t.MaxContextsPerOrganization < 0 {
		add("tokens.max_contexts_per_organization: %d must not be negative (0 turns the cap off)", t.MaxContextsPerOrganization)
	}
	positive(add, "tokens.default_lifetime", t.DefaultLifetime)
	positive(add, "tokens.timeout", t.Timeout)
	checkRetry(add, "tokens.retry", t.Retry)
}

// validateProxy checks forwarding to the partners' FHIR servers.
func (c *Config) validateProxy(add adder) {
	p := c.Proxy
	positive(add, "proxy.timeout", p.Timeout)
	if p.MaxReplayBody < 0 {
		add("proxy.max_replay_body: %d must not be negative", p.MaxReplayBody)
	}
	if p.MaxConnsPerHost < 0 {
		add("proxy.max_conns_per_host: %d must not be negative", p.MaxConnsPerHost)
	}
	if p.MaxResponseHeaderBytes < 0 {
		add("proxy.max_response_header_bytes: %d must not be negative", p.MaxResponseHeaderBytes)
	}
	if p.MaxIdleConnsPerHost < 0 {
		add("proxy.max_idle_conns_per_host: %d must not be negative", p.MaxIdleConnsPerHost)
	}
	if p.MaxIdleConns < 0 {
		add("proxy.max_idle_conns: %d must not be negative", p.MaxIdleConns)
	}
	if n := p.MaxConnsPerHost; n > 0 && p.MaxIdleConnsPerHost > n {
		add("proxy.max_idle_conns_per_host: %d is more than proxy.max_conns_per_host (%d)", p.MaxIdleConnsPerHost, n)
	}
	if r := p.ReuseResolved; r < 0 || r > time.Minute {
		add("proxy.reuse_resolved: %s must be between 0 and 1m", r)
	}
	checkRateLimit(add, "proxy.rate_limit", p.RateLimit)
}

// validateUpstream checks the limits on cqgate's own upstream calls
// (directory, discovery, token endpoints).
func (c *Config) validateUpstream(add adder) {
	if c.Upstream.MaxConnsPerHost < 0 {
		add("upstream.max_conns_per_host: %d must not be negative", c.Upstream.MaxConnsPerHost)
	}
}

// validateUDAP checks the gateway's own UDAP identity.
func (c *Config) validateUDAP(add adder) {
	if c.UDAP.Issuer != "" {
		checkURI(add, "udap.issuer", c.UDAP.Issuer)
	}
	for i, contact := range c.UDAP.Contacts {
		if !strings.HasPrefix(contact, "mailto:") && !strings.HasPrefix(contact, "https:") {
			add("udap.contacts[%d]: %q must be a mailto: or https: URI", i, contact)
		}
	}
}

// validateOrganizations checks every organization's settings.
func (c *Config) validateOrganizations(add adder) {
	for _, oid := range sortedKeys(c.Organizations) {
		c.validateOrganization(add, oid, c.Organizations[oid])
	}
}

// DefaultIdentity names the identity configured by keys and client.
const DefaultIdentity = "default"

func (c *Config) validateOrganization(add adder, oid string, o Organization) {
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
	for i, origin := range o.AllowedTokenOrigins {
		checkOrigin(add, fmt.Sprintf("%s.allowed_token_origins[%d]", key, i), origin)
	}
	checkAlgorithm(add, key+".algorithm", o.Algorithm)
	if o.RateLimit != nil {
		checkRateLimit(add, key+".rate_limit", *o.RateLimit)
	}
	checkFHIRVersions(add, key+".fhir_versions", o.FHIRVersions, true)
	checkDiscoveryOrder(add, key+".discovery_order", o.DiscoveryOrder, true)
	if o.Identity != "" && o.Identity != DefaultIdentity {
		if _, ok := c.Identities[o.Identity]; !ok {
			add("%s.identity: %q is not one of the identities configured", key, o.Identity)
		}
	}
	c.validateOrgUDAP(add, key+".udap", o.UDAP)
	c.validateOrgTEFCA(add, key, o)
}

// validateOrgUDAP checks an organization's UDAP settings. The hl7-b2b
// context is checked whenever it can be sent: when udap is enabled, and
// when organization_id is set, as discovery finding verified UDAP
// metadata turns hl7-b2b on then.
func (c *Config) validateOrgUDAP(add adder, key string, u OrgUDAP) {
	switch u.Register {
	case "", "manual":
	case "auto":
		if c.UDAP.Issuer == "" {
			add("%s.register: auto needs udap.issuer (the certificate's URI SAN)", key)
		}
		if c.UDAP.Registrations.Path == "" {
			add("%s.register: auto needs udap.registrations.path to keep client ids in Vault", key)
		}
	default:
		add("%s.register: %q must be auto or manual", key, u.Register)
	}
	b2b := u.B2B()
	if b2b == nil {
		return
	}
	when := "udap is enabled"
	if !u.Enabled {
		when = "organization_id is set (hl7-b2b is sent once discovery finds verified UDAP metadata)"
	}
	for _, p := range b2b.Problems() {
		add("%s: %s; the hl7-b2b context must be valid when %s", key, p, when)
	}
	for i, p := range u.AllowedPurposes {
		if strings.TrimSpace(p) == "" {
			add("%s.allowed_purposes[%d] is empty", key, i)
		}
	}
}

// validateOrgTEFCA checks what an organization of the TEFCA community
// asserts: without a caller's choice, exactly one exchange purpose, the
// one its identity's certificate was issued for (TEFCA Facilitated FHIR,
// assertion.B2B.TEFCAProblems); and allowed_purposes a caller could
// ever assert: exchange purposes cqgate holds an identity for.
func (c *Config) validateOrgTEFCA(add adder, key string, o Organization) {
	b2b := o.UDAP.B2B()
	if b2b == nil || !c.UDAP.Communities[o.Community].IsTEFCA() {
		return
	}
	key += ".udap"
	identity := c.OrganizationIdentity(o)
	xp := c.IdentityExchangePurpose(identity)
	for _, p := range b2b.TEFCAProblems(xp) {
		add("%s: %s (TEFCA Facilitated FHIR; signed with identity %q)", key, p, cmp.Or(identity, DefaultIdentity))
	}
	if len(b2b.PurposeOfUse) == 1 && strings.HasSuffix(b2b.PurposeOfUse[0], "#T-IAS") {
		add("%s.purpose_of_use: T-IAS needs a tefca_ias extension with the individual's id_token, which cqgate does not send", key)
	}
	for i, p := range o.UDAP.AllowedPurposes {
		code, err := assertion.ExchangePurposeCode(p)
		_, issued := c.ExchangePurposeIdentity(o.Community, code)
		switch {
		case err != nil:
			add("%s.allowed_purposes[%d]: %v: a TEFCA organization takes exchange purposes only", key, i, err)
		case code == "T-IAS":
			add("%s.allowed_purposes[%d]: T-IAS needs a tefca_ias extension with the individual's id_token, which cqgate does not send", key, i)
		case code != xp && !issued:
			add("%s.allowed_purposes[%d]: %q can never be asserted: no identity of community %q was issued for %s (identities.<name>.exchange_purpose)",
				key, i, p, o.Community, code)
		}
	}
}

// usesVault reports whether anything is read from Vault.
func (c *Config) usesVault() bool {
	vaultKeys := func(k Keys) bool { return k.Source == "vault" || k.Source == "transit" }
	if vaultKeys(c.Keys) || c.Directory.APIKeyVault.Path != "" || c.Inbound.APIKeysVault.Path != "" || c.UDAP.Registrations.Path != "" ||
		c.Cluster.EncryptionKeyVault.Path != "" {
		return true
	}
	for _, id := range c.Identities {
		if vaultKeys(id.Keys) {
			return true
		}
	}
	return false
}

// validateVault checks the Vault client, when anything is read from Vault.
func (c *Config) validateVault(add adder) {
	v := c.Vault
	if v.MaxRetries < -1 {
		add("vault.max_retries: %d must be -1 (the Vault client's default) or more", v.MaxRetries)
	}
	if !c.usesVault() {
		return
	}
	if v.Address != "" {
		checkURL(add, "vault.address", v.Address)
	}
	positive(add, "vault.timeout", v.Timeout)
	switch v.Auth.Method {
	case "token":
		if v.Auth.Token != "" && v.Auth.TokenFile != "" {
			add("vault.auth: set token or token_file, not both")
		}
	case "approle":
		if v.Auth.RoleID == "" {
			add("vault.auth.role_id: must be set for approle")
		}
		if (v.Auth.SecretID == "") == (v.Auth.SecretIDFile == "") {
			add("vault.auth: approle needs exactly one of secret_id and secret_id_file")
		}
	case "kubernetes":
		if v.Auth.Role == "" {
			add("vault.auth.role: must be set for kubernetes")
		}
	default:
		add("vault.auth.method: %q must be token, approle or kubernetes", v.Auth.Method)
	}
}

func checkKeys(add adder, key string, k Keys) {
	switch k.Source {
	case "vault":
		if k.Vault.Path == "" {
			add("%s.vault.path: must name the KV v2 secret holding the certificate and private key", key)
		}
		if k.Vault.Mount == "" {
			add("%s.vault.mount: must be set (usually secret)", key)
		}
	case "transit":
		if k.Transit.Key == "" {
			add("%s.transit.key: must name the Vault transit key that signs", key)
		}
		if k.Transit.Mount == "" {
			add("%s.transit.mount: must be set (usually transit)", key)
		}
		if k.Transit.CertificatePath == "" {
			add("%s.transit.certificate_path: must name the KV v2 secret holding the certificate chain", key)
		}
	case "pem":
		if k.PEM.CertificateFile == "" {
			add("%s.pem.certificate_file: must be set when source is pem", key)
		}
		if k.PEM.PrivateKeyFile == "" {
			add("%s.pem.private_key_file: must be set when source is pem", key)
		}
	case "static":
		// Only the dev sandbox supplies keys in memory.
	default:
		add("%s.source: %q must be vault, transit or pem", key, k.Source)
	}
	notNegative(add, key+".watch_interval", k.WatchInterval)
}

func checkAlgorithm(add adder, key, alg string) {
	if alg == "" {
		return
	}
	if _, err := assertion.SupportedAlgorithm(alg); err != nil {
		add("%s: %v", key, err)
	}
}

// fhirVersionFamilies are the FHIR versions endpoints can be chosen by.
var fhirVersionFamilies = []string{"R4", "R4B", "R5", "STU3", "DSTU2"}

func checkFHIRVersions(add adder, key string, versions []string, optional bool) {
	if len(versions) == 0 {
		if !optional {
			add("%s: must list at least one of %s", key, strings.Join(fhirVersionFamilies, ", "))
		}
		return
	}
	for _, v := range versions {
		if !slices.Contains(fhirVersionFamilies, v) {
			add("%s: %q is not one of %s", key, v, strings.Join(fhirVersionFamilies, ", "))
		}
	}
}

// discoverySources names the sources discovery.order may use, as
// discovery defines them.
func discoverySources() string {
	return strings.Join(discoverySourceNames(), ", ")
}

func checkDiscoveryOrder(add adder, key string, order []string, optional bool) {
	if len(order) == 0 {
		if !optional {
			add("%s: must list at least one of %s", key, discoverySources())
		}
		return
	}
	seen := map[string]bool{}
	for _, s := range order {
		switch {
		case !discovery.Source(s).Valid():
			add("%s: %q is not one of %s", key, s, discoverySources())
		case seen[s]:
			add("%s: %q is listed twice", key, s)
		}
		seen[s] = true
	}
}

func checkRetry(add adder, key string, r Retry) {
	if r.Attempts < 1 || r.Attempts > 10 {
		add("%s.attempts: %d must be between 1 and 10", key, r.Attempts)
	}
	positive(add, key+".initial_backoff", r.InitialBackoff)
	if r.MaxBackoff < r.InitialBackoff {
		add("%s.max_backoff: %s must not be less than initial_backoff %s", key, r.MaxBackoff, r.InitialBackoff)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func notNegative(add adder, key string, d time.Duration) {
	if d < 0 {
		add("%s: %s must not be negative", key, d)
	}
}

func checkURI(add adder, key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		add("%s: %q is not an absolute URI", key, raw)
	}
}

func anyStatic(orgs map[string]Organization) bool {
	for _, o := range orgs {
		if o.FHIRBase != "" {
			return true
		}
	}
	return false
}

func positive(add adder, key string, d time.Duration) {
	if d <= 0 {
		add("%s: %s must be more than 0", key, d)
	}
}

func checkURL(add adder, key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("%s: %q is not an absolute http(s) URL", key, raw)
		return
	}
	if u.User != nil {
		add("%s: must not carry credentials in the URL", key)
	}
}

// checkOrigin checks an origin: scheme://host[:port], nothing more.
func checkOrigin(add adder, key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		add("%s: %q is not an origin (https://host[:port])", key, raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		add("%s: %q is an origin, scheme://host[:port], without path, query or credentials", key, raw)
	}
}

// validateInbound checks caller authentication and policy.
func (c *Config) validateInbound(add adder) {
	in := c.Inbound
	switch in.Auth {
	case "none":
	case "api_key":
		if len(in.APIKeys) == 0 && in.APIKeysVault.Path == "" {
			add("inbound.api_keys: auth api_key needs api_keys or api_keys_vault.path")
		}
	case "mtls":
		if in.TLS.ClientCAFile == "" {
			add("inbound.tls.client_ca_file: auth mtls needs the CA bundle that client certificates must chain to")
		}
		switch in.MTLSIdentity {
		case "san_uri", "san_dns", "subject_cn":
		default:
			add("inbound.mtls_identity: %q must be san_uri, san_dns or subject_cn", in.MTLSIdentity)
		}
	default:
		add("inbound.auth: %q must be none, api_key or mtls", in.Auth)
	}
	c.validateInboundTLS(add)
	c.validateCallers(add)
}

// validateInboundTLS checks the main listener's TLS.
func (c *Config) validateInboundTLS(add adder) {
	in := c.Inbound
	if (in.TLS.CertFile == "") != (in.TLS.KeyFile == "") {
		add("inbound.tls: cert_file and key_file go together")
	}
	if in.Auth == "mtls" && in.TLS.CertFile == "" {
		add("inbound.tls.cert_file: auth mtls serves HTTPS and needs a server certificate")
	}
	if c.Listen != "" && (in.Auth == "none" || in.Auth == "api_key" || in.Auth == "mtls") {
		if err := callerauth.CheckListen(c.Listen, in.Auth, in.AllowUnauthenticated); err != nil {
			add("inbound.auth: %s", strings.TrimPrefix(err.Error(), "callerauth: "))
		}
	}
}

// validateCallers checks the callers' API keys and policies.
func (c *Config) validateCallers(add adder) {
	in := c.Inbound
	for _, name := range sortedKeys(in.APIKeys) {
		if h := in.APIKeys[name]; len(h) != 64 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
			add("inbound.api_keys.%s: must be the hex SHA-256 of the key (64 hex digits), never the key itself", name)
		}
	}
	if len(in.Callers) == 0 && in.Auth != "none" {
		add("inbound.callers: must give at least one caller a policy; without one every request is denied")
	}
	if _, err := callerauth.NewPolicy(in.PolicyRules()); err != nil {
		for _, e := range unjoin(err) {
			add("inbound.%s", strings.TrimPrefix(e.Error(), "callerauth: "))
		}
	}
}

// PolicyRules returns the callers' rules as the access package takes them.
func (in Inbound) PolicyRules() map[string]callerauth.Rule {
	rules := make(map[string]callerauth.Rule, len(in.Callers))
	for name, c := range in.Callers {
		rules[name] = callerauth.Rule{Organizations: c.Organizations, Methods: c.Methods, Scopes: c.Scopes, PurposesOfUse: c.PurposesOfUse,
			ExchangePurposes: c.ExchangePurposes}
	}
	return rules
}

// unjoin splits an errors.Join error, and the joins within it, into
// their parts.
func unjoin(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, unjoin(e)...)
	}
	return out
}

// validateOperations checks audit, metrics and warm-up.
func (c *Config) validateOperations(add adder) {
	switch d := c.Audit.Destination; {
	case d == "stdout", d == "stderr", d == "none":
	case strings.HasPrefix(d, "file:") && len(d) > len("file:"):
	default:
		add("audit.destination: %q must be stdout, stderr, none or file:/path", d)
	}
	if c.Metrics.Enabled {
		p := c.Metrics.Path
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "/fhir") || strings.HasPrefix(p, "/directory") || p == "/healthz" || p == "/readyz" ||
			strings.HasPrefix(p, "/.well-known/") || strings.HasPrefix(p, "/debug/pprof") || strings.ContainsAny(p, ":*") {
			add("metrics.path: %q must start with /, hold no : or *, and not shadow /fhir, /directory, /healthz, /readyz, /.well-known/ or /debug/pprof/", p)
		}
	}
	for _, oid := range c.Warmup.Organizations {
		if _, err := directory.ParseOID(oid); err != nil {
			add("warmup.organizations: %v", err)
		}
	}
	if len(c.Warmup.Organizations) > 0 {
		positive(add, "warmup.timeout", c.Warmup.Timeout)
	}
}

func checkRateLimit(add adder, key string, r RateLimit) {
	if r.RequestsPerSecond < 0 {
		add("%s.requests_per_second: %g must not be negative", key, r.RequestsPerSecond)
	}
	if r.Burst < 0 {
		add("%s.burst: %d must not be negative", key, r.Burst)
	}
	notNegative(add, key+".max_wait", r.MaxWait)
}

// validateForwarding checks what cqgate's own URLs are built from and the
// bulk link key and lifetime.
func (c *Config) validateForwarding(add adder) {
	if c.Server.PublicURL != "" {
		if _, err := fhirurl.ParsePublicURL(c.Server.PublicURL); err != nil {
			add("server.public_url: %q must be an http(s) URL with a plain host[:port] and no user info, query or fragment (e.g. https://cqgate.internal)", c.Server.PublicURL)
		}
	}
	if _, err := c.Server.TrustedPrefixes(); err != nil {
		add("server.trusted_proxies: %v", err)
	}
	if _, err := c.Bulk.Key(); err != nil {
		add("bulk.link_key: %v", err)
	}
	positive(add, "bulk.link_ttl", c.Bulk.LinkTTL)
}

// TrustedPrefixes parses server.trusted_proxies: CIDRs, or single
// addresses (a /32 or /128).
func (s Server) TrustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range s.TrustedProxies {
		v = strings.TrimSpace(v)
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an IP address", v)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Key decodes bulk.link_key: nil when it is not set.
func (b Bulk) Key() ([]byte, error) {
	if b.LinkKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b.LinkKey))
	if err != nil {
		k, err = base64.RawURLEncoding.DecodeString(strings.TrimSpace(b.LinkKey))
	}
	if err != nil || len(k) != linkKeySize {
		return nil, fmt.Errorf("must be %d random bytes in base64 (openssl rand -base64 32)", linkKeySize)
	}
	return k, nil
}

// linkKeySize is the size of bulk.link_key: an AES-256 key
// (proxy.LinkKeySize; config cannot import proxy).
const linkKeySize = 32
