package assertion

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/tracing"
	"github.com/cqgate/cqgate/keys"
)

const (
	// MaxLifetime is the longest lifetime (exp − iat) of a client
	// assertion: UDAP B2B says it SHALL NOT exceed 300 seconds and SMART
	// Backend Services says exp is no more than five minutes ahead.
	MaxLifetime = 300 * time.Second

	// DefaultAlgorithm is the algorithm an RSA key signs with when
	// nothing else is chosen. RS384 satisfies both SMART Backend Services
	// (RS384/ES384) and UDAP (RS384 MAY); servers that advertise only the
	// UDAP mandatory RS256 get RS256 by negotiation (see Negotiate).
	DefaultAlgorithm = jose.RS384

	// DefaultSkew is how far iat and nbf are backdated when Signer.Skew
	// is zero, for token endpoints whose clocks run a little behind ours.
	DefaultSkew = 5 * time.Second

	// minRSABits is the smallest RSA modulus accepted for signing.
	minRSABits = 2048

	// jtiBytes is the number of random bytes in a jti (256 bits).
	jtiBytes = 32
)

// rsaAlgorithms are the algorithms an RSA key signs with, most preferred
// first: RS384 (SMART and UDAP), RS256 (UDAP's mandatory algorithm), then
// the rest in case a server accepts nothing else.
func rsaAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS384, jose.RS256, jose.RS512, jose.PS384, jose.PS256, jose.PS512}
}

// supportedAlgorithms lists the algorithms this package signs with.
func supportedAlgorithms() []jose.SignatureAlgorithm {
	return append(rsaAlgorithms(), jose.ES256, jose.ES384)
}

// ErrNoKey is returned (wrapped) when no signing material is loaded.
var ErrNoKey = failure.New(failure.NotReady, "assertion: no signing key loaded")

// AlgorithmError reports a signing algorithm that is not supported at all,
// that cannot be used with the loaded key, or a key and a token endpoint
// that have no algorithm in common.
type AlgorithmError struct {
	// Algorithm is the configured JWS "alg"; empty when none was
	// configured and negotiation found nothing.
	Algorithm string
	// KeyType describes the key, e.g. "RSA-2048" or "ECDSA P-256"; empty
	// when the algorithm is not supported whatever the key.
	KeyType string
	// Usable are the algorithms this key can sign with, most preferred
	// first.
	Usable []jose.SignatureAlgorithm
	// Accepted are the algorithms the server advertised
	// (token_endpoint_auth_signing_alg_values_supported; for a software
	// statement, the registration endpoint's
	// registration_endpoint_jwt_signing_alg_values_supported); nil when
	// the server named none, so it did not constrain the choice.
	Accepted []string
}

func (e *AlgorithmError) Error() string {
	switch {
	case e.KeyType == "":
		return fmt.Sprintf("assertion: unsupported signing algorithm %q (supported: %s)", e.Algorithm, algList(supportedAlgorithms()))
	case len(e.Accepted) > 0:
		configured := "none configured"
		if e.Algorithm != "" {
			configured = "configured " + e.Algorithm
		}
		return fmt.Sprintf("assertion: no usable signing algorithm: server accepts [%s], we can sign [%s] with this %s key; %s",
			strings.Join(e.Accepted, " "), strings.Join(algStrings(e.Usable), " "), e.KeyType, configured)
	case e.Algorithm == "":
		return fmt.Sprintf("assertion: a %s key cannot sign client assertions (supported: %s)", e.KeyType, algList(supportedAlgorithms()))
	default:
		return fmt.Sprintf("assertion: signing algorithm %q cannot be used with a %s key (usable: %s)", e.Algorithm, e.KeyType, algList(e.Usable))
	}
}

func algStrings(algs []jose.SignatureAlgorithm) []string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return s
}

func algList(algs []jose.SignatureAlgorithm) string {
	if len(algs) == 0 {
		return "none"
	}
	return strings.Join(algStrings(algs), ", ")
}

