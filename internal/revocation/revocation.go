package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
	"golang.org/x/sync/singleflight"
)

// Policy says what an unknown revocation status means.
type Policy string

const (
	// Hard refuses a certificate whose status cannot be checked.
	Hard Policy = "hard"
	// Soft refuses only a certificate definitely revoked.
	Soft Policy = "soft"
)

// ParsePolicy reads a configured policy name: "hard" or "soft".
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case Hard, Soft:
		return p, nil
	}
	return "", fmt.Errorf("revocation: unknown policy %q (want hard or soft)", s)
}

// Status is a certificate's revocation status.
type Status string

const (
	Good    Status = "good"
	Revoked Status = "revoked"
	Unknown Status = "unknown"
)

// Defaults for Config.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultMaxCRLBytes     = 8 << 20
	DefaultMaxOCSPBytes    = 64 << 10
	DefaultMaxCertBytes    = 64 << 10
	DefaultMaxAIAFetches   = 4
	DefaultFailureTTL      = time.Minute
	DefaultMaxCacheAge     = 24 * time.Hour
	DefaultMaxCacheEntries = 4096
	// DefaultClockSkew is the tolerance for thisUpdate in the future and
	// nextUpdate in the past.
	DefaultClockSkew = time.Minute
	// noNextUpdateTTL bounds the caching of an answer that names no
	// expiry (CRLs and OCSP answers without nextUpdate are refused
	// before they are cached: RFC 5280 section 5.1.2.5, RFC 5019 §4).
	noNextUpdateTTL = 5 * time.Minute
	// maxURLsPerSource bounds how many OCSP responders and how many CRL
	// distribution points of one certificate are tried.
	maxURLsPerSource = 2
)

// Config configures a Checker. Client is required; zero values elsewhere
// take the defaults.
type Config struct {
	// Client makes every fetch (CRLs, OCSP, AIA certificates). cqgate
	// passes one with the SSRF guard.
	Client *http.Client
	// Clock tells the time; time.Now if nil.
	Clock func() time.Time
	// Timeout bounds each fetch.
	Timeout time.Duration
	// MaxCRLBytes, MaxOCSPBytes and MaxCertBytes bound response bodies.
	MaxCRLBytes, MaxOCSPBytes, MaxCertBytes int64
	// MaxAIAFetches bounds the intermediates Verify fetches per chain.
	MaxAIAFetches int
	// FailureTTL is how long a failed fetch or an invalid answer is
	// remembered before the source is asked again.
	FailureTTL time.Duration
	// MaxCacheAge caps how long an answer is cached, whatever its
	// nextUpdate.
	MaxCacheAge time.Duration
	// MaxCacheEntries bounds the cache.
	MaxCacheEntries int
	// ClockSkew is the tolerance for thisUpdate and nextUpdate.
	ClockSkew time.Duration
}

// Checker checks certificate chains for revocation. It is safe for
// concurrent use; one Checker (one cache) serves every trust community.
type Checker struct {
	cfg   Config
	cache *cache
	group singleflight.Group
}

// New returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.Client == nil {
		return nil, errors.New("revocation: Config.Client is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.FailureTTL, DefaultFailureTTL)
	def(&cfg.MaxCacheAge, DefaultMaxCacheAge)
	def(&cfg.ClockSkew, DefaultClockSkew)
	def64(&cfg.MaxCRLBytes, DefaultMaxCRLBytes)
	def64(&cfg.MaxOCSPBytes, DefaultMaxOCSPBytes)
	def64(&cfg.MaxCertBytes, DefaultMaxCertBytes)
	if cfg.MaxAIAFetches <= 0 {
		cfg.MaxAIAFetches = DefaultMaxAIAFetches
	}
	if cfg.MaxCacheEntries <= 0 {
		cfg.MaxCacheEntries = DefaultMaxCacheEntries
	}
	return &Checker{cfg: cfg, cache: newCache(cfg.MaxCacheEntries)}, nil
}

// FetchTimeout is how long one fetch (a CRL, an OCSP answer, an AIA
// certificate) may take, Config.Timeout, so that a caller can give a
// check the time it needs. A nil Checker has none.
func (c *Checker) FetchTimeout() time.Duration {
	if c == nil {
		return 0
	}
	return c.cfg.Timeout
}

// CertStatus is what Check found for one certificate.
type CertStatus struct {
	Subject string
	// Serial is the serial number in hexadecimal.
	Serial string
	Status Status
	// Source is the answer's origin, "ocsp <url>" or "crl <url>"; empty
	// when the status is unknown.
	Source string
	// NextUpdate is the answer's nextUpdate, if it has one.
	NextUpdate time.Time
	// Err is a *RevokedError for Revoked, an *UnavailableError for
	// Unknown, nil for Good.
	Err error
}

// Check checks every certificate of chain but the last, the trust anchor,
// against its issuer (the next certificate): a verified chain, leaf
// first, as x509.Certificate.Verify returns it. It returns what it found
// per certificate (leaf first) and an error: a *RevokedError when a
// certificate is revoked, an *UnavailableError when under the Hard policy
// a status is unknown. The error names the certificate and its serial,
// never anything secret.
//
// A check that runs past ctx's deadline leaves the statuses not found by
// then unknown (the attempts cut short wrap context.DeadlineExceeded):
// Soft accepts them, Hard refuses with the *UnavailableError. A canceled
// ctx, whose caller wants no answer, ends the check with its error.
func (c *Checker) Check(ctx context.Context, chain []*x509.Certificate, p Policy) ([]CertStatus, error) {
	if len(chain) == 0 {
		return nil, errors.New("revocation: empty certificate chain")
	}
	for i, cert := range chain {
		if cert == nil {
			return nil, fmt.Errorf("revocation: certificate %d of the chain is missing", i)
		}
	}
	out := make([]CertStatus, 0, len(chain)-1)
	for i := 0; i+1 < len(chain); i++ {
		st := c.status(ctx, chain[i], chain[i+1])
		out = append(out, st)
		if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return out, fmt.Errorf("revocation: %w", err)
		}
		switch {
		case st.Status == Revoked:
			return out, st.Err
		case st.Status == Unknown && p != Soft:
			return out, st.Err
		}
	}
	return out, nil
}

