package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/directory"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/buildinfo"
	"github.com/cqgate/cqgate/internal/metrics"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/tenant"
)

// apiKeysRefresh is how often API key hashes kept in Vault are re-read.
const apiKeysRefresh = 5 * time.Minute

// background starts what runs for the gateway's lifetime: key rotation
// watches and the refresh of callers' API keys kept in Vault.
func (g *Gateway) background(ctx context.Context) {
	for _, id := range g.identities {
		if id.watch > 0 {
			go id.holder.Watch(ctx, id.watch)
		}
	}
	if g.apiKeys != nil && g.cfg.Inbound.APIKeysVault.Path != "" {
		if err := g.apiKeys.Refresh(ctx); err != nil {
			g.log.WithError(err).Warn("gateway: reading callers' API keys from Vault failed; retrying")
		}
		go func() {
			t := time.NewTicker(apiKeysRefresh)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := g.apiKeys.Refresh(ctx); err != nil {
						g.log.WithError(err).Warn("gateway: re-reading callers' API keys from Vault failed; the last ones stay in use")
					}
				}
			}
		}()
	}
}

// Reload re-reads what can change without a restart (SIGHUP): signing
// keys, callers' API keys (inbound.api_keys from file, the configuration
// file re-read and validated, when file is not nil; those kept in Vault,
// inbound.api_keys_vault), the inbound TLS certificate, and the audit
// file (after log rotation). Each failure keeps the old state; all are
// reported. What else file changes needs a restart (NeedsRestart); when
// that includes the callers' policies or inbound.auth, the file's keys
// are not swapped in either (keysHeldBack).
func (g *Gateway) Reload(ctx context.Context, file *config.Config) error {
	var errs []error
	for _, id := range g.identities {
		if _, err := id.holder.Reload(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Vault's keys first: the file's are checked against them as they
	// are now, not as they were (a key moved from Vault to the file).
	if g.apiKeys != nil && g.cfg.Inbound.APIKeysVault.Path != "" {
		if err := g.apiKeys.Refresh(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if g.apiKeys != nil && file != nil {
		if held := keysHeldBack(g.cfg, file); len(held) > 0 {
			errs = append(errs, fmt.Errorf("gateway: inbound.api_keys not re-read (the keys in service stay): %s changed in the file, "+
				"and callers' policies change only at a restart, so a re-read key could get a policy neither file gives it; restart cqgate",
				strings.Join(held, " and ")))
		} else if err := g.apiKeys.ReplaceStatic(file.Inbound.APIKeys); err != nil {
			errs = append(errs, fmt.Errorf("gateway: inbound.api_keys (the keys in service stay): %w", err))
		}
	}
	if g.TLS != nil {
		if err := g.TLS.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	if g.Audit != nil {
		if err := g.Audit.Reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keysHeldBack names the settings changed in file that decide what a
// caller's key lets it do (inbound.callers, inbound.auth): Reload does
// not apply them, so it does not swap the keys under them either.
func keysHeldBack(running, file *config.Config) []string {
	var out []string
	for _, key := range config.Changed(running, file) {
		if key == "inbound.callers" || key == "inbound.auth" {
			out = append(out, key)
		}
	}
	return out
}

// Reloaded lists what Reload re-reads, for the log line that says so.
const Reloaded = "signing keys, callers' API keys (inbound.api_keys from the configuration file, inbound.api_keys_vault), the inbound TLS certificate and key, the audit file"

// NeedsRestart returns the settings of file (the configuration file
// re-read) that differ from running and that Reload does not apply:
// they take effect at the next start.
func NeedsRestart(running, file *config.Config) []string {
	var out []string
	for _, key := range config.Changed(running, file) {
		if key != "inbound.api_keys" {
			out = append(out, key)
		}
	}
	return out
}

// Close closes the audit trail and the connections to the shared Redis,
// and flushes trace spans; call it after the server drained.
func (g *Gateway) Close() error {
	var errs []error
	if g.cluster != nil {
		g.Tokens.Close()
		errs = append(errs, g.cluster.Close())
	}
	// Spans not exported yet are sent, for a few seconds at most.
	ctx, cancel := context.WithTimeout(context.Background(), tracing.ShutdownTimeout)
	defer cancel()
	errs = append(errs, g.tracing.Shutdown(ctx))
	if g.Audit != nil {
		errs = append(errs, g.Audit.Close())
	}
	return errors.Join(errs...)
}

// Warmup resolves the configured organizations and fetches their tokens,
// so the first caller does not wait. Failures are logged, not fatal: a
// partner being down must not keep cqgate from starting.
func (g *Gateway) Warmup(ctx context.Context) {
	oids := g.cfg.Warmup.Organizations
	if len(oids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Warmup.Timeout)
	defer cancel()
	if err := g.WaitReady(ctx); err != nil {
		g.log.WithError(err).Warn("gateway: warm-up skipped: signing keys not loaded")
		return
	}
	done := make(chan struct{}, len(oids))
	for _, oid := range oids {
		go func() {
			defer func() { done <- struct{}{} }()
			log := g.log.WithField("oid", oid)
			t, err := g.Tenants.Resolve(ctx, oid)
			if err == nil {
				_, err = g.creds.Token(t.Context(ctx), t)
			}
			if err != nil {
				log.WithError(err).Warn("gateway: warm-up failed")
				return
			}
			log.Info("gateway: warmed up")
		}()
	}
	for range oids {
		<-done
	}
}

// registerMetrics exports what other packages count, read at scrape
// time. Counting observers are passed in at construction (counted,
// vaultError, keyReloaded).
func (g *Gateway) registerMetrics() {
	m := g.Metrics
	stats := g.Tokens.Stats
	if err := m.RegisterCounterFunc("token_background_refreshes_total", "Token exchanges started ahead of expiry in the background.",
		func() float64 { return float64(stats().BackgroundRefreshes) }); err != nil {
		g.log.WithError(err).Warn("gateway: registering a metric failed")
	}
	if err := m.RegisterGaugeFunc("vault_logged_in", "1 when cqgate holds a valid Vault token, 0 otherwise (or without Vault).", func() float64 {
		if g.vault != nil && g.vault.Status().LoggedIn {
			return 1
		}
		return 0
	}); err != nil {
		g.log.WithError(err).Warn("gateway: registering a metric failed")
	}
	def := g.identities[config.DefaultIdentity].holder
	if err := m.RegisterGaugeFunc("signing_key_reload_failures", "Consecutive failed reloads of the default identity's signing key.",
		func() float64 { return float64(def.Status().Failures) }); err != nil {
		g.log.WithError(err).Warn("gateway: registering a metric failed")
	}
	if c := g.fhirConns; c != nil {
		if err := m.RegisterCounterFunc("fhir_connections_opened_total", "Connections opened to partners' FHIR servers. Climbing with the request rate means they are not reused: more partner hosts in use than proxy.max_idle_conns keeps connections for, or partners closing them.",
			func() float64 { return float64(c.Opened()) }); err != nil {
			g.log.WithError(err).Warn("gateway: registering a metric failed")
		}
		if err := m.RegisterGaugeFunc("fhir_connections_open", "Connections to partners' FHIR servers open now, idle keep-alive ones included.",
			func() float64 { return float64(c.Open()) }); err != nil {
			g.log.WithError(err).Warn("gateway: registering a metric failed")
		}
	}
	if err := m.Register(buildInfoCollector(buildinfo.Get())); err != nil {
		g.log.WithError(err).Warn("gateway: registering a metric failed")
	}
}

// counted wraps the directory and discovery so that their lookups are
// counted, when metrics are on. A wrapper keeps what its cache can say
// about an answer still being current (tenant.CurrentLookup,
// tenant.CurrentDiscoverer): without it the tenant Resolver could vouch
// for no tenant, and the Reuser would resolve every organization again
// after proxy.reuse_resolved, however long its cached entries last.
func (g *Gateway) counted(dir tenant.DirectoryLookup, disc tenant.TokenDiscoverer) (tenant.DirectoryLookup, tenant.TokenDiscoverer) {
	if g.Metrics == nil {
		return dir, disc
	}
	cd := &countingDirectory{next: dir, m: g.Metrics, clock: g.clock}
	cs := &countingDiscovery{next: disc, m: g.Metrics, clock: g.clock}
	var outDir tenant.DirectoryLookup = cd
	var outDisc tenant.TokenDiscoverer = cs
	if cur, ok := dir.(tenant.CurrentLookup); ok {
		outDir = &countingCurrentDirectory{countingDirectory: cd, cur: cur}
	}
	if cur, ok := disc.(tenant.CurrentDiscoverer); ok {
		outDisc = &countingCurrentDiscovery{countingDiscovery: cs, cur: cur}
	}
	return outDir, outDisc
}

// vaultOps maps the Vault client's operations to their metric labels.
var vaultOps = map[vault.Op]metrics.VaultOp{
	vault.OpLogin:       metrics.VaultLogin,
	vault.OpRenew:       metrics.VaultRenew,
	vault.OpKVRead:      metrics.VaultKVRead,
	vault.OpKVMetadata:  metrics.VaultKVMetadata,
	vault.OpKVWrite:     metrics.VaultKVWrite,
	vault.OpTransitKey:  metrics.VaultTransitKey,
	vault.OpTransitSign: metrics.VaultTransitSign,
}

// vaultError counts one failed Vault operation.
func (g *Gateway) vaultError(op vault.Op) {
	if mop, ok := vaultOps[op]; ok {
		g.Metrics.VaultError(mop)
	}
}

// keyReloaded counts a signing key reload that put new material in
// service (err nil) or failed.
func (g *Gateway) keyReloaded(err error) {
	if err != nil {
		g.Metrics.SigningKeyReload(metrics.ReloadFailure)
		return
	}
	g.Metrics.SigningKeyReload(metrics.ReloadSuccess)
	if set := g.JWKS; set != nil {
		// The set notices the rotation now, so that the retired key's
		// overlap starts at the rotation, not at the next fetch.
		_, _ = set.Keys()
	}
	select {
	case g.ownNow <- struct{}{}: // check the new certificate's revocation
	default:
	}
}

// countingDirectory counts directory lookups by result.
type countingDirectory struct {
	next  tenant.DirectoryLookup
	m     *metrics.Metrics
	clock func() time.Time
}

func (c *countingDirectory) Lookup(ctx context.Context, oid string) (*directory.Entry, error) {
	start := c.clock()
	e, err := c.next.Lookup(ctx, oid)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		c.m.DirectoryLookup(metrics.LookupNotFound)
	case err != nil:
		c.m.DirectoryLookup(metrics.LookupError)
	case e.Stale:
		c.m.DirectoryLookup(metrics.LookupStale)
	case e.CachedAt.Before(start):
		c.m.DirectoryLookup(metrics.LookupHit)
	default:
		c.m.DirectoryLookup(metrics.LookupMiss)
	}
	return e, err
}

// countingDiscovery counts discoveries by result.
type countingDiscovery struct {
	next  tenant.TokenDiscoverer
	m     *metrics.Metrics
	clock func() time.Time
}

func (c *countingDiscovery) Discover(ctx context.Context, req discovery.Request) (*discovery.Result, error) {
	start := c.clock()
	r, err := c.next.Discover(ctx, req)
	switch {
	case err != nil:
		c.m.DiscoveryLookup(metrics.LookupError)
	case r.Stale:
		c.m.DiscoveryLookup(metrics.LookupStale)
	case r.FetchedAt.Before(start):
		c.m.DiscoveryLookup(metrics.LookupHit)
	default:
		c.m.DiscoveryLookup(metrics.LookupMiss)
	}
	return r, err
}

// countingCurrentDirectory is a countingDirectory over a directory that
// says whether an answer is still current, and says it too.
type countingCurrentDirectory struct {
	*countingDirectory
	cur tenant.CurrentLookup
}

var _ tenant.CurrentLookup = (*countingCurrentDirectory)(nil)

func (c *countingCurrentDirectory) Current(oid string, a directory.Answer) bool {
	return c.cur.Current(oid, a)
}

// countingCurrentDiscovery is a countingDiscovery over a discoverer that
// says whether a result is still current, and says it too.
type countingCurrentDiscovery struct {
	*countingDiscovery
	cur tenant.CurrentDiscoverer
}

var _ tenant.CurrentDiscoverer = (*countingCurrentDiscovery)(nil)

func (c *countingCurrentDiscovery) Key(req discovery.Request) (string, bool) { return c.cur.Key(req) }

func (c *countingCurrentDiscovery) Version(key string, res *discovery.Result) (discovery.Cached, bool) {
	return c.cur.Version(key, res)
}

func (c *countingCurrentDiscovery) Current(version discovery.Cached) bool {
	return c.cur.Current(version)
}

// scrapeHandler serves /metrics after bringing up to date what is read
// from the key holders: the default identity's certificate expiry.
func (g *Gateway) scrapeHandler() http.Handler {
	h := g.Metrics.Handler()
	def := g.identities[config.DefaultIdentity].holder
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := def.Current(); m != nil {
			g.Metrics.SetSigningCertificateNotAfter(m.NotAfter())
		}
		h.ServeHTTP(w, r)
	})
}