// SupportedAlgorithm validates a configured JWS "alg" value. The names are
// case-sensitive (RFC 7515 §4.1.1). The empty string is valid and stays
// empty: it means "follow the key" (see Negotiate).
func SupportedAlgorithm(alg string) (jose.SignatureAlgorithm, error) {
	if alg == "" {
		return "", nil
	}
	for _, a := range supportedAlgorithms() {
		if string(a) == alg {
			return a, nil
		}
	}
	return "", &AlgorithmError{Algorithm: alg}
}

// keyAlgorithms describes a public key for error messages and returns the
// algorithms it can sign with, most preferred first.
func keyAlgorithms(pub crypto.PublicKey) (string, []jose.SignatureAlgorithm) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen()), rsaAlgorithms()
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA P-256", []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			return "ECDSA P-384", []jose.SignatureAlgorithm{jose.ES384}
		default:
			return "ECDSA " + k.Curve.Params().Name, nil
		}
	case ed25519.PublicKey:
		return "Ed25519", nil
	case nil:
		return "missing", nil
	default:
		return fmt.Sprintf("%T", pub), nil
	}
}

// checkKeySize refuses RSA keys below minRSABits.
func checkKeySize(pub crypto.PublicKey) error {
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Errorf("assertion: RSA-%d key is too small (minimum %d bits)", k.N.BitLen(), minRSABits)
	}
	return nil
}

// Negotiate chooses the JWS algorithm for a key with public half pub.
//
// A configured algorithm must fit the key and, when accepted is not
// empty, be one of the accepted algorithms (the server's
// token_endpoint_auth_signing_alg_values_supported); it is never replaced
// by another. With no configured algorithm the key's algorithms are tried
// in preference order (RSA: RS384, RS256, RS512, PS384, PS256, PS512;
// P-256: ES256; P-384: ES384) and the first one the server accepts wins;
// an empty accepted list accepts anything. Names in accepted that this
// package does not know are ignored. RSA keys under 2048 bits are refused.
//
// The error is an *AlgorithmError naming both lists when they have
// nothing in common.
func Negotiate(pub crypto.PublicKey, configured jose.SignatureAlgorithm, accepted []string) (jose.SignatureAlgorithm, error) {
	if err := checkKeySize(pub); err != nil {
		return "", err
	}
	kt, algs := keyAlgorithms(pub)
	return negotiate(kt, algs, configured, accepted)
}

func negotiate(keyType string, usable []jose.SignatureAlgorithm, configured jose.SignatureAlgorithm, accepted []string) (jose.SignatureAlgorithm, error) {
	fail := func() error {
		return &AlgorithmError{Algorithm: string(configured), KeyType: keyType, Usable: usable, Accepted: slices.Clone(accepted)}
	}
	if configured != "" {
		if _, err := SupportedAlgorithm(string(configured)); err != nil {
			return "", err
		}
		if !slices.Contains(usable, configured) || (len(accepted) > 0 && !slices.Contains(accepted, string(configured))) {
			return "", fail()
		}
		return configured, nil
	}
	for _, a := range usable {
		if len(accepted) == 0 || slices.Contains(accepted, string(a)) {
			return a, nil
		}
	}
	return "", fail()
}

// checkURL verifies that s is an absolute http or https URL.
func checkURL(what, s string) error {
	if s == "" {
		return fmt.Errorf("assertion: %s is empty", what)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("assertion: %s %q is not an absolute http(s) URL", what, s)
	}
	return nil
}

// KeyProvider supplies the current signing material; keys.Holder
// implements it. Current returns nil when nothing is loaded.
type KeyProvider interface {
	Current() *keys.Material
}

