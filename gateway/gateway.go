package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqgate/cqgate/api"
	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/revocation"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/internal/upstream"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/keys/jwks"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// Options are what a Config cannot say.
type Options struct {
	Logger logrus.FieldLogger
	// Keys replaces the key source of the default identity (the dev
	// sandbox's in-memory key, tests).
	Keys keys.Source
	// Transport is the base transport for every outbound call to a
	// tenant; a tuned, egress-guarded transport when nil.
	Transport http.RoundTripper
	// DirectoryTransport is the transport for directory requests; a tuned
	// transport without the egress guard when nil (the directory's URL is
	// the operator's choice, not a tenant's).
	DirectoryTransport http.RoundTripper
	// Clock is time.Now when nil.
	Clock func() time.Time
	// TracerProvider replaces the one tracing.* configures (tests record
	// spans with it).
	TracerProvider trace.TracerProvider
	// Registrations keeps UDAP registrations when udap.registrations.path
	// is not set (dev mode's MemoryRegistrations); with neither, cqgate
	// register refuses.
	Registrations tenant.RegistrationStore
}

// Gateway is an assembled cqgate.
type Gateway struct {
	// Handler serves the gateway's HTTP API.
	Handler http.Handler
	// AdminHandler serves /healthz, /readyz, metrics and pprof when
	// admin.listen is set (they are then not on Handler); nil otherwise.
	AdminHandler http.Handler
	// Keys holds the default identity's signing material.
	Keys *keys.Holder
	// JWKS is the published JWK Set of every identity.
	JWKS *jwks.Set
	// Tokens is the access-token cache.
	Tokens *assertion.Cache
	// Directory resolves OIDs to directory entries.
	Directory *directory.Resolver
	// Tenants resolves OIDs to tenants.
	Tenants *tenant.Resolver
	// Metrics is nil when metrics are off.
	Metrics *metrics.Metrics
	// Audit is nil when auditing is off.
	Audit *audit.Logger
	// TLS serves HTTPS when inbound.tls is set; nil otherwise.
	TLS *callerauth.ServerTLS

	cfg        *config.Config
	log        logrus.FieldLogger
	clock      func() time.Time
	vault      *vault.Client
	identities map[string]*identity
	creds      *proxy.Tokens
	apiKeys    *callerauth.APIKeys
	regs       *tenant.UDAPRegistrations
	reuse      *tenant.Reuser
	tracing    *tracing.Tracing
	keyLoaded  chan struct{}
	// revocation checks partners' signed_metadata chains and cqgate's
	// own certificates; own holds the last check of the latter.
	revocation *revocation.Checker
	own        ownCerts
	// ownNow asks watchOwn for a check at once (a key was rotated).
	ownNow  chan struct{}
	cluster *cluster.Cluster // nil without cluster.redis.url
	// fhirConns counts the connections to FHIR servers; nil when
	// Options.Transport replaced the gateway's transports.
	fhirConns *ConnStats
}

