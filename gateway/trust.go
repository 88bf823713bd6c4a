package gateway

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/discovery"
	"github.com/cqgate/cqgate/internal/revocation"
	"github.com/cqgate/cqgate/keys/jwks"
	"github.com/cqgate/cqgate/tenant"
)

// This file wires UDAP trust into the gateway: the revocation checker
// (partners' signed_metadata chains and cqgate's own certificates), the
// trust communities discovery verifies under, and the published JWK Set.

// revocationChecker builds the checker for CRL, OCSP and AIA fetches. Its
// client dials through rt, which carries the SSRF guard when cqgate built
// it: private and loopback addresses are refused unless a tenant's
// context allows them. Unlike token and FHIR URLs, CRL and OCSP URLs may
// be plain http: what they serve is signed by the issuing CA.
func (g *Gateway) revocationChecker(rt http.RoundTripper) (*revocation.Checker, error) {
	r := g.cfg.UDAP.Revocation
	c, err := revocation.New(revocation.Config{
		Client:      &http.Client{Transport: rt, Timeout: r.Timeout},
		Clock:       g.clock,
		Timeout:     r.Timeout,
		FailureTTL:  r.FailureTTL,
		MaxCacheAge: r.MaxCacheAge,
		MaxCRLBytes: r.MaxCRLBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return c, nil
}

// communities reads udap.communities' trust anchors.
func (g *Gateway) communities() (map[string]discovery.Community, error) {
	out := make(map[string]discovery.Community, len(g.cfg.UDAP.Communities))
	for name, c := range g.cfg.UDAP.Communities {
		policy := revocation.Hard
		if c.Revocation != "" {
			p, err := revocation.ParsePolicy(c.Revocation)
			if err != nil {
				return nil, fmt.Errorf("gateway: udap.communities.%s.revocation: %w", name, err)
			}
			policy = p
		}
		pool, err := readTrustAnchors(c.TrustAnchors...)
		if err != nil {
			return nil, fmt.Errorf("gateway: udap.communities.%s.trust_anchors: %w", name, err)
		}
		out[name] = discovery.Community{URI: c.URI, TrustAnchors: pool, Revocation: policy}
	}
	return out, nil
}

// readTrustAnchors reads PEM files of root certificates into one pool.
func readTrustAnchors(files ...string) (*x509.CertPool, error) {
	var pemData []byte
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			return nil, err
		}
		pemData = append(append(pemData, b...), '\n')
	}
	pool, err := discovery.ParseTrustAnchors(pemData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(files, ", "), err)
	}
	return pool, nil
}

// jwksSet is the JWK Set of every identity.
func (g *Gateway) jwksSet() (*jwks.Set, error) {
	names := make([]string, 0, len(g.identities))
	for name := range g.identities {
		names = append(names, name)
	}
	sort.Strings(names)
	ids := make([]jwks.Identity, 0, len(names))
	for _, name := range names {
		id := g.identities[name]
		ji := jwks.Identity{Name: name, Keys: id.holder}
		if alg := g.identityAlgorithm(name); alg != "" {
			ji.Algorithm = alg
		}
		ids = append(ids, ji)
	}
	set, err := jwks.New(jwks.Options{Clock: g.clock, Overlap: g.cfg.Keys.JWKS.Overlap, MaxAge: g.cfg.Keys.JWKS.MaxAge}, ids...)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return set, nil
}

// identityAlgorithm is the configured algorithm of the named identity.
func (g *Gateway) identityAlgorithm(name string) jose.SignatureAlgorithm {
	s := g.cfg.Client.Algorithm
	if name != config.DefaultIdentity {
		s = g.cfg.Identities[name].Algorithm
	}
	if s == "" {
		return ""
	}
	alg, _ := assertion.SupportedAlgorithm(s) // validated with the config
	return alg
}

// ownCerts holds the last check of each identity's own certificate.
type ownCerts struct {
	mu     sync.Mutex
	status map[string]revocation.OwnStatus
}

func (o *ownCerts) set(name string, st revocation.OwnStatus) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == nil {
		o.status = map[string]revocation.OwnStatus{}
	}
	o.status[name] = st
}

func (o *ownCerts) get(name string) (revocation.OwnStatus, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.status[name]
	return st, ok
}

// expiryWarning is keys.expiry_warning_days as a duration.
func (g *Gateway) expiryWarning() time.Duration {
	return time.Duration(g.cfg.Keys.ExpiryWarningDays) * 24 * time.Hour
}