// Claims are the per-assertion inputs.
type Claims struct {
	// ClientID becomes both iss and sub.
	ClientID string
	// Audience is the token endpoint URL (aud).
	Audience string
	// Algorithm is the JWS alg; empty follows the key (see Negotiate).
	Algorithm jose.SignatureAlgorithm
	// Accepted are the algorithms the token endpoint advertises
	// (token_endpoint_auth_signing_alg_values_supported); empty means no
	// constraint.
	Accepted []string
	// B2B, when set, adds the UDAP B2B authorization extension object as
	// {"extensions": {"hl7-b2b": ...}}. It is validated first.
	B2B *B2B
	// JKU, when set, is sent as the "jku" header: the URL of the JWK Set
	// that lists the signing key (SMART Backend Services; it must equal
	// the JWK Set URL registered for the client).
	JKU string
}

// Signer signs client-assertion JWTs (RFC 7523 §2.2) with the current key
// from Keys. The header carries alg, typ "JWT", kid and x5c (the
// certificate chain, leaf first, RFC 7515 §4.1.6); the claims are iss =
// sub = client id, aud, iat, nbf, exp and a fresh random jti, plus the
// hl7-b2b extension when asked for.
//
// iat and nbf are backdated by Skew and exp is iat + Lifetime, so exp −
// iat never exceeds MaxLifetime while a token endpoint whose clock runs
// behind ours by up to Skew still sees an assertion that is already
// valid.
//
// A Signer is safe for concurrent use.
type Signer struct {
	// Keys supplies the signing key and certificate chain.
	Keys KeyProvider
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Lifetime is exp − iat. Zero or negative means MaxLifetime; larger
	// values are clamped to MaxLifetime. It is truncated to whole seconds.
	Lifetime time.Duration
	// Skew backdates iat (and nbf). Zero means DefaultSkew, negative
	// means none; it is capped at half the lifetime, so that an
	// assertion is always valid for a while after it is made.
	Skew time.Duration
	// Rand is the source of jti values; nil means crypto/rand.
	Rand io.Reader
}

func (s *Signer) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *Signer) lifetime() time.Duration {
	l := s.Lifetime
	if l <= 0 || l > MaxLifetime {
		l = MaxLifetime
	}
	l = l.Truncate(time.Second)
	if l < time.Second {
		l = time.Second
	}
	return l
}

func (s *Signer) skew() time.Duration {
	k := s.Skew
	switch {
	case k == 0:
		k = DefaultSkew
	case k < 0:
		return 0
	}
	return min(k, s.lifetime()/2)
}

