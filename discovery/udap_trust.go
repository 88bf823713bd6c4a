package discovery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/internal/revocation"
)

// DefaultCommunity is the name of the trust community of requests that
// name none: Config.TrustAnchors, or the community configured under this
// name.
const DefaultCommunity = "default"

// Community is a UDAP trust community: the anchors its members'
// certificates chain to, the URI that selects it on .well-known/udap
// (UDAP Security IG 2.0 section 2.2, the "community" query parameter),
// and what an unknown revocation status means for it.
type Community struct {
	// URI is sent as ?community=<URI> on {base}/.well-known/udap; empty
	// sends no parameter (the server's default community).
	URI string
	// TrustAnchors are the community's root certificates.
	TrustAnchors *x509.CertPool
	// Revocation is the policy for signed_metadata chains: revocation.Hard
	// (the zero value) or revocation.Soft.
	Revocation revocation.Policy
}

// ChainChecker checks a verified chain for revocation: *revocation.Checker
// implements it. Verify completes missing intermediates (AIA).
type ChainChecker interface {
	VerifyAndCheck(ctx context.Context, certs []*x509.Certificate, opts x509.VerifyOptions, p revocation.Policy) ([]*x509.Certificate, []revocation.CertStatus, error)
}

// TrustError is a server's signed_metadata that cqgate must not trust
// and must not work around: a certificate of its chain is revoked, its
// revocation status cannot be told under the community's hard policy, or
// it was signed under another trust community than the organization's.
// Discover stops at it (no less preferred source is tried, no cached
// result is served) and the gateway answers 502 (failure.UpstreamUntrusted).
//
// Its message names the FHIR base, the community and the certificate.
// errors.As finds the *revocation.RevokedError or
// *revocation.UnavailableError behind it, but the transport failures of
// the revocation sources are not unwrapped: a CRL server that timed out
// is the partner's trust failure, not a gateway timeout.
type TrustError struct {
	// FHIRBase is the server whose metadata was refused.
	FHIRBase string
	// Community is the name of the organization's trust community.
	Community string
	// SignedUnder names the other configured community the metadata
	// chains to, when that is why it was refused.
	SignedUnder string
	// Err is a *revocation.RevokedError, a *revocation.UnavailableError
	// or the chain's verification error.
	Err error
}

func (e *TrustError) Error() string {
	switch {
	case e.SignedUnder != "":
		return fmt.Sprintf("discovery: UDAP metadata of %s is signed under trust community %s, not under %s, the organization's community: %v",
			e.FHIRBase, quote(e.SignedUnder), quote(e.Community), e.Err)
	case errors.As(e.Err, new(*revocation.RevokedError)), errors.As(e.Err, new(*revocation.UnavailableError)):
		return fmt.Sprintf("discovery: UDAP metadata of %s is not trusted in community %s: %v", e.FHIRBase, quote(e.Community), e.Err)
	}
	return fmt.Sprintf("discovery: UDAP metadata of %s is not signed under trust community %s: %v", e.FHIRBase, quote(e.Community), e.Err)
}

// Upstream reports that the failure lies with the FHIR server.
func (e *TrustError) Upstream() bool { return true }

// As lets errors.As find the revocation error, without exposing what
// lies behind it.
func (e *TrustError) As(target any) bool {
	switch t := target.(type) {
	case **revocation.RevokedError:
		return errors.As(e.Err, t)
	case **revocation.UnavailableError:
		var ue *revocation.UnavailableError
		if errors.As(e.Err, &ue) {
			*t = ue
			return true
		}
	}
	return false
}

// Is matches revocation.ErrRevoked and revocation.ErrUnavailable.
func (e *TrustError) Is(target error) bool {
	switch target {
	case revocation.ErrRevoked:
		return errors.As(e.Err, new(*revocation.RevokedError))
	case revocation.ErrUnavailable:
		return errors.As(e.Err, new(*revocation.UnavailableError))
	}
	return false
}

// trust is what verifies a signed_metadata chain for one discovery: the
// organization's community and, when revocation is checked, the checker.
type trust struct {
	// name is the community's name, for errors.
	name      string
	community Community
	// explicit says the organization named its community: metadata that
	// does not chain to it is a TrustError, not a failed source.
	explicit bool
	// others are the other configured communities, to name the one a
	// chain belongs to instead.
	others map[string]Community
	// checker checks revocation; nil checks none (chain only).
	checker ChainChecker
	ctx     context.Context
}

// anchors returns the community's trust anchors, nil when none.
func (tr *trust) anchors() *x509.CertPool {
	if tr == nil {
		return nil
	}
	return tr.community.TrustAnchors
}

