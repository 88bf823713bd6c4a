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
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cqgate/cqgate/keys"
)

const (
	// MaxLifetime is the longest lifetime (exp − iat) of a client
	// assertion: UDAP B2B says it SHALL NOT exceed 300 seconds and SMART
	// Backend Services says exp is no more than five minutes ahead.
	MaxLifetime = 300 * time.Second

	// DefaultAlgorithm is the signing algorithm used when none is chosen.
	// RS384 satisfies both SMART Backend Services (RS384/ES384) and UDAP
	// (RS384 MAY); choose RS256 for servers that only accept the UDAP
	// mandatory algorithm.
	DefaultAlgorithm = jose.RS384

	// minRSABits is the smallest RSA modulus accepted for signing.
	minRSABits = 2048

	// jtiBytes is the number of random bytes in a jti (256 bits).
	jtiBytes = 32
)

// rsaAlgorithms are the algorithms an RSA key signs with.
func rsaAlgorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
}

// supportedAlgorithms lists the algorithms this package signs with.
func supportedAlgorithms() []jose.SignatureAlgorithm {
	return append(rsaAlgorithms(), jose.ES256, jose.ES384)
}

// ErrNoKey is returned (wrapped) when no signing material is loaded.
var ErrNoKey = errors.New("assertion: no signing key loaded")

// AlgorithmError reports a signing algorithm that is not supported at all
// or that cannot be used with the loaded key.
type AlgorithmError struct {
	// Algorithm is the requested JWS "alg".
	Algorithm string
	// KeyType describes the key, e.g. "RSA-2048" or "ECDSA P-256"; empty
	// when the algorithm is not supported whatever the key.
	KeyType string

	usable []jose.SignatureAlgorithm
}

func (e *AlgorithmError) Error() string {
	if e.KeyType == "" {
		return fmt.Sprintf("assertion: unsupported signing algorithm %q (supported: %s)", e.Algorithm, algList(supportedAlgorithms()))
	}
	return fmt.Sprintf("assertion: signing algorithm %q cannot be used with a %s key (usable: %s)", e.Algorithm, e.KeyType, algList(e.usable))
}

func algList(algs []jose.SignatureAlgorithm) string {
	if len(algs) == 0 {
		return "none"
	}
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// SupportedAlgorithm validates a configured JWS "alg" value. The names are
// case-sensitive (RFC 7515 §4.1.1). The empty string selects
// DefaultAlgorithm.
func SupportedAlgorithm(alg string) (jose.SignatureAlgorithm, error) {
	if alg == "" {
		return DefaultAlgorithm, nil
	}
	for _, a := range supportedAlgorithms() {
		if string(a) == alg {
			return a, nil
		}
	}
	return "", &AlgorithmError{Algorithm: alg}
}

// keyType describes a public key for error messages and returns the
// algorithms it can sign with.
func keyType(pub crypto.PublicKey) (string, []jose.SignatureAlgorithm) {
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
	default:
		return fmt.Sprintf("%T", pub), nil
	}
}

// checkKey verifies that alg can be used with pub.
func checkKey(alg jose.SignatureAlgorithm, pub crypto.PublicKey) error {
	kt, algs := keyType(pub)
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Errorf("assertion: %s key is too small (minimum %d bits)", kt, minRSABits)
	}
	for _, a := range algs {
		if a == alg {
			return nil
		}
	}
	return &AlgorithmError{Algorithm: string(alg), KeyType: kt, usable: algs}
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
	// Algorithm is the JWS alg; empty selects DefaultAlgorithm.
	Algorithm jose.SignatureAlgorithm
}

// Signer signs client-assertion JWTs (RFC 7523 §2.2) with the current key
// from Keys. The header carries alg, typ "JWT", kid and x5c (the
// certificate chain, leaf first, RFC 7515 §4.1.6); the claims are iss =
// sub = client id, aud, iat, exp and a fresh random jti.
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

// material returns the current signing material after checking that it
// is usable.
func (s *Signer) material() (*keys.Material, error) {
	if s == nil || s.Keys == nil {
		return nil, ErrNoKey
	}
	m := s.Keys.Current()
	if m == nil || m.Signer == nil {
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
	pub, ok := m.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(m.Chain[0].PublicKey) {
		return nil, errors.New("assertion: signing key does not match the leaf certificate")
	}
	return m, nil
}

// Sign returns a compact-serialized client assertion for c.
func (s *Signer) Sign(ctx context.Context, c Claims) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("assertion: signing: %w", err)
	}
	if c.ClientID == "" {
		return "", errors.New("assertion: client id is empty")
	}
	if err := checkURL("audience", c.Audience); err != nil {
		return "", err
	}
	alg, err := SupportedAlgorithm(string(c.Algorithm))
	if err != nil {
		return "", err
	}
	m, err := s.material()
	if err != nil {
		return "", err
	}
	pub := m.Signer.Public()
	if err := checkKey(alg, pub); err != nil {
		return "", err
	}

	kid := m.KeyID
	if kid == "" {
		jwk := jose.JSONWebKey{Key: pub}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("assertion: computing key id: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	x5c := make([]string, len(m.Chain))
	for i, cert := range m.Chain {
		x5c[i] = base64.StdEncoding.EncodeToString(cert.Raw)
	}

	jti, err := s.jti()
	if err != nil {
		return "", err
	}
	iat := time.Unix(s.now().Unix(), 0)
	claims := jwt.Claims{
		Issuer:   c.ClientID,
		Subject:  c.ClientID,
		Audience: jwt.Audience{c.Audience}, // a single audience marshals as a string
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(iat.Add(s.lifetime())),
		ID:       jti,
	}

	opts := (&jose.SignerOptions{}).
		WithType("JWT").
		WithHeader(jose.HeaderKey("kid"), kid).
		WithHeader(jose.HeaderKey("x5c"), x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(m.Signer)}, opts)
	if err != nil {
		return "", fmt.Errorf("assertion: creating %s signer: %w", alg, err)
	}
	out, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("assertion: signing with %s key %s: %w", alg, kid, err)
	}
	return out, nil
}
