package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/api"
	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/keys"
	"github.com/cqgate/cqgate/proxy"
	"github.com/cqgate/cqgate/tenant"
)

// Options are what a Config cannot say.
type Options struct {
	Logger logrus.FieldLogger
	// Keys replaces the key source named by the configuration (the dev
	// sandbox's in-memory key, tests).
	Keys keys.Source
	// Transport is the base transport for every outbound call; a tuned
	// clone of http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Clock is time.Now when nil.
	Clock func() time.Time
}

// Gateway is an assembled cqgate.
type Gateway struct {
	// Handler serves the gateway's HTTP API.
	Handler http.Handler
	// Keys holds the current signing material.
	Keys *keys.Holder
	// Tokens is the access-token cache.
	Tokens *assertion.Cache
	// Directory resolves OIDs to directory entries.
	Directory *directory.Resolver

	log       logrus.FieldLogger
	keyLoaded chan struct{}
}

// New assembles a gateway from a validated configuration. It loads the
// signing key once; if that fails, it keeps retrying in the background
// (until ctx ends) and /readyz reports why it is not ready.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	log := opts.Logger
	if log == nil {
		log = logrus.New()
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	base := opts.Transport
	if base == nil {
		base = NewTransport(cfg.Proxy.Timeout)
	}
	client := func(timeout time.Duration) *http.Client {
		return &http.Client{Transport: base, Timeout: timeout}
	}

	resolver := directory.NewResolver(directory.ResolverConfig{
		Fetcher: directoryFetcher(cfg.Directory, client(cfg.Directory.Timeout)),
		Static:  staticEntries(cfg.Organizations),
		TTL:     cfg.Directory.CacheTTL,
		Clock:   clock,
	})
	disc := discovery.New(discovery.Config{
		HTTPClient: client(cfg.Discovery.Timeout),
		TTL:        cfg.Discovery.CacheTTL,
		Clock:      clock,
	})

	src := opts.Keys
	if src == nil {
		var err error
		if src, err = keySource(cfg.Vault, cfg.Keys); err != nil {
			return nil, err
		}
	}
	holder := keys.NewHolder(src, keys.HolderOptions{Clock: clock, Logger: log})

	signer := &assertion.Signer{Keys: holder, Clock: clock, Lifetime: cfg.Client.AssertionLifetime}
	// A token endpoint that redirects is not followed: the assertion is
	// for its URL only.
	tokenClient := client(cfg.Tokens.Timeout)
	tokenClient.CheckRedirect = noRedirects
	exchanger := &assertion.Exchanger{Signer: signer, HTTPClient: tokenClient, Clock: clock}
	cache := assertion.NewCache(assertion.CacheConfig{
		RefreshMargin:   cfg.Tokens.RefreshMargin,
		DefaultLifetime: cfg.Tokens.DefaultLifetime,
		Clock:           clock,
	})

	defaultAlg, _ := assertion.SupportedAlgorithm(cfg.Client.Algorithm)
	tenants := &tenant.Resolver{
		Directory: resolver,
		Discovery: disc,
		Defaults:  tenant.Settings{ClientID: cfg.Client.ClientID, Scope: cfg.Client.Scope, Algorithm: defaultAlg},
		Orgs:      orgSettings(cfg.Organizations),
	}
	proxyErrLog, closeProxyErrLog := StdLogger(log)
	context.AfterFunc(ctx, closeProxyErrLog)
	px := proxy.New(proxy.Config{
		Transport:     base,
		Credentials:   &credentials{cache: cache, exchanger: exchanger},
		Logger:        log,
		MaxReplayBody: cfg.Proxy.MaxReplayBody,
		ErrorLog:      proxyErrLog,
	})

	g := &Gateway{Keys: holder, Tokens: cache, Directory: resolver, log: log, keyLoaded: make(chan struct{})}
	g.Handler = api.New(api.Config{Tenants: tenants, Proxy: px, Logger: log, Ready: g.ready})
	g.loadKeys(ctx)
	return g, nil
}

