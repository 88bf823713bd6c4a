package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/cluster"
)

// Config is the whole of cqgate's configuration.
type Config struct {
	// Listen is the address the gateway listens on.
	Listen string `yaml:"listen"`
	// LogLevel is the logrus level: debug, info, warn or error.
	LogLevel string `yaml:"log_level"`

	Server    Server    `yaml:"server"`
	Inbound   Inbound   `yaml:"inbound"`
	Audit     Audit     `yaml:"audit"`
	Metrics   Metrics   `yaml:"metrics"`
	Admin     Admin     `yaml:"admin"`
	Tracing   Tracing   `yaml:"tracing"`
	Warmup    Warmup    `yaml:"warmup"`
	Vault     Vault     `yaml:"vault"`
	Directory Directory `yaml:"directory"`
	Discovery Discovery `yaml:"discovery"`
	Keys      Keys      `yaml:"keys"`
	Client    Client    `yaml:"client"`
	Tokens    Tokens    `yaml:"tokens"`
	Proxy     Proxy     `yaml:"proxy"`
	Upstream  Upstream  `yaml:"upstream"`
	UDAP      UDAP      `yaml:"udap"`
	Cluster   Cluster   `yaml:"cluster"`
	Bulk      Bulk      `yaml:"bulk"`

	// Identities are further client identities (certificate, key and
	// client id), by name, for organizations or communities that know
	// cqgate under another one. keys and client above are the identity
	// named "default".
	Identities map[string]Identity `yaml:"identities"`

	// Organizations holds per-OID settings, keyed by OID. An entry with a
	// fhir_base serves an organization that is not in the directory.
	Organizations map[string]Organization `yaml:"organizations"`
}

// Server holds the inbound HTTP server's limits.
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	// MaxHeaderBytes bounds an inbound request's headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds an inbound request's body (413 beyond it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInflight caps the FHIR requests served at once; 0 caps nothing.
	// Up to InflightQueue more wait for a turn, each at most
	// InflightWait; beyond that a request is answered 503 with
	// Retry-After (see internal/inflight).
	MaxInflight   int           `yaml:"max_inflight"`
	InflightQueue int           `yaml:"inflight_queue"`
	InflightWait  time.Duration `yaml:"inflight_wait"`
	// MaxConnections caps the connections the API listener holds open
	// at once; 0 caps nothing. At the cap a new connection makes cqgate
	// close the connection idle the longest (else one without a complete
	// request a second after it connected), or waits in the kernel's
	// accept queue until one closes (see internal/connlimit). The admin
	// listener is never capped.
	MaxConnections int `yaml:"max_connections"`
	// MemoryLimitMiB, when more than 0, is the Go runtime's soft memory
	// limit in MiB (debug.SetMemoryLimit, applied at start): past it
	// the garbage collector runs more often instead of letting the heap
	// double, which trims a burst's peak at the cost of CPU while it
	// lasts. It counts the Go heap, stacks and runtime metadata, not the
	// executable's own pages. GOMEMLIMIT in the environment wins. 0
	// leaves Go's default (no limit).
	MemoryLimitMiB int64 `yaml:"memory_limit_mib"`
	// PublicURL is cqgate's own base URL as callers reach it (e.g.
	// https://cqgate.internal): the partners' URLs in answers (Bundle
	// links, Location, bulk manifests) are rewritten onto it. Empty: the
	// trusted X-Forwarded-Proto/Host, else the request's scheme and Host.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the networks (CIDRs) of reverse proxies whose
	// X-Forwarded-Proto and X-Forwarded-Host are believed when PublicURL
	// is empty. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Bulk configures FHIR Bulk Data export through cqgate.
type Bulk struct {
	// LinkKey (32 bytes, standard base64) seals the download links cqgate
	// hands out for bulk files on other origins, and the status links for
	// status URLs outside the FHIR base. Empty: a random key made
	// at start, so links die at restart (poll the status URL again for
	// fresh ones). Set it, the same on every replica, to keep links
	// valid across restarts and replicas. A secret.
	LinkKey string `yaml:"link_key"`
	// LinkTTL is how long a download link is valid after cqgate handed it
	// out in a manifest (a status link, after the kick-off's answer); past
	// it the link answers 410 Gone and the caller polls the status URL
	// again (a status link is not renewed). The expiry is sealed in the
	// link. Default 24h.
	LinkTTL time.Duration `yaml:"link_ttl"`
}