// New assembles a gateway from a validated configuration. It loads the
// signing keys once; if that fails, it keeps retrying in the background
// (until ctx ends) and /readyz reports why it is not ready.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: opts.Logger, clock: opts.Clock, keyLoaded: make(chan struct{}), ownNow: make(chan struct{}, 1)}
	if g.log == nil {
		g.log = logrus.New()
	}
	if g.clock == nil {
		g.clock = time.Now
	}
	// FHIR requests have their own pool, capped per host; token and
	// discovery requests to the same hosts never queue behind them.
	base, fhirBase := opts.Transport, opts.Transport
	// fhirPrivate is the FHIR pool of organizations allowed private
	// addresses; the proxy picks it by the tenant. Nil with
	// opts.Transport, which then gets each such request under a context
	// that allows private addresses.
	var fhirPrivate http.RoundTripper
	if base == nil {
		hdr := cfg.Proxy.MaxResponseHeaderBytes
		base = NewGuardedTransport(TransportOptions{
			ResponseHeaderTimeout: cfg.Proxy.Timeout, MaxResponseHeaderBytes: hdr,
			MaxConnsPerHost: cfg.Upstream.MaxConnsPerHost,
		})
		g.fhirConns = new(ConnStats)
		fhir := NewGuardedTransport(TransportOptions{
			ResponseHeaderTimeout: cfg.Proxy.Timeout, ReadIdleTimeout: cfg.Proxy.Timeout,
			MaxConnsPerHost: cfg.Proxy.MaxConnsPerHost, MaxIdleConnsPerHost: cfg.Proxy.MaxIdleConnsPerHost,
			MaxIdleConns: maxIdleConns(cfg.Proxy.MaxIdleConns), MaxResponseHeaderBytes: hdr, Conns: g.fhirConns,
		})
		fhirBase, fhirPrivate = fhir.Public, fhir.Private
	}
	dirBase := opts.DirectoryTransport
	if dirBase == nil {
		dirBase = NewTransport(TransportOptions{
			ResponseHeaderTimeout: cfg.Directory.Timeout, MaxResponseHeaderBytes: cfg.Proxy.MaxResponseHeaderBytes,
			MaxConnsPerHost: cfg.Upstream.MaxConnsPerHost,
		})
	}
	// Directory, discovery and token requests are capped per host (in
	// flight, and connections of the transports built here): a burst for
	// many distinct organizations waits for turns instead of opening a
	// connection (with the directory's API key) for each.
	base = upstream.LimitHosts(base, cfg.Upstream.MaxConnsPerHost)
	dirBase = upstream.LimitHosts(dirBase, cfg.Upstream.MaxConnsPerHost)
	var err error
	if g.tracing, err = g.buildTracing(ctx, opts); err != nil {
		return nil, err
	}
	base, dirBase, fhirBase, fhirPrivate = traced(g.tracing, base, dirBase, fhirBase, fhirPrivate)
	// Token requests and directory requests never follow redirects (an
	// assertion is for one URL; the directory API key must not travel).
	client := func(rt http.RoundTripper, timeout time.Duration) *http.Client {
		return &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: noRedirects}
	}
	if cfg.Metrics.Enabled {
		g.Metrics = metrics.New(metrics.WithErrorLog(g.log))
	}

	if needsVault(cfg) {
		vopts := []vault.Option{vault.WithLogger(g.log.WithField("component", "vault")), vault.WithClock(g.clock),
			vault.WithErrorObserver(g.vaultError), vault.WithTransportWrapper(vaultTraced(g.tracing))}
		if cfg.Vault.MaxRetries >= 0 {
			vopts = append(vopts, vault.WithMaxRetries(cfg.Vault.MaxRetries))
		}
		v, err := vault.New(vaultConfig(cfg.Vault), vopts...)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.vault = v
		if err := v.Start(ctx); err != nil {
			g.log.WithError(err).Error("gateway: Vault login failed; retrying in the background")
		}
	}

	if g.identities, err = g.buildIdentities(opts.Keys, client(base, cfg.Tokens.Timeout)); err != nil {
		return nil, err
	}
	g.Keys = g.identities[config.DefaultIdentity].holder
	if g.JWKS, err = g.jwksSet(); err != nil {
		return nil, err
	}
	if g.revocation, err = g.revocationChecker(base); err != nil {
		return nil, err
	}

	fetcher, err := g.directoryFetcher(client(dirBase, cfg.Directory.Timeout))
	if err != nil {
		return nil, err
	}
	g.Directory = directory.NewResolver(directory.ResolverConfig{
		Fetcher:     fetcher,
		Static:      staticEntries(cfg.Organizations),
		TTL:         cfg.Directory.CacheTTL,
		MaxStale:    orOff(cfg.Directory.MaxStale),
		NegativeTTL: orOff(cfg.Directory.NegativeTTL),
		StaleRetry:  orOff(cfg.Directory.StaleRetry),
		Clock:       g.clock,
	})
	// Discovery documents may redirect (http to https, a trailing slash);
	// the egress guard still checks where a redirect leads.
	disc, err := g.discoverer(&http.Client{Transport: base, Timeout: cfg.Discovery.Timeout})
	if err != nil {
		return nil, err
	}

	if g.cluster, err = g.buildCluster(ctx); err != nil {
		return nil, err
	}
	g.Tokens = assertion.NewCache(assertion.CacheConfig{
		RefreshMargin:   cfg.Tokens.RefreshMargin,
		RefreshAhead:    orOff(cfg.Tokens.RefreshAhead),
		MinInterval:     orOff(cfg.Tokens.MinInterval),
		DefaultLifetime: cfg.Tokens.DefaultLifetime,
		// Keys carry the tenant's FHIR base as Resource (tokenKey).
		MaxContextsPerResource: cfg.Tokens.MaxContextsPerOrganization,
		ExchangeTimeout:        2 * cfg.Tokens.Timeout * time.Duration(cfg.Tokens.Retry.Attempts),
		Clock:                  g.clock,
		OnRefreshError: func(k assertion.Key, err error) {
			g.log.WithError(err).WithField("token_url", k.TokenURL).Warn("gateway: background token refresh failed; the current token stays in use")
		},
		Shared:  g.sharedTier(),
		LockTTL: cfg.Cluster.LockTTL,
	})
	g.creds = g.tokens()

	settings, err := orgSettings(cfg)
	if err != nil {
		return nil, err
	}
	dirLookup, discoverer := g.counted(g.Directory, disc)
	g.Tenants = &tenant.Resolver{
		Directory: dirLookup,
		Discovery: discoverer,
		Defaults:  settings.defaults,
		Orgs:      settings.orgs,
	}
	switch {
	case cfg.UDAP.Registrations.Path != "":
		store := &tenant.VaultRegistrations{Mount: cfg.UDAP.Registrations.Mount, Path: cfg.UDAP.Registrations.Path}
		if g.vault != nil {
			store.KV = g.vault
		}
		g.regs = g.registrations(store, settings.autoRegister)
	case opts.Registrations != nil:
		g.regs = g.registrations(opts.Registrations, settings.autoRegister)
	}
	if g.regs != nil {
		g.Tenants.Registrations = g.regs
	}

	if err := g.buildInbound(); err != nil {
		return nil, err
	}
	public, links, err := forwarding(cfg)
	if err != nil {
		return nil, err
	}
	pxCfg := proxy.Config{
		Transport:     fhirBase,
		Private:       fhirPrivate,
		Credentials:   g.creds,
		Logger:        g.log,
		MaxReplayBody: cfg.Proxy.MaxReplayBody,
		CheckGrant:    checkGrant(cfg.Tokens.EnforceGrantedScope),
		PublicBase:    public,
		Links:         links,
	}
	if g.Metrics != nil {
		pxCfg.Observer = g.Metrics // partner latency
	}
	px := proxy.New(pxCfg)
	g.reuse = tenant.Reuse(g.Tenants, cfg.Proxy.ReuseResolved, g.clock)
	apiCfg := api.Config{
		Tenants:      reusedTenants{Resolver: g.Tenants, reuse: g.reuse},
		Directory:    searcher(fetcher),
		FHIRVersions: cfg.Directory.FHIRVersions,
		Proxy:        px,
		Logger:       g.log,
		Ready:        g.ready,
		Audit:        g.Audit,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		JWKS:         g.JWKS,
		Tracer:       g.tracing,
	}
	if limiter := rateLimiter(cfg, g.cluster); limiter != nil {
		apiCfg.Limiter = limiter
	}
	if g.apiKeys != nil {
		apiCfg.Auth = g.apiKeys
	} else if cfg.Inbound.Auth == callerauth.MethodMTLS {
		apiCfg.Auth = callerauth.MTLS{IdentityFrom: cfg.Inbound.MTLSIdentity}
	}
	if apiCfg.Policy, err = callerauth.NewPolicy(policyRules(cfg.Inbound)); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.Metrics != nil {
		apiCfg.Observer = g.Metrics
		apiCfg.Metrics, apiCfg.MetricsPath = g.scrapeHandler(), cfg.Metrics.Path
		g.registerMetrics()
	}
	if cfg.Admin.Listen != "" {
		apiCfg.SeparateAdmin, apiCfg.Pprof = true, cfg.Admin.Pprof
		g.AdminHandler = api.NewAdmin(apiCfg)
	}
	g.Handler = api.New(apiCfg)

	g.loadKeys(ctx)
	g.background(ctx)
	g.watchOwn(ctx)
	return g, nil
}