// VerifyAndCheck verifies certs (leaf first, then any intermediates, as
// an x5c header carries them) with opts, completing missing intermediates
// through AIA (see Verify), and checks the verified chains for revocation
// under p. It returns the first chain that passes with its statuses; if
// none does, the first chain's error.
func (c *Checker) VerifyAndCheck(ctx context.Context, certs []*x509.Certificate, opts x509.VerifyOptions, p Policy) ([]*x509.Certificate, []CertStatus, error) {
	if len(certs) == 0 || certs[0] == nil {
		return nil, nil, errors.New("revocation: no certificates to verify")
	}
	pool := x509.NewCertPool()
	if opts.Intermediates != nil {
		pool = opts.Intermediates.Clone()
	}
	for _, ic := range certs[1:] {
		if ic != nil {
			pool.AddCert(ic)
		}
	}
	opts.Intermediates = pool
	chains, err := c.Verify(ctx, certs[0], opts)
	if err != nil {
		return nil, nil, err
	}
	var firstErr error
	var firstStatus []CertStatus
	for _, chain := range chains {
		st, err := c.Check(ctx, chain, p)
		if err == nil {
			return chain, st, nil
		}
		if firstErr == nil {
			firstErr, firstStatus = err, st
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstStatus, firstErr
}

// status finds cert's status: OCSP first, then CRLs; the first definite
// answer wins.
func (c *Checker) status(ctx context.Context, cert, issuer *x509.Certificate) CertStatus {
	st := CertStatus{Subject: cert.Subject.String(), Serial: serialHex(cert), Status: Unknown}
	var attempts []Attempt
	for _, u := range fetchable(cert.OCSPServer) {
		src := "ocsp " + u
		r, err := c.ocsp(ctx, u, cert, issuer)
		if err != nil {
			attempts = append(attempts, Attempt{Source: src, Err: err})
			continue
		}
		switch r.Status {
		case ocsp.Good:
			st.Status, st.Source, st.NextUpdate = Good, src, r.NextUpdate
			return st
		case ocsp.Revoked:
			st.Status, st.Source, st.NextUpdate = Revoked, src, r.NextUpdate
			st.Err = &RevokedError{Subject: st.Subject, Serial: st.Serial, Reason: r.RevocationReason, RevokedAt: r.RevokedAt, Source: src}
			return st
		default:
			attempts = append(attempts, Attempt{Source: src, Err: errors.New("the responder does not know the certificate (status unknown)")})
		}
	}
	for _, u := range fetchable(cert.CRLDistributionPoints) {
		src := "crl " + u
		l, err := c.crl(ctx, u, issuer)
		if err != nil {
			attempts = append(attempts, Attempt{Source: src, Err: err})
			continue
		}
		if err := l.scope.covers(cert); err != nil {
			attempts = append(attempts, Attempt{Source: src, Err: err})
			continue
		}
		st.Source, st.NextUpdate = src, l.list.NextUpdate
		if e, ok := l.revoked[cert.SerialNumber.String()]; ok {
			st.Status = Revoked
			st.Err = &RevokedError{Subject: st.Subject, Serial: st.Serial, Reason: e.ReasonCode, RevokedAt: e.RevocationTime, Source: src}
			return st
		}
		st.Status = Good
		return st
	}
	if len(attempts) == 0 {
		attempts = append(attempts, Attempt{Err: errors.New("the certificate names no OCSP responder and no http(s) CRL distribution point")})
	}
	st.Err = &UnavailableError{Subject: st.Subject, Serial: st.Serial, Attempts: attempts}
	return st
}

// fetchable returns the http and https URLs of urls, at most
// maxURLsPerSource.
func fetchable(urls []string) []string {
	var out []string
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		out = append(out, s)
		if len(out) == maxURLsPerSource {
			break
		}
	}
	return out
}

func serialHex(cert *x509.Certificate) string {
	if cert.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%X", cert.SerialNumber)
}

// fingerprint identifies a certificate in cache keys.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return string(sum[:])
}

// until is when an answer with nextUpdate next, fetched at now, leaves
// the cache.
func (c *Checker) until(now, next time.Time) time.Time {
	limit := now.Add(c.cfg.MaxCacheAge)
	if next.IsZero() {
		return now.Add(min(noNextUpdateTTL, c.cfg.MaxCacheAge))
	}
	if next.After(limit) {
		return limit
	}
	return next
}

// current checks an answer's thisUpdate and nextUpdate against now.
func (c *Checker) current(what string, this, next time.Time) error {
	now := c.cfg.Clock()
	switch {
	case this.After(now.Add(c.cfg.ClockSkew)):
		return fmt.Errorf("%s is issued in the future (thisUpdate %s)", what, this.UTC().Format(time.RFC3339))
	case !next.IsZero() && now.After(next.Add(c.cfg.ClockSkew)):
		return fmt.Errorf("%s is stale (nextUpdate %s passed)", what, next.UTC().Format(time.RFC3339))
	case !next.IsZero() && next.Before(this):
		return fmt.Errorf("%s has nextUpdate %s before thisUpdate %s", what, next.UTC().Format(time.RFC3339), this.UTC().Format(time.RFC3339))
	}
	return nil
}