// Inbound says who may call cqgate and what each caller may do.
type Inbound struct {
	// Auth is "none", "api_key" or "mtls".
	Auth string `yaml:"auth"`
	// AllowUnauthenticated permits auth none on a listen address that is
	// not loopback. Never in production.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// APIKeys maps a caller's name to the hex SHA-256 of its key.
	APIKeys map[string]string `yaml:"api_keys"`
	// APIKeysVault names a KV v2 secret whose fields map caller names to
	// hex SHA-256 key hashes; it is merged over APIKeys and re-read.
	APIKeysVault KVRef `yaml:"api_keys_vault"`
	// TLS serves HTTPS; with auth mtls it also verifies client certificates.
	TLS TLS `yaml:"tls"`
	// MTLSIdentity says which part of a client certificate names the
	// caller: san_uri, san_dns or subject_cn.
	MTLSIdentity string `yaml:"mtls_identity"`
	// Callers is the per-caller policy, by caller name. With auth none the
	// caller is named "anonymous".
	Callers map[string]Caller `yaml:"callers"`
}

// KVRef names a Vault KV v2 secret.
type KVRef struct {
	Mount string `yaml:"mount"`
	Path  string `yaml:"path"`
}

// TLS is the inbound server's TLS configuration.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Caller is what one caller may do.
type Caller struct {
	// Organizations are OIDs, prefix patterns ending in ".*", or "*".
	Organizations []string `yaml:"organizations"`
	// Methods are the HTTP methods allowed; empty means read-only.
	Methods []string `yaml:"methods"`
	// Scopes the caller may request tokens for; empty means the
	// organization's configured scope only.
	Scopes []string `yaml:"scopes"`
	// PurposesOfUse the caller may assert with X-Purpose-Of-Use.
	PurposesOfUse []string `yaml:"purposes_of_use"`
	// ExchangePurposes are the TEFCA exchange purpose codes (e.g.
	// T-TREAT) the caller may choose with X-Cqgate-Exchange-Purpose.
	ExchangePurposes []string `yaml:"exchange_purposes"`
}

// Audit configures the audit trail: one JSON line per FHIR request.
type Audit struct {
	// Destination is stdout, stderr, file:/path, or none.
	Destination string `yaml:"destination"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
}

// Admin is the optional second listener for operations: health, readiness,
// metrics and profiling, kept off the listener callers use.
type Admin struct {
	// Listen, when set, serves /healthz, /readyz, metrics.path and (with
	// Pprof) /debug/pprof/ on this address and no longer on Listen.
	Listen string `yaml:"listen"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener; it needs Listen.
	Pprof bool `yaml:"pprof"`
}

// Warmup resolves organizations and fetches their tokens at start.
type Warmup struct {
	Organizations []string      `yaml:"organizations"`
	Timeout       time.Duration `yaml:"timeout"`
}

// Vault is the connection to HashiCorp Vault shared by everything that
// reads from it: keys, the directory API key, caller API keys and UDAP
// registrations.
type Vault struct {
	// Address defaults to VAULT_ADDR.
	Address   string        `yaml:"address"`
	Namespace string        `yaml:"namespace"`
	CACert    string        `yaml:"ca_cert"`
	Timeout   time.Duration `yaml:"timeout"`
	// MaxRetries is how often one Vault request is retried (5xx, 412 and
	// connection errors) by the Vault client itself; -1 keeps the
	// client's default (2, or VAULT_MAX_RETRIES).
	MaxRetries int       `yaml:"max_retries"`
	Auth       VaultAuth `yaml:"auth"`
}

// VaultAuth is how cqgate logs in to Vault.
type VaultAuth struct {
	// Method is token, approle or kubernetes.
	Method string `yaml:"method"`
	// Token defaults to VAULT_TOKEN; TokenFile is read when set.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// Mount is the auth method's mount path (default: the method name).
	Mount        string `yaml:"mount"`
	RoleID       string `yaml:"role_id"`
	SecretID     string `yaml:"secret_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role is the Kubernetes auth role.
	Role                    string `yaml:"role"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
}