// needsVault reports whether anything is read from Vault.
func needsVault(cfg *config.Config) bool {
	isVault := func(k config.Keys) bool { return k.Source == "vault" || k.Source == "transit" }
	if isVault(cfg.Keys) || cfg.Directory.APIKeyVault.Path != "" || cfg.Inbound.APIKeysVault.Path != "" || cfg.UDAP.Registrations.Path != "" ||
		cfg.Cluster.EncryptionKeyVault.Path != "" {
		return true
	}
	for _, id := range cfg.Identities {
		if isVault(id.Keys) {
			return true
		}
	}
	return false
}

func vaultConfig(v config.Vault) vault.Config {
	return vault.Config{
		Address:   v.Address,
		Namespace: v.Namespace,
		CACert:    v.CACert,
		Timeout:   v.Timeout,
		Auth: vault.AuthConfig{
			Method:                  v.Auth.Method,
			Token:                   v.Auth.Token,
			TokenFile:               v.Auth.TokenFile,
			Mount:                   v.Auth.Mount,
			RoleID:                  v.Auth.RoleID,
			SecretID:                v.Auth.SecretID,
			SecretIDFile:            v.Auth.SecretIDFile,
			Role:                    v.Auth.Role,
			ServiceAccountTokenFile: v.Auth.ServiceAccountTokenFile,
		},
	}
}