func (s *Signer) jti() (string, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, jtiBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("assertion: generating jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// signingKey is checked material ready to sign with.
type signingKey struct {
	m      *keys.Material
	signer jose.OpaqueSigner
	pub    crypto.PublicKey
	alg    jose.SignatureAlgorithm
	jku    string // the "jku" header, if any
	// ctx, when set, goes with a remote signer's request (its trace
	// context; not its cancellation).
	ctx context.Context
}

// key returns the current signing material, after checking that it is
// usable, with the algorithm negotiated for it.
func (s *Signer) key(configured jose.SignatureAlgorithm, accepted []string) (*signingKey, error) {
	if s == nil || s.Keys == nil {
		return nil, ErrNoKey
	}
	m := s.Keys.Current()
	if m == nil {
		return nil, ErrNoKey
	}
	js := m.JOSESigner()
	if js == nil {
		return nil, ErrNoKey
	}
	if len(m.Chain) == 0 || m.Chain[0] == nil {
		return nil, errors.New("assertion: signing material has no certificate chain (x5c is required)")
	}
	for i, c := range m.Chain {
		if c == nil || len(c.Raw) == 0 {
			return nil, fmt.Errorf("assertion: certificate %d of the signing chain is empty", i)
		}
	}
	if m.Signer == nil && m.Opaque.Public() == nil {
		return nil, errors.New("assertion: the remote signer has no public key")
	}
	pub := m.Public()
	if p, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(m.Chain[0].PublicKey) {
		return nil, errors.New("assertion: signing key does not match the leaf certificate")
	}
	if err := checkKeySize(pub); err != nil {
		return nil, err
	}
	// A remote signer may do less than the key type allows (Vault
	// transit, say, no PSS): keep the key's order, drop what it cannot.
	kt, usable := keyAlgorithms(pub)
	can := js.Algs()
	usable = slices.DeleteFunc(usable, func(a jose.SignatureAlgorithm) bool { return !slices.Contains(can, a) })
	alg, err := negotiate(kt, usable, configured, accepted)
	if err != nil {
		return nil, err
	}
	return &signingKey{m: m, signer: js, pub: pub, alg: alg}, nil
}

// registered returns the registered claims of a JWT that s issues now:
// iss, sub, aud (a single audience marshals as a string), iat backdated
// by the skew, exp = iat + lifetime, a fresh jti and, if withNBF, nbf =
// iat.
func (s *Signer) registered(iss, sub, aud string, withNBF bool) (jwt.Claims, error) {
	jti, err := s.jti()
	if err != nil {
		return jwt.Claims{}, err
	}
	iat := time.Unix(s.now().Add(-s.skew()).Unix(), 0)
	c := jwt.Claims{
		Issuer:   iss,
		Subject:  sub,
		Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(iat.Add(s.lifetime())),
		ID:       jti,
	}
	if withNBF {
		c.NotBefore = c.IssuedAt
	}
	return c, nil
}

// sign serializes a JWS over the merged claims objects with the header
// every JWT of this package carries: alg, typ JWT, kid and x5c. It is
// shared by client assertions and software statements.
func (k *signingKey) sign(claims ...any) (string, error) {
	kid := k.m.KeyID
	if kid == "" {
		jwk := jose.JSONWebKey{Key: k.pub}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("assertion: computing key id: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	x5c := make([]string, len(k.m.Chain))
	for i, cert := range k.m.Chain {
		x5c[i] = base64.StdEncoding.EncodeToString(cert.Raw)
	}
	opts := (&jose.SignerOptions{}).
		WithType("JWT").
		WithHeader(jose.HeaderKey("kid"), kid).
		WithHeader(jose.HeaderKey("x5c"), x5c)
	if k.jku != "" {
		opts = opts.WithHeader(jose.HeaderKey("jku"), k.jku)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: bindContext(k.signer, k.ctx)}, opts)
	if err != nil {
		return "", fmt.Errorf("assertion: creating %s signer: %w", k.alg, err)
	}
	b := jwt.Signed(signer)
	for _, c := range claims {
		b = b.Claims(c)
	}
	out, err := b.Serialize()
	if err != nil {
		return "", fmt.Errorf("assertion: signing with %s key %s: %w", k.alg, kid, err)
	}
	return out, nil
}

// Sign returns a compact-serialized client assertion for c.
func (s *Signer) Sign(ctx context.Context, c Claims) (_ string, err error) {
	ctx, span := tracing.Start(ctx, "cqgate.sign")
	var k *signingKey
	defer func() { endSign(span, k, err) }()
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("assertion: signing: %w", err)
	}
	if c.ClientID == "" {
		return "", errors.New("assertion: client id is empty")
	}
	if err := checkURL("audience", c.Audience); err != nil {
		return "", err
	}
	if _, err := SupportedAlgorithm(string(c.Algorithm)); err != nil {
		return "", err
	}
	if c.JKU != "" {
		if err := checkURL("jku", c.JKU); err != nil {
			return "", err
		}
	}
	var ext map[string]any
	if c.B2B != nil {
		if err := c.B2B.Validate(); err != nil {
			return "", err
		}
		ext = map[string]any{"extensions": map[string]any{B2BExtensionKey: c.B2B.normalized()}}
	}
	k, err = s.key(c.Algorithm, c.Accepted)
	if err != nil {
		return "", err
	}
	k.jku, k.ctx = c.JKU, ctx
	std, err := s.registered(c.ClientID, c.ClientID, c.Audience, true)
	if err != nil {
		return "", err
	}
	if ext == nil {
		return k.sign(std)
	}
	return k.sign(std, ext)
}