// Directory selects and configures the Carequality directory.
type Directory struct {
	// Flavor is "r4" (the current directory) or "stu3" (the legacy one).
	Flavor string `yaml:"flavor"`
	// URL is the directory's FHIR base, e.g.
	// https://directory.prod.carequality.org/fhir. Empty means only
	// organizations configured with a fhir_base can be reached.
	URL string `yaml:"url"`
	// APIKey is the directory API key. Prefer CQGATE_DIRECTORY_API_KEY.
	APIKey string `yaml:"api_key"`
	// APIKeyVault reads the key from a field of a Vault KV v2 secret.
	APIKeyVault KVField `yaml:"api_key_vault"`
	// APIKeyIn says how the R4 directory gets the key: "header"
	// (Authorization: api-key <key>) or "query" (_apiKey=<key>).
	APIKeyIn string        `yaml:"api_key_in"`
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// MaxStale bounds how long past its TTL an entry is still served when
	// the directory is failing.
	MaxStale time.Duration `yaml:"max_stale"`
	// NegativeTTL is how long a "not found" is remembered.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// StaleRetry is how long, after a failed refresh, a stale entry is
	// served without asking the directory again.
	StaleRetry time.Duration `yaml:"stale_retry"`
	Timeout    time.Duration `yaml:"timeout"`
	// FHIRVersions orders the FHIR endpoint versions preferred.
	FHIRVersions []string `yaml:"fhir_versions"`
	Retry        Retry    `yaml:"retry"`
}

// KVField names one field of a Vault KV v2 secret.
type KVField struct {
	Mount string `yaml:"mount"`
	Path  string `yaml:"path"`
	Field string `yaml:"field"`
}