// verifyChain verifies the x5c certificates of header to the community's
// anchors and, with a checker, completes missing intermediates through
// AIA and checks every certificate for revocation under the community's
// policy. It returns the verified leaf.
func (tr *trust) verifyChain(token string, header jose.Header, opts x509.VerifyOptions, base string) (*x509.Certificate, error) {
	if tr.checker == nil {
		chains, err := header.Certificates(opts)
		switch {
		case errors.Is(err, jose.ErrMissingX5cHeader):
			return nil, errors.New("signed_metadata: bad chain: the JWT header has no x5c certificates")
		case err != nil:
			return nil, tr.chainError(header, opts, base, err)
		case len(chains) == 0 || len(chains[0]) == 0:
			return nil, errors.New("signed_metadata: bad chain: no verified chain")
		case len(chains[0]) > maxSignedMetadataChain:
			return nil, fmt.Errorf("signed_metadata: bad chain: %d certificates, at most %d allowed", len(chains[0]), maxSignedMetadataChain)
		}
		return chains[0][0], nil
	}
	certs, err := revocation.X5C(token)
	if err != nil {
		return nil, fmt.Errorf("signed_metadata: bad chain: %w", err)
	}
	chain, _, err := tr.checker.VerifyAndCheck(tr.ctx, certs, opts, tr.community.Revocation)
	var (
		re *revocation.RevokedError
		ue *revocation.UnavailableError
	)
	switch {
	case err == nil:
		if len(chain) > maxSignedMetadataChain {
			return nil, fmt.Errorf("signed_metadata: bad chain: %d certificates, at most %d allowed", len(chain), maxSignedMetadataChain)
		}
		return chain[0], nil
	case errors.As(err, &re), errors.As(err, &ue):
		return nil, &TrustError{FHIRBase: base, Community: tr.name, Err: err}
	}
	return nil, tr.chainError(header, opts, base, err)
}

// chainError is the error for x5c certificates that do not chain to the
// community's anchors: a TrustError naming the community when they chain
// to another configured one or the organization named its community, a
// failed source otherwise.
func (tr *trust) chainError(header jose.Header, opts x509.VerifyOptions, base string, err error) error {
	names := make([]string, 0, len(tr.others))
	for name := range tr.others {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := tr.others[name]
		if c.TrustAnchors == nil {
			continue
		}
		o := opts
		o.Roots = c.TrustAnchors
		if _, oerr := header.Certificates(o); oerr == nil {
			return &TrustError{FHIRBase: base, Community: tr.name, SignedUnder: name, Err: err}
		}
	}
	if tr.explicit {
		return &TrustError{FHIRBase: base, Community: tr.name, Err: err}
	}
	return fmt.Errorf("signed_metadata: bad chain: the x5c certificates do not chain to a configured trust anchor: %w", err)
}

// udapURL is the .well-known/udap URL below u, with ?community=<uri>
// when the community has a URI.
func udapURL(u *url.URL, communityURI string) string {
	s := u.JoinPath(".well-known", "udap")
	if communityURI != "" {
		s.RawQuery = url.Values{"community": {communityURI}}.Encode()
	}
	return s.String()
}

// checkCommunityURI validates a community URI for the query parameter.
func checkCommunityURI(uri string) error {
	if uri == "" {
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || strings.ContainsAny(uri, " \t\r\n") {
		return fmt.Errorf("discovery: community URI %s is not an absolute URI", quote(uri))
	}
	return nil
}

// communities is cfg's communities with the default one filled in from
// TrustAnchors (soft revocation: what was not checked before is only
// refused when definitely revoked).
func communities(cfg Config) map[string]Community {
	out := make(map[string]Community, len(cfg.Communities)+1)
	for name, c := range cfg.Communities {
		out[name] = c
	}
	if _, ok := out[DefaultCommunity]; !ok && cfg.TrustAnchors != nil {
		out[DefaultCommunity] = Community{TrustAnchors: cfg.TrustAnchors, Revocation: revocation.Soft}
	}
	return out
}

// trust is the verification of one discovery under the named community.
func (d *Discoverer) trust(ctx context.Context, name string) *trust {
	c, ok := d.communities[name]
	if !ok {
		return nil // no anchors: ErrNoTrustAnchors
	}
	tr := &trust{name: name, community: c, explicit: name != DefaultCommunity, checker: d.checker, ctx: ctx}
	if len(d.communities) > 1 {
		tr.others = make(map[string]Community, len(d.communities)-1)
		for n, o := range d.communities {
			if n != name {
				tr.others[n] = o
			}
		}
	}
	return tr
}

// communityURI is the URI of the named community, "" when it has none.
func (d *Discoverer) communityURI(name string) string {
	return d.communities[name].URI
}