// orOff maps the configuration's 0 ("none") to the cache's "off".
func orOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func (g *Gateway) directoryFetcher(c *http.Client) (directory.Fetcher, error) {
	d := g.cfg.Directory
	if d.URL == "" {
		return nil, nil
	}
	base := strings.TrimRight(d.URL, "/")
	var key directory.APIKeySource
	if d.APIKeyVault.Path != "" {
		key = &vaultAPIKey{v: g.vault, mount: d.APIKeyVault.Mount, path: d.APIKeyVault.Path, field: d.APIKeyVault.Field, clock: g.clock}
	}
	retry := directory.RetryPolicy{Attempts: d.Retry.Attempts, Initial: d.Retry.InitialBackoff, Max: d.Retry.MaxBackoff}
	if d.Flavor == "stu3" {
		return &directory.STU3Client{BaseURL: base, APIKey: d.APIKey, Key: key, HTTPClient: c, Retry: retry}, nil
	}
	return &directory.R4Client{BaseURL: base, APIKey: d.APIKey, Key: key, APIKeyIn: d.APIKeyIn, HTTPClient: c, Retry: retry}, nil
}

// searcher is the fetcher's search, when it has one.
func searcher(f directory.Fetcher) api.Searcher {
	if s, ok := f.(api.Searcher); ok {
		return s
	}
	return nil
}

func (g *Gateway) discoverer(c *http.Client) (*discovery.Discoverer, error) {
	d := g.cfg.Discovery
	order, err := discovery.ParseOrder(d.Order)
	if err != nil {
		return nil, fmt.Errorf("gateway: discovery.order: %w", err)
	}
	dc := discovery.Config{HTTPClient: c, TTL: d.CacheTTL, MaxStale: orOff(d.MaxStale), Clock: g.clock, Order: order, Logger: g.log,
		Revocation: g.revocation}
	communities, err := g.communities()
	if err != nil {
		return nil, err
	}
	dc.Communities = communities
	if d.UDAPTrustAnchors != "" {
		if dc.TrustAnchors, err = readTrustAnchors(d.UDAPTrustAnchors); err != nil {
			return nil, fmt.Errorf("gateway: discovery.udap_trust_anchors: %w", err)
		}
	}
	return discovery.New(dc), nil
}

// loadRetry is the schedule of attempts to load a signing key that
// could not be loaded at start: backoff's own growth and ±50% spread.
func loadRetry(b config.Backoff) retry.Policy {
	return retry.Policy{Initial: b.InitialBackoff, Max: b.MaxBackoff, Multiplier: 1.5, Jitter: retry.Spread}
}

// loadKeys loads every identity's key now, or keeps trying in the
// background with capped exponential backoff.
func (g *Gateway) loadKeys(ctx context.Context) {
	var pending []*identity
	for _, id := range g.identities {
		if _, err := id.holder.Reload(ctx); err != nil {
			g.log.WithError(err).WithField("identity", id.name).Error("gateway: signing key not loaded; retrying in the background")
			pending = append(pending, id)
		}
	}
	if len(pending) == 0 {
		close(g.keyLoaded)
		return
	}
	// Until loaded or ctx ends.
	b := loadRetry(g.cfg.Keys.LoadRetry).BackOff()
	go func() {
		defer close(g.keyLoaded)
		for delay := b.NextBackOff(); len(pending) > 0; {
			if retry.Sleep(ctx, delay) != nil {
				return
			}
			delay = b.NextBackOff()
			still := pending[:0]
			for _, id := range pending {
				if id.holder.Current() != nil {
					continue // the key watch loaded it meanwhile
				}
				if _, err := id.holder.Reload(ctx); err != nil {
					g.log.WithError(err).WithFields(logrus.Fields{"identity": id.name, "retry_in": delay.Round(time.Millisecond).String()}).
						Warn("gateway: signing key still not loaded")
					still = append(still, id)
				}
			}
			pending = still
		}
	}()
}

// WaitReady blocks until every identity's signing key is loaded (by the
// start-up retries or the key watch) or ctx ends.
func (g *Gateway) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !g.keysLoaded() {
		select {
		case <-g.keyLoaded:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// keysLoaded reports whether every identity holds a key.
func (g *Gateway) keysLoaded() bool {
	for _, id := range g.identities {
		if id.holder.Current() == nil {
			return false
		}
	}
	return true
}

// ready is /readyz: every identity has a key whose certificate is valid.
// Vault being unreachable does not make cqgate unready while the keys it
// holds are valid (transit signing then fails per request, clearly); one
// partner being down never does.
func (g *Gateway) ready(context.Context) error {
	var problems []error
	var warnings []string
	for _, id := range g.identities {
		m := id.holder.Current()
		if m == nil {
			problems = append(problems, fmt.Errorf("identity %s: signing key not loaded yet", id.name))
			continue
		}
		if na := m.NotAfter(); !na.IsZero() && g.clock().After(na) {
			problems = append(problems, fmt.Errorf("identity %s: signing certificate expired at %s", id.name, na.UTC().Format(time.RFC3339)))
		}
		unready, warning := g.ownProblem(id.name)
		if unready != nil {
			problems = append(problems, unready)
		}
		if warning != "" {
			warnings = append(warnings, warning)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	if len(warnings) > 0 {
		slices.Sort(warnings)
		return api.ReadyWarnings(warnings)
	}
	return nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