// Retry is a capped exponential backoff with jitter.
type Retry struct {
	Attempts       int           `yaml:"attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// Discovery configures token-URL discovery.
type Discovery struct {
	// Order is the default precedence of discovery sources.
	Order    []string      `yaml:"order"`
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// MaxStale bounds how long past its TTL a result is still served when
	// a refresh fails.
	MaxStale time.Duration `yaml:"max_stale"`
	Timeout  time.Duration `yaml:"timeout"`
	// UDAPTrustAnchors is a PEM file of the CA certificates UDAP signed
	// metadata must chain to.
	UDAPTrustAnchors string `yaml:"udap_trust_anchors"`
}

// Keys says where a signing key and certificate chain come from.
type Keys struct {
	// Source is "vault" (KV v2), "transit" (Vault transit signing) or "pem".
	Source  string      `yaml:"source"`
	Vault   VaultKeys   `yaml:"vault"`
	Transit TransitKeys `yaml:"transit"`
	PEM     PEMKeys     `yaml:"pem"`
	// WatchInterval is how often the source is checked for a new version.
	WatchInterval time.Duration `yaml:"watch_interval"`
	// LoadRetry paces the attempts to load a key that could not be
	// loaded at start.
	LoadRetry Backoff `yaml:"load_retry"`
	// JWKS configures the published JWK Set (GET /.well-known/jwks.json).
	JWKS JWKS `yaml:"jwks"`
	// ExpiryWarningDays: a signing certificate expiring within this many
	// days is reported by /readyz and the certificate metrics.
	ExpiryWarningDays int `yaml:"expiry_warning_days"`
	// RevocationCheckInterval is how often cqgate checks its own signing
	// certificates for revocation; 0 turns the check off.
	RevocationCheckInterval time.Duration `yaml:"revocation_check_interval"`
}

// Backoff is capped exponential backoff with jitter, without an end.
type Backoff struct {
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// VaultKeys reads the key and chain from a Vault KV v2 secret.
type VaultKeys struct {
	// Mount is the KV v2 mount, Path the secret's path within it.
	Mount string `yaml:"mount"`
	Path  string `yaml:"path"`
	// CertificateField holds the PEM chain (leaf first),
	// PrivateKeyField the PEM private key.
	CertificateField string `yaml:"certificate_field"`
	PrivateKeyField  string `yaml:"private_key_field"`
}

// TransitKeys signs with a Vault transit key; the chain comes from KV.
type TransitKeys struct {
	Mount string `yaml:"mount"`
	Key   string `yaml:"key"`
	// CertificateMount/Path/Field locate the PEM chain in KV v2.
	CertificateMount string `yaml:"certificate_mount"`
	CertificatePath  string `yaml:"certificate_path"`
	CertificateField string `yaml:"certificate_field"`
}

// PEMKeys reads the key and chain from files.
type PEMKeys struct {
	CertificateFile string `yaml:"certificate_file"`
	PrivateKeyFile  string `yaml:"private_key_file"`
}

// Client is cqgate's Carequality client identity and its defaults.
type Client struct {
	// ClientID is the FQDN the Carequality certificate was issued for.
	ClientID string `yaml:"client_id"`
	// Scope requested from token endpoints.
	Scope string `yaml:"scope"`
	// Algorithm signs client assertions; empty follows the key (RS384 for
	// RSA, ES256 for P-256, ES384 for P-384).
	Algorithm string `yaml:"algorithm"`
	// AssertionLifetime is exp - iat of each assertion, at most 5m.
	AssertionLifetime time.Duration `yaml:"assertion_lifetime"`
	// ClockSkew backdates iat and nbf for servers whose clocks run behind.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JKU, when set, is sent as the jku header of the default identity's
	// assertions: the public URL of cqgate's JWK Set, as registered with
	// the partners (https://cqgate.example.org/.well-known/jwks.json).
	JKU string `yaml:"jku"`
	// Community is the trust community the default identity's
	// certificate was issued in; empty is the default community.
	Community string `yaml:"community"`
}

// Identity is one more client identity.
type Identity struct {
	Keys      Keys   `yaml:"keys"`
	ClientID  string `yaml:"client_id"`
	Algorithm string `yaml:"algorithm"`
	// JKU is sent as the jku header of this identity's assertions (see
	// client.jku).
	JKU string `yaml:"jku"`
	// Community is the trust community (a udap.communities name) this
	// identity's certificate was issued in; organizations of that
	// community use it unless they name an identity.
	Community string `yaml:"community"`
	// ExchangePurpose is the TEFCA exchange purpose (XP code, e.g.
	// T-TREAT) this identity's certificate was issued for (SAN
	// urn:oid:<home community id>#<XP>); requests choosing that XP use it.
	ExchangePurpose string `yaml:"exchange_purpose"`
	// Issuer is the certificate's URI SAN, the software statement's iss
	// at registration; empty is udap.issuer.
	Issuer string `yaml:"issuer"`
}

// Tokens configures the access-token cache and exchanges.
type Tokens struct {
	// RefreshMargin: a token is replaced this long before it expires.
	RefreshMargin time.Duration `yaml:"refresh_margin"`
	// RefreshAhead: a token used this long before its refresh point is
	// renewed in the background.
	RefreshAhead time.Duration `yaml:"refresh_ahead"`
	// MinInterval between exchanges for one token (Cerner throttles
	// attempts under a minute).
	MinInterval time.Duration `yaml:"min_interval"`
	// MaxContextsPerOrganization caps the distinct token contexts (scope,
	// purposes of use, client) kept at once per organization (FHIR base);
	// a request needing another gets a 429. 0 turns the cap off.
	MaxContextsPerOrganization int `yaml:"max_contexts_per_organization"`
	// DefaultLifetime is assumed when a token response has no expires_in.
	DefaultLifetime time.Duration `yaml:"default_lifetime"`
	// EnforceGrantedScope refuses (403) a request the token's granted
	// scope cannot cover, before it goes out; false forwards it.
	EnforceGrantedScope bool          `yaml:"enforce_granted_scope"`
	Timeout             time.Duration `yaml:"timeout"`
	Retry               Retry         `yaml:"retry"`
}

// Proxy configures forwarding to FHIR servers.
type Proxy struct {
	// Timeout bounds the wait for an upstream's response headers.
	Timeout time.Duration `yaml:"timeout"`
	// MaxReplayBody is the largest request body kept in memory so the
	// request can be retried after a 401; larger bodies are streamed and
	// not retried.
	MaxReplayBody int64 `yaml:"max_replay_body"`
	// MaxConnsPerHost caps the connections to one FHIR server host (all
	// the tenants it serves, e.g. every Cerner tenant on one host); more
	// requests wait for a connection. Zero means no cap.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
	// MaxIdleConnsPerHost is how many idle keep-alive connections to one
	// host are kept for reuse.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host"`
	// MaxIdleConns is how many idle keep-alive connections to FHIR
	// servers are kept for all hosts together (organizations allowed
	// private addresses have a pool of their own, with the same cap).
	// Past it the connection idle longest is closed: with more partner
	// hosts in use than this, requests open new connections (a TCP and a
	// TLS handshake each). Zero means no cap.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// MaxResponseHeaderBytes bounds the response headers cqgate reads
	// from a FHIR server (and from the directory, discovery documents and
	// token endpoints); a larger header block is a 502.
	MaxResponseHeaderBytes int64 `yaml:"max_response_header_bytes"`
	// ReuseResolved bounds the reuse of a resolved organization (FHIR
	// base, token URL, settings) that its cached directory entry and
	// discovery result do not vouch for: one built from a stale answer
	// (stale-if-error) or waiting for a UDAP registration. Zero resolves
	// such an organization on every request. An organization built from
	// fresh cached entries is reused for as long as they are the cached
	// ones, whatever this says (tenant.Reuser).
	ReuseResolved time.Duration `yaml:"reuse_resolved"`
	// RateLimit keeps cqgate's own request rate to each organization
	// under a limit; organizations.<oid>.rate_limit overrides it.
	RateLimit RateLimit `yaml:"rate_limit"`
}