// checkOwn checks every loaded identity's certificate chain for
// revocation and expiry, records the result for /readyz and the metrics,
// and logs a revoked or expiring certificate.
func (g *Gateway) checkOwn(ctx context.Context) {
	for name, id := range g.identities {
		m := id.holder.Current()
		if m == nil {
			continue
		}
		st := g.revocation.Own(ctx, m.Chain, g.expiryWarning())
		g.own.set(name, st)
		g.Metrics.SetOwnCertificate(name, string(st.Status), st.DaysToExpiry, st.Expiring)
		log := g.log.WithField("identity", name)
		switch {
		case st.Status == revocation.Revoked:
			log.WithError(st.Err).Error("gateway: the signing certificate is revoked")
		case st.Problem() != "":
			log.Warn("gateway: " + st.Problem())
		case st.Status == revocation.Unknown && st.Err != nil:
			log.WithError(st.Err).Info("gateway: the signing certificate's revocation status is unknown")
		}
	}
}

// watchOwn checks the own certificates at start (once keys are loaded),
// every keys.revocation_check_interval and after a key rotation.
func (g *Gateway) watchOwn(ctx context.Context) {
	every := g.cfg.Keys.RevocationCheckInterval
	if every <= 0 {
		return
	}
	go func() {
		select {
		case <-g.keyLoaded:
		case <-ctx.Done():
			return
		}
		g.checkOwn(ctx)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-g.ownNow: // a new key went into service
			}
			g.checkOwn(ctx)
		}
	}()
}

// ownProblems are /readyz's findings about identity name's own
// certificate: a revoked one makes cqgate unready (every partner would
// refuse its assertions); an expiring one is reported without.
func (g *Gateway) ownProblem(name string) (unready error, warning string) {
	st, ok := g.own.get(name)
	if !ok {
		return nil, ""
	}
	if st.Status == revocation.Revoked {
		return fmt.Errorf("identity %s: %s", name, st.Problem()), ""
	}
	if st.Expiring && st.DaysToExpiry >= 0 {
		return nil, fmt.Sprintf("identity %s: %s", name, st.Problem())
	}
	return nil, ""
}

// exchangePurposes are the identities issued per TEFCA exchange purpose
// in community: for each XP, the identity config.ExchangePurposeIdentity
// names.
func exchangePurposes(cfg *config.Config, community string) map[string]tenant.XPIdentity {
	out := map[string]tenant.XPIdentity{}
	for _, id := range cfg.Identities {
		if id.Community != community || id.ExchangePurpose == "" {
			continue
		}
		if name, ok := cfg.ExchangePurposeIdentity(community, id.ExchangePurpose); ok {
			out[id.ExchangePurpose] = tenant.XPIdentity{Identity: name, ClientID: cfg.Identities[name].ClientID}
		}
	}
	return out
}

// tefcaCertification is the TEFCA Basic App Certification t's
// registration carries when its community is TEFCA: the exchange purpose
// of its identity, else the XP codes of its configured purpose_of_use,
// and the community's home_community_id.
func (g *Gateway) tefcaCertification(t *tenant.Tenant) *assertion.TEFCACertification {
	c := &assertion.TEFCACertification{HomeCommunityID: g.cfg.UDAP.Communities[t.Community].HomeCommunityID}
	if xp := g.cfg.Identities[t.IdentityName()].ExchangePurpose; xp != "" {
		c.ExchangePurposes = []string{xp}
		return c
	}
	if t.B2B != nil {
		for _, p := range t.B2B.PurposeOfUse {
			if code, ok := strings.CutPrefix(p, assertion.XPSystem+"#"); ok {
				c.ExchangePurposes = append(c.ExchangePurposes, code)
			}
		}
	}
	return c
}

// checkGrant is the proxy's check that a token's granted scope covers the
// request (tokens.enforce_granted_scope): a 403 before anything goes out.
func checkGrant(enforce bool) func(*tenant.Tenant, *assertion.Token, *http.Request, string) error {
	if !enforce {
		return nil
	}
	return func(t *tenant.Tenant, tok *assertion.Token, r *http.Request, fhirPath string) error {
		query := r.URL.RawQuery
		if len(r.PostForm) > 0 { // a POST _search's parameters (api's checkSearchBody)
			query = strings.TrimPrefix(query+"&"+r.PostForm.Encode(), "&")
		}
		return tok.Covers(t.Scope, r.Method, fhirPath, query) // a *ScopeError is Forbidden
	}
}