// loadKeys loads the signing key now, or keeps trying in the background
// with capped exponential backoff.
func (g *Gateway) loadKeys(ctx context.Context) {
	_, err := g.Keys.Reload(ctx)
	if err == nil {
		close(g.keyLoaded)
		return
	}
	g.log.WithError(err).Error("gateway: signing key not loaded; retrying in the background")
	go func() {
		for delay := time.Second; ; delay = min(2*delay, time.Minute) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			_, err := g.Keys.Reload(ctx)
			if err == nil {
				close(g.keyLoaded)
				return
			}
			g.log.WithError(err).WithField("retry_in", min(2*delay, time.Minute).String()).Warn("gateway: signing key still not loaded")
		}
	}()
}

// WaitReady blocks until the signing key is loaded or ctx ends.
func (g *Gateway) WaitReady(ctx context.Context) error {
	select {
	case <-g.keyLoaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) ready(context.Context) error {
	m := g.Keys.Current()
	if m == nil {
		return errors.New("signing key not loaded yet")
	}
	if na := m.NotAfter(); !na.IsZero() && time.Now().After(na) {
		return fmt.Errorf("signing certificate expired at %s", na.UTC().Format(time.RFC3339))
	}
	return nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewTransport returns the transport for every outbound call: pooled
// keep-alive connections per tenant, HTTP/2 where offered, and bounded
// connect, TLS and response-header waits.
func NewTransport(responseHeaderTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
	}
}

func directoryFetcher(cfg config.Directory, c *http.Client) directory.Fetcher {
	if cfg.URL == "" {
		return nil
	}
	base := strings.TrimRight(cfg.URL, "/")
	if cfg.Flavor == "stu3" {
		return &directory.STU3Client{BaseURL: base, APIKey: cfg.APIKey, HTTPClient: c}
	}
	return &directory.R4Client{BaseURL: base, APIKey: cfg.APIKey, APIKeyIn: cfg.APIKeyIn, HTTPClient: c}
}

func keySource(vc config.Vault, cfg config.Keys) (keys.Source, error) {
	switch cfg.Source {
	case "pem":
		return &keys.PEMFiles{CertificateFile: cfg.PEM.CertificateFile, PrivateKeyFile: cfg.PEM.PrivateKeyFile}, nil
	case "vault":
		v := cfg.Vault
		client, err := keys.NewVaultClient(keys.VaultConfig{
			Address:   vc.Address,
			Token:     vc.Auth.Token,
			TokenFile: vc.Auth.TokenFile,
			Namespace: vc.Namespace,
			CACert:    vc.CACert,
			Timeout:   vc.Timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		return &keys.VaultKV{
			Client:           client,
			Mount:            v.Mount,
			Path:             v.Path,
			CertificateField: v.CertificateField,
			PrivateKeyField:  v.PrivateKeyField,
		}, nil
	}
	return nil, fmt.Errorf("gateway: keys.source %q needs a key supplied in memory", cfg.Source)
}

// staticEntries turns organizations configured with a fhir_base into
// directory entries that never touch the network.
func staticEntries(orgs map[string]config.Organization) map[string]*directory.Organization {
	out := make(map[string]*directory.Organization)
	for oid, o := range orgs {
		if o.FHIRBase == "" {
			continue
		}
		name := o.Name
		if name == "" {
			name = oid
		}
		out[oid] = &directory.Organization{
			OID:    oid,
			Name:   name,
			Active: true,
			Endpoints: []directory.Endpoint{{
				ID:             "configured-fhir",
				Name:           "FHIR base from cqgate configuration",
				Address:        o.FHIRBase,
				ConnectionType: "hl7-fhir-rest",
				Transaction:    "FHIR REST",
				Status:         "active",
			}},
		}
	}
	return out
}

func orgSettings(orgs map[string]config.Organization) map[string]tenant.Settings {
	out := make(map[string]tenant.Settings, len(orgs))
	for oid, o := range orgs {
		var alg jose.SignatureAlgorithm
		if o.Algorithm != "" {
			alg, _ = assertion.SupportedAlgorithm(o.Algorithm) // validated with the config
		}
		out[oid] = tenant.Settings{TokenURL: o.TokenURL, ClientID: o.ClientID, Scope: o.Scope, Algorithm: alg}
	}
	return out
}