// Upstream bounds cqgate's requests to the services it looks things up
// at: the directory, discovery documents and token endpoints.
type Upstream struct {
	// MaxConnsPerHost caps the directory, discovery and token requests
	// in flight to one host at once; more wait for a turn (until their
	// timeout). Zero means no cap.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
}

// RateLimit is a token-bucket limit on requests to one organization.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate; zero means no limit.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may go at once above the rate (at least
	// 1 when a rate is set).
	Burst int `yaml:"burst"`
	// MaxWait is how long a request may wait for its turn; one that would
	// wait longer is answered 429 with Retry-After at once.
	MaxWait time.Duration `yaml:"max_wait"`
}

// UDAP configures UDAP B2B and dynamic client registration.
type UDAP struct {
	// Issuer is the URI SAN of the certificate: iss and sub of software
	// statements.
	Issuer     string   `yaml:"issuer"`
	ClientName string   `yaml:"client_name"`
	Contacts   []string `yaml:"contacts"`
	// Registrations is where registered client ids are kept, per OID, so
	// that replicas share them.
	Registrations KVRef `yaml:"registrations"`
	// Communities are the UDAP trust communities, by name. The one named
	// "default" replaces discovery.udap_trust_anchors.
	Communities map[string]Community `yaml:"communities"`
	// Revocation bounds the CRL, OCSP and AIA fetches of revocation
	// checks.
	Revocation Revocation `yaml:"revocation"`
}

// Organization is per-OID configuration. Every field is optional.
type Organization struct {
	// Name is used when the organization is not in the directory.
	Name string `yaml:"name"`
	// FHIRBase makes this a static entry: the directory is not asked.
	FHIRBase string `yaml:"fhir_base"`
	// FHIRVersions overrides directory.fhir_versions.
	FHIRVersions []string `yaml:"fhir_versions"`
	// TokenURL overrides discovery. It is trusted as it is (the
	// operator's word), wherever it points.
	TokenURL string `yaml:"token_url"`
	// AllowedTokenOrigins are further origins (scheme://host[:port]) a
	// discovered token URL or UDAP registration endpoint may be on; by
	// default only the FHIR base's own origin and registrable domain.
	AllowedTokenOrigins []string `yaml:"allowed_token_origins"`
	// DiscoveryOrder overrides discovery.order.
	DiscoveryOrder []string `yaml:"discovery_order"`
	// CernerOverrideOAuthURIs sends Cerner-Override-OAuth-URIs: on.
	CernerOverrideOAuthURIs bool `yaml:"cerner_override_oauth_uris"`
	// Identity names the client identity to use (default: the one of
	// the organization's community, else "default").
	Identity string `yaml:"identity"`
	// Community names the organization's UDAP trust community (a
	// udap.communities name); empty is the default community.
	Community string `yaml:"community"`
	// ClientID, Scope and Algorithm override the identity's.
	ClientID  string `yaml:"client_id"`
	Scope     string `yaml:"scope"`
	Algorithm string `yaml:"algorithm"`
	// UDAP turns on UDAP B2B for this organization.
	UDAP OrgUDAP `yaml:"udap"`
	// AllowPrivateAddresses lets the FHIR base or token URL be http, a
	// loopback or a private address (a sandbox). Refused otherwise.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// RateLimit overrides proxy.rate_limit for this organization.
	RateLimit *RateLimit `yaml:"rate_limit"`
}

