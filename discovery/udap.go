package discovery

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrNoTrustAnchors is the UDAP source's failure when Config.TrustAnchors
// is nil: signed_metadata cannot be verified, and unsigned UDAP metadata
// is not trusted.
var ErrNoTrustAnchors = errors.New("no UDAP trust anchors configured")

// signedMetadataAlgorithms are the JWS algorithms accepted for
// signed_metadata: RS256 (which the UDAP IG requires servers to use),
// and RS384, ES256 and ES384, which it allows elsewhere.
func signedMetadataAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384}
}

const (
	// maxClockSkew is how far signed_metadata's iat may lie in the
	// future and its exp in the past.
	maxClockSkew = time.Minute
	// maxSignedMetadataChain bounds the x5c certificates considered.
	maxSignedMetadataChain = 10
)

// udapMetadata is the part of a .well-known/udap document (UDAP Security
// IG 2.0 section 2.2) that discovery reads. The same fields are read from
// signed_metadata's claims.
type udapMetadata struct {
	UDAPVersionsSupported                      []string `json:"udap_versions_supported"`
	UDAPProfilesSupported                      []string `json:"udap_profiles_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	// RegistrationEndpointJWTSigningAlgValuesSupported are the algorithms
	// the registration endpoint accepts for software statements (UDAP
	// Security IG 2.0 section 2.2), which may differ from the token
	// endpoint's.
	RegistrationEndpointJWTSigningAlgValuesSupported []string `json:"registration_endpoint_jwt_signing_alg_values_supported"`
	ScopesSupported                                  []string `json:"scopes_supported"`
	SignedMetadata                                   string   `json:"signed_metadata"`
}

// parseUDAPMetadata parses the unsigned UDAP metadata document. It
// neither verifies nor decodes signed_metadata.
func parseUDAPMetadata(data []byte) (*udapMetadata, error) {
	var md udapMetadata
	if err := decodeObject(data, &md); err != nil {
		return nil, err
	}
	return &md, nil
}

// signedMetadata is a parsed, not yet verified, signed_metadata JWT.
type signedMetadata struct {
	token  *jwt.JSONWebToken
	header jose.Header
	claims jwt.Claims
	// values holds the metadata claims; present says which of them the
	// JWT contains, by JSON name.
	values  udapMetadata
	present map[string]bool
}

// parseSignedMetadata parses a signed_metadata JWT's header and claims
// without verifying anything.
func parseSignedMetadata(token string) (*signedMetadata, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("signed_metadata is missing (unsigned UDAP metadata is not trusted)")
	}
	tok, err := jwt.ParseSigned(token, signedMetadataAlgorithms())
	if err != nil {
		return nil, fmt.Errorf("signed_metadata is not a compact JWS signed with %s: %w", algNames(), err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("signed_metadata has %d signatures, want 1", len(tok.Headers))
	}
	sm := &signedMetadata{token: tok, header: tok.Headers[0]}
	var payload json.RawMessage
	if err := tok.UnsafeClaimsWithoutVerification(&payload); err != nil {
		return nil, fmt.Errorf("signed_metadata claims are not JSON: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := decodeObject(payload, &raw); err != nil {
		return nil, fmt.Errorf("signed_metadata claims: %w", err)
	}
	if err := json.Unmarshal(payload, &sm.claims); err != nil {
		return nil, fmt.Errorf("signed_metadata: invalid registered claims (iss, sub, aud, exp, nbf, iat, jti): %w", err)
	}
	if err := json.Unmarshal(payload, &sm.values); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("signed_metadata: claim %s is a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type))
		}
		return nil, fmt.Errorf("signed_metadata: invalid claims: %w", err)
	}
	sm.present = make(map[string]bool, len(raw))
	for k := range raw {
		sm.present[k] = true
	}
	return sm, nil
}

// verifiedUDAP is UDAP metadata whose signed_metadata was verified.
type verifiedUDAP struct {
	// md holds the unsigned values overridden by every signed one.
	md udapMetadata
	// tokenSigned says token_endpoint was among the signed claims.
	tokenSigned bool
	// expires is signed_metadata's exp.
	expires time.Time
}

// verifyUDAP verifies md's signed_metadata for the FHIR server at base
// (normalized, without a trailing slash) against anchors at now, as the
// UDAP Security IG section 2.3 asks: an x5c chain to a trust anchor, a
// signature by its leaf, iss equal to base and to a URI SAN of the leaf,
// sub equal to iss, exp in the future but at most a year after iat, iat
// not in the future. Its errors name the check that failed.
func verifyUDAP(md *udapMetadata, base string, tr *trust, now time.Time) (*verifiedUDAP, error) {
	anchors := tr.anchors()
	if anchors == nil {
		return nil, ErrNoTrustAnchors
	}
	sm, err := parseSignedMetadata(md.SignedMetadata)
	if err != nil {
		return nil, err
	}
	leaf, err := tr.verifyChain(strings.TrimSpace(md.SignedMetadata), sm.header, x509.VerifyOptions{
		Roots:       anchors,
		CurrentTime: now,
		// UDAP certificates need not carry the TLS server EKU.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}, base)
	if err != nil {
		return nil, err
	}
	if err := sm.token.Claims(leaf.PublicKey); err != nil {
		return nil, fmt.Errorf("signed_metadata: bad signature: not signed by the x5c leaf certificate (%s): %w", leaf.Subject, err)
	}

	c := sm.claims
	switch {
	case c.Issuer == "":
		return nil, errors.New("signed_metadata: wrong iss: no iss claim")
	case normalizeBase(c.Issuer) != base:
		return nil, fmt.Errorf("signed_metadata: wrong iss: %s is not the FHIR base %s", quote(c.Issuer), quote(base))
	case c.Subject != c.Issuer:
		return nil, fmt.Errorf("signed_metadata: wrong sub: %s differs from iss %s", quote(c.Subject), quote(c.Issuer))
	case !hasURISAN(leaf, c.Issuer):
		return nil, fmt.Errorf("signed_metadata: wrong iss: %s is not a URI subject alternative name of the signing certificate (%s)", quote(c.Issuer), leaf.Subject)
	case c.Expiry == nil:
		return nil, errors.New("signed_metadata: no exp claim")
	case c.IssuedAt == nil:
		return nil, errors.New("signed_metadata: no iat claim")
	}
	exp, iat := c.Expiry.Time(), c.IssuedAt.Time()
	switch {
	case !now.Before(exp.Add(maxClockSkew)):
		return nil, fmt.Errorf("signed_metadata: expired at %s", exp.UTC().Format(time.RFC3339))
	case iat.After(now.Add(maxClockSkew)):
		return nil, fmt.Errorf("signed_metadata: issued in the future (iat %s)", iat.UTC().Format(time.RFC3339))
	case exp.After(iat.AddDate(1, 0, 0)):
		return nil, fmt.Errorf("signed_metadata: exp %s is more than a year after iat %s", exp.UTC().Format(time.RFC3339), iat.UTC().Format(time.RFC3339))
	}

	v := &verifiedUDAP{md: *md, expires: exp}
	v.md.SignedMetadata = ""
	s, p := &sm.values, sm.present
	pick := func(name string, dst *string, val string) {
		if p[name] {
			*dst = val
		}
	}
	pickList := func(name string, dst *[]string, val []string) {
		if p[name] {
			*dst = val
		}
	}
	pickList("udap_versions_supported", &v.md.UDAPVersionsSupported, s.UDAPVersionsSupported)
	pickList("udap_profiles_supported", &v.md.UDAPProfilesSupported, s.UDAPProfilesSupported)
	pickList("grant_types_supported", &v.md.GrantTypesSupported, s.GrantTypesSupported)
	pick("authorization_endpoint", &v.md.AuthorizationEndpoint, s.AuthorizationEndpoint)
	pick("token_endpoint", &v.md.TokenEndpoint, s.TokenEndpoint)
	pickList("token_endpoint_auth_methods_supported", &v.md.TokenEndpointAuthMethodsSupported, s.TokenEndpointAuthMethodsSupported)
	pickList("token_endpoint_auth_signing_alg_values_supported", &v.md.TokenEndpointAuthSigningAlgValuesSupported, s.TokenEndpointAuthSigningAlgValuesSupported)
	// Like the token URL, the registration endpoint is trusted only
	// signed (a required signed_metadata claim): a software statement
	// carries cqgate's certificate and is signed with its key, and goes
	// nowhere an unsigned value names.
	v.md.RegistrationEndpoint = ""
	pick("registration_endpoint", &v.md.RegistrationEndpoint, s.RegistrationEndpoint)
	pickList("registration_endpoint_jwt_signing_alg_values_supported", &v.md.RegistrationEndpointJWTSigningAlgValuesSupported, s.RegistrationEndpointJWTSigningAlgValuesSupported)
	pickList("scopes_supported", &v.md.ScopesSupported, s.ScopesSupported)
	v.tokenSigned = p["token_endpoint"] && strings.TrimSpace(s.TokenEndpoint) != ""
	return v, nil
}

// hasURISAN reports whether cert has a URI subject alternative name equal
// to uri (ignoring trailing slashes, as for iss).
func hasURISAN(cert *x509.Certificate, uri string) bool {
	return slices.ContainsFunc(cert.URIs, func(u *url.URL) bool {
		return normalizeBase(u.String()) == normalizeBase(uri)
	})
}

func algNames() string {
	algs := signedMetadataAlgorithms()
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// ParseTrustAnchors reads PEM "CERTIFICATE" blocks, the UDAP trust
// anchors, into a pool for Config.TrustAnchors. Any other PEM block (a
// private key put there by mistake, say) or text outside blocks is an
// error that names the block type but never quotes its content.
func ParseTrustAnchors(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := pemData; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, errors.New("discovery: trust anchors: data outside PEM CERTIFICATE blocks")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("discovery: trust anchors: PEM block %d is %s, want CERTIFICATE", n+1, quote(block.Type))
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("discovery: trust anchors: certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("discovery: trust anchors: no PEM CERTIFICATE blocks")
	}
	return pool, nil
}
