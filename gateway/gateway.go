package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/api"
	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/retry"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/keys"
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
}

// Gateway is an assembled cqgate.
type Gateway struct {
	// Handler serves the gateway's HTTP API.
	Handler http.Handler
	// Keys holds the default identity's signing material.
	Keys *keys.Holder
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
	creds      *credentials
	apiKeys    *callerauth.APIKeys
	regs       *registrations
	reuse      *tenant.Reuser
	keyLoaded  chan struct{}
	cluster    *cluster.Cluster // nil without cluster.redis.url
}

// New assembles a gateway from a validated configuration. It loads the
// signing keys once; if that fails, it keeps retrying in the background
// (until ctx ends) and /readyz reports why it is not ready.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: opts.Logger, clock: opts.Clock, keyLoaded: make(chan struct{})}
	if g.log == nil {
		g.log = logrus.New()
	}
	if g.clock == nil {
		g.clock = time.Now
	}
	// FHIR requests have their own pool, capped per host; token and
	// discovery requests to the same hosts never queue behind them.
	base, fhirBase := opts.Transport, opts.Transport
	if base == nil {
		base = NewTransport(TransportOptions{ResponseHeaderTimeout: cfg.Proxy.Timeout, Guard: true})
		fhirBase = NewTransport(TransportOptions{
			ResponseHeaderTimeout: cfg.Proxy.Timeout, Guard: true, ReadIdleTimeout: cfg.Proxy.Timeout,
			MaxConnsPerHost: cfg.Proxy.MaxConnsPerHost, MaxIdleConnsPerHost: cfg.Proxy.MaxIdleConnsPerHost,
		})
	}
	dirBase := opts.DirectoryTransport
	if dirBase == nil {
		dirBase = NewTransport(TransportOptions{ResponseHeaderTimeout: cfg.Directory.Timeout})
	}
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
			vault.WithErrorObserver(g.vaultError)}
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

	var err error
	if g.identities, err = g.buildIdentities(opts.Keys, client(base, cfg.Tokens.Timeout)); err != nil {
		return nil, err
	}
	g.Keys = g.identities[config.DefaultIdentity].holder

	fetcher, err := g.directoryFetcher(client(dirBase, cfg.Directory.Timeout))
	if err != nil {
		return nil, err
	}
	g.Directory = directory.NewResolver(directory.ResolverConfig{
		Fetcher:     fetcher,
		Static:      staticEntries(cfg.Organizations),
		TTL:         cfg.Directory.CacheTTL,
		MaxStale:    cfg.Directory.MaxStale,
		NegativeTTL: cfg.Directory.NegativeTTL,
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
		RefreshAhead:    cfg.Tokens.RefreshAhead,
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
	g.creds = &credentials{cache: g.Tokens, identities: g.identities, metrics: g.Metrics}

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
	if cfg.UDAP.Registrations.Path != "" {
		g.regs = &registrations{g: g, mount: cfg.UDAP.Registrations.Mount, path: cfg.UDAP.Registrations.Path, auto: settings.autoRegister}
		g.Tenants.Registrations = g.regs
	}

	if err := g.buildInbound(); err != nil {
		return nil, err
	}
	proxyErrLog, closeProxyErrLog := StdLogger(g.log)
	context.AfterFunc(ctx, closeProxyErrLog)
	px := proxy.New(proxy.Config{
		Transport:     fhirBase,
		Credentials:   g.creds,
		Logger:        g.log,
		MaxReplayBody: cfg.Proxy.MaxReplayBody,
		ErrorLog:      proxyErrLog,
	})
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
	}
	if limiter := rateLimiter(cfg, g.cluster); limiter != nil {
		apiCfg.Limiter = limiter
	}
	if g.apiKeys != nil {
		apiCfg.Auth = g.apiKeys
	} else if cfg.Inbound.Auth == callerauth.MethodMTLS {
		apiCfg.Auth = callerauth.MTLS{IdentityFrom: cfg.Inbound.MTLSIdentity}
	}
	if len(cfg.Inbound.Callers) > 0 {
		if apiCfg.Policy, err = callerauth.NewPolicy(cfg.Inbound.PolicyRules()); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if g.Metrics != nil {
		apiCfg.Observer = g.Metrics
		apiCfg.Metrics, apiCfg.MetricsPath = g.scrapeHandler(), cfg.Metrics.Path
		g.registerMetrics()
	}
	g.Handler = api.New(apiCfg)

	g.loadKeys(ctx)
	g.background(ctx)
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
	dc := discovery.Config{HTTPClient: c, TTL: d.CacheTTL, MaxStale: d.MaxStale, Clock: g.clock, Order: order, Logger: g.log}
	if d.UDAPTrustAnchors != "" {
		pem, err := readFile(d.UDAPTrustAnchors)
		if err != nil {
			return nil, fmt.Errorf("gateway: discovery.udap_trust_anchors: %w", err)
		}
		if dc.TrustAnchors, err = discovery.ParseTrustAnchors(pem); err != nil {
			return nil, fmt.Errorf("gateway: discovery.udap_trust_anchors %s: %w", d.UDAPTrustAnchors, err)
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
	for _, id := range g.identities {
		m := id.holder.Current()
		if m == nil {
			problems = append(problems, fmt.Errorf("identity %s: signing key not loaded yet", id.name))
			continue
		}
		if na := m.NotAfter(); !na.IsZero() && g.clock().After(na) {
			problems = append(problems, fmt.Errorf("identity %s: signing certificate expired at %s", id.name, na.UTC().Format(time.RFC3339)))
		}
	}
	return errors.Join(problems...)
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// TransportOptions shape a transport from NewTransport.
type TransportOptions struct {
	// ResponseHeaderTimeout bounds the wait for response headers.
	ResponseHeaderTimeout time.Duration
	// Guard refuses connections to addresses that are not public unless
	// the request's context allows them (egress.AllowPrivate).
	Guard bool
	// MaxConnsPerHost caps connections per host (0: no cap); requests
	// beyond it wait for one.
	MaxConnsPerHost int
	// MaxIdleConnsPerHost is how many idle connections per host are kept
	// (default 64).
	MaxIdleConnsPerHost int
	// ReadIdleTimeout bounds every wait for the peer to send more: a
	// response that stalls halfway through its body fails (the caller's
	// answer ends, truncated) instead of holding the caller, a goroutine
	// and a connection for as long as the peer likes. Time spent writing
	// to a slow caller does not count. An idle pooled connection is
	// closed after it too. Zero means no bound.
	ReadIdleTimeout time.Duration
}

// NewTransport returns a transport for outbound calls: pooled keep-alive
// connections per host, HTTP/2 where offered, and bounded connect, TLS
// and response-header waits.
func NewTransport(o TransportOptions) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	// Behind an egress proxy (HTTPS_PROXY), connections go to the proxy,
	// not to the tenant: the URL check (egress.CheckURL) still applies,
	// the connect-time guard cannot.
	if o.Guard && !proxyConfigured() {
		d.ControlContext = egress.Guard
	}
	idle := o.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = 64
	}
	dial := d.DialContext
	if o.ReadIdleTimeout > 0 {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: o.ReadIdleTimeout}, nil
		}
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
	}
}

// idleConn moves its read deadline forward at every Read, so that only
// a peer that stays silent for idle fails a read. It is per connection,
// not per request: nothing is allocated on the hot path.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// proxyConfigured reports whether the environment names an HTTP proxy.
func proxyConfigured() bool {
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}