// OrgUDAP is an organization's UDAP B2B context.
type OrgUDAP struct {
	// Enabled sends hl7-b2b extensions and udap=1; discovery finding
	// verified UDAP metadata turns it on as well.
	Enabled bool `yaml:"enabled"`
	// Register: "auto" registers at first use when no client id is
	// known; "manual" leaves it to cqgate register.
	Register         string   `yaml:"register"`
	OrganizationID   string   `yaml:"organization_id"`
	OrganizationName string   `yaml:"organization_name"`
	PurposeOfUse     []string `yaml:"purpose_of_use"`
	SubjectName      string   `yaml:"subject_name"`
	SubjectID        string   `yaml:"subject_id"`
	SubjectRole      string   `yaml:"subject_role"`
	ConsentPolicy    []string `yaml:"consent_policy"`
	ConsentReference []string `yaml:"consent_reference"`
	// AllowedPurposes are the purposes a caller may assert per request
	// with X-Purpose-Of-Use.
	AllowedPurposes []string `yaml:"allowed_purposes"`
}

// B2B is the hl7-b2b context these settings assert, nil when they assert
// none: neither enabled nor organization_id set. With organization_id
// set and enabled false it is still used, once discovery finds verified
// UDAP metadata, so validation checks it whenever it is not nil.
func (u OrgUDAP) B2B() *assertion.B2B {
	if !u.Enabled && u.OrganizationID == "" {
		return nil
	}
	return &assertion.B2B{
		Version:          assertion.B2BVersion,
		OrganizationID:   u.OrganizationID,
		OrganizationName: u.OrganizationName,
		PurposeOfUse:     u.PurposeOfUse,
		SubjectName:      u.SubjectName,
		SubjectID:        u.SubjectID,
		SubjectRole:      u.SubjectRole,
		ConsentPolicy:    u.ConsentPolicy,
		ConsentReference: u.ConsentReference,
	}
}

// Default returns the configuration cqgate runs with when nothing is set.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:8080",
		LogLevel: "info",
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      0, // FHIR responses stream; bounded by proxy.timeout upstream
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   25 * time.Second,
			MaxHeaderBytes:    64 << 10,
			MaxBodyBytes:      10 << 20,
			MaxInflight:       256,
			InflightQueue:     1024,
			InflightWait:      5 * time.Second,
			MaxConnections:    512,
		},
		Bulk:    Bulk{LinkTTL: 24 * time.Hour},
		Inbound: Inbound{Auth: "none", MTLSIdentity: "san_uri", APIKeysVault: KVRef{Mount: "secret"}},
		Audit:   Audit{Destination: "stdout"},
		Metrics: Metrics{Enabled: true, Path: "/metrics"},
		Tracing: Tracing{SampleRatio: 1, ServiceName: "cqgate"},
		Warmup:  Warmup{Timeout: 30 * time.Second},
		Vault:   Vault{Timeout: 10 * time.Second, MaxRetries: -1, Auth: VaultAuth{Method: "token"}},
		Directory: Directory{
			Flavor:       "r4",
			APIKeyIn:     "header",
			APIKeyVault:  KVField{Mount: "secret", Field: "api_key"},
			CacheTTL:     time.Hour,
			MaxStale:     24 * time.Hour,
			NegativeTTL:  5 * time.Minute,
			StaleRetry:   30 * time.Second,
			Timeout:      10 * time.Second,
			FHIRVersions: []string{"R4", "STU3", "DSTU2"},
			Retry:        Retry{Attempts: 3, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second},
		},
		Discovery: Discovery{
			Order:    discoverySourceNames(),
			CacheTTL: time.Hour,
			MaxStale: time.Hour,
			Timeout:  10 * time.Second,
		},
		Keys: Keys{
			Source:        "vault",
			WatchInterval: time.Minute,
			LoadRetry:     Backoff{InitialBackoff: time.Second, MaxBackoff: time.Minute},
			JWKS:          JWKS{Overlap: 24 * time.Hour, MaxAge: 5 * time.Minute},
			// Whole days; a month's notice.
			ExpiryWarningDays:       30,
			RevocationCheckInterval: time.Hour,
			Vault: VaultKeys{
				Mount:            "secret",
				CertificateField: "certificate",
				PrivateKeyField:  "private_key",
			},
			Transit: TransitKeys{
				Mount:            "transit",
				CertificateMount: "secret",
				CertificateField: "certificate",
			},
		},
		Client: Client{
			Scope:             "system/*.read",
			AssertionLifetime: 5 * time.Minute,
			ClockSkew:         5 * time.Second,
		},
		Tokens: Tokens{
			RefreshMargin:              60 * time.Second,
			RefreshAhead:               2 * time.Minute,
			MinInterval:                time.Minute,
			MaxContextsPerOrganization: 8,
			DefaultLifetime:            5 * time.Minute,
			EnforceGrantedScope:        true,
			Timeout:                    15 * time.Second,
			Retry:                      Retry{Attempts: 3, InitialBackoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second},
		},
		Proxy: Proxy{
			Timeout:                60 * time.Second,
			MaxReplayBody:          1 << 20,
			MaxConnsPerHost:        64,
			MaxIdleConnsPerHost:    64,
			MaxIdleConns:           2048,
			MaxResponseHeaderBytes: 64 << 10,
			ReuseResolved:          time.Second,
		},
		Upstream: Upstream{MaxConnsPerHost: 16},
		UDAP: UDAP{
			Registrations: KVRef{Mount: "secret"},
			Revocation: Revocation{
				Timeout:     5 * time.Second,
				FailureTTL:  time.Minute,
				MaxCacheAge: 24 * time.Hour,
				MaxCRLBytes: 8 << 20,
			},
		},
		Cluster: Cluster{Prefix: cluster.DefaultPrefix, Timeout: cluster.DefaultTimeout, PollInterval: cluster.DefaultPollInterval,
			LockTTL: 10 * time.Second, EncryptionKeyVault: KVField{Mount: "secret"}},
	}
}

// Read reads the YAML file at path over the defaults. Unknown keys and
// values of the wrong type are Problems, each naming the file and line,
// beside everything else the file says (see Decode), so that a typo never
// silently falls back to a default and one run reports every problem. err
// is set when the file cannot be read or is not YAML at all.
func Read(path string) (*Config, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	cfg, problems, err := Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %s: %w", path, err)
	}
	for i, p := range problems {
		problems[i] = path + ": " + p
	}
	return cfg, problems, nil
}

// Parse decodes YAML over the defaults.
func Parse(data []byte) (*Config, error) {
	cfg, problems, err := Decode(data)
	if err == nil && len(problems) > 0 {
		err = fmt.Errorf("parsing YAML: %w", &yaml.TypeError{Errors: problems})
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode is Parse that goes on past key-level problems: every unknown key
// and every value of the wrong type is one of the Problems returned, with
// its line, and the configuration holds everything else the YAML says, so
// that one run can report these together with Validate's. err is set only
// when the YAML cannot be decoded at all (a syntax error).
func Decode(data []byte) (*Config, Problems, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var (
		problems Problems
		te       *yaml.TypeError
	)
	switch err := dec.Decode(cfg); {
	case err == nil, errors.Is(err, io.EOF):
	case errors.As(err, &te):
		problems = append(problems, te.Errors...)
	default:
		return nil, nil, fmt.Errorf("parsing YAML: %w", err)
	}
	cfg.fillIdentityDefaults()
	return cfg, problems, nil
}

// fillIdentityDefaults gives every further identity's keys the defaults
// that keys has: YAML decodes map values from zero.
func (c *Config) fillIdentityDefaults() {
	d := Default().Keys
	for name, id := range c.Identities {
		k := &id.Keys
		fill := func(field *string, def string) {
			if *field == "" {
				*field = def
			}
		}
		fill(&k.Source, d.Source)
		fill(&k.Vault.Mount, d.Vault.Mount)
		fill(&k.Vault.CertificateField, d.Vault.CertificateField)
		fill(&k.Vault.PrivateKeyField, d.Vault.PrivateKeyField)
		fill(&k.Transit.Mount, d.Transit.Mount)
		fill(&k.Transit.CertificateMount, d.Transit.CertificateMount)
		fill(&k.Transit.CertificateField, d.Transit.CertificateField)
		if k.WatchInterval == 0 {
			k.WatchInterval = d.WatchInterval
		}
		c.Identities[name] = id
	}
}

// discoverySourceNames lists discovery's sources in its default order.
func discoverySourceNames() []string {
	order := discovery.DefaultOrder()
	names := make([]string, len(order))
	for i, src := range order {
		names[i] = src.String()
	}
	return names
}
