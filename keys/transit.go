package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
)

// Defaults for VaultTransit's empty fields.
const (
	DefaultTransitMount = "transit"
	// DefaultSignTimeout bounds one signing request to Vault.
	DefaultSignTimeout = 10 * time.Second
)

// ErrSigner is matched (errors.Is) by every *SignError.
var ErrSigner = errors.New("remote signer failed")

// SignError reports that Vault transit did not produce a usable signature:
// Vault answered with an error (StatusCode), did not answer (network error
// or timeout; StatusCode 0), or answered with a signature that does not
// fit the loaded key. Its Upstream method marks it as an upstream failure,
// which the outcome package maps to 502 Bad Gateway. It never carries the
// Vault token or the signing input.
type SignError struct {
	// Key names the transit key and the version signed with, e.g.
	// "transit/keys/cqgate v3".
	Key string
	// StatusCode is the HTTP status Vault answered with, 0 if none.
	StatusCode int
	// Err is the underlying error (an *api.ResponseError for an error
	// answer).
	Err error
}

func (e *SignError) Error() string {
	// Vault's own message spans lines and repeats the request URL; an
	// error answer is said on one line with what Vault said.
	var re *api.ResponseError
	if errors.As(e.Err, &re) && len(re.Errors) > 0 {
		return fmt.Sprintf("keys: signing with Vault transit key %s: Vault answered HTTP %d: %s", e.Key, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return fmt.Sprintf("keys: signing with Vault transit key %s: %v", e.Key, e.Err)
}

// Unwrap returns the underlying error.
func (e *SignError) Unwrap() error { return e.Err }

// Is matches ErrSigner.
func (e *SignError) Is(target error) bool { return target == ErrSigner }

// Upstream reports true: signing failed in Vault, an upstream service.
func (e *SignError) Upstream() bool { return true }

// VaultTransit is a Source whose private key never leaves Vault: it signs
// with a key of Vault's transit secrets engine, and reads the certificate
// chain for that key (public) from a KV v2 secret.
//
// Load reads the transit key (GET /v1/<Mount>/keys/<Key>): its type must be
// rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384, and the public key
// of its latest version must be the leaf certificate's, otherwise Load
// fails with ErrKeyMismatch (e.g. the transit key was rotated but no new
// certificate stored yet; a Holder then keeps the previous material, which
// still signs with the previous version). The Material's Opaque signer
// signs JWS signing inputs with POST /v1/<Mount>/sign/<Key>, pinned to the
// loaded key version, so a rotation in Vault never yields a signature that
// the x5c certificate does not match: RSA keys sign RS256 and RS384
// (PKCS #1 v1.5), P-256 keys ES256 and P-384 keys ES384 (JWS r||s). Every
// signature is verified with the loaded public key before it is returned.
// Material.Version is "transit:v<N>+kv:v<M>".
//
// A Vault policy for it needs "read" on <Mount>/keys/<Key>, "update" on
// <Mount>/sign/<Key>, and "read" on <CertMount>/data/<CertPath> and (for
// Holder.Poll) <CertMount>/metadata/<CertPath>.
type VaultTransit struct {
	// Client talks to Vault: a *vault.Client.
	Client VaultClient
	// Mount is the transit engine's mount path; DefaultTransitMount if
	// empty.
	Mount string
	// Key is the transit key's name.
	Key string
	// CertMount is the KV v2 mount holding the certificate chain;
	// DefaultKVMount if empty.
	CertMount string
	// CertPath is the chain's secret path inside CertMount.
	CertPath string
	// CertificateField names the secret's field holding the PEM chain,
	// leaf first; DefaultCertificateField if empty.
	CertificateField string
	// SignTimeout bounds each signing request (go-jose gives the signer no
	// context); DefaultSignTimeout if zero.
	SignTimeout time.Duration
	// Clock stamps Material.LoadedAt; time.Now if nil.
	Clock func() time.Time
}

var (
	_ Source    = (*VaultTransit)(nil)
	_ Versioner = (*VaultTransit)(nil)
)

func (v *VaultTransit) mount() string {
	if m := strings.Trim(v.Mount, "/"); m != "" {
		return m
	}
	return DefaultTransitMount
}

func (v *VaultTransit) certMount() string {
	if m := strings.Trim(v.CertMount, "/"); m != "" {
		return m
	}
	return DefaultKVMount
}

func (v *VaultTransit) certPath() string { return strings.Trim(v.CertPath, "/") }

func (v *VaultTransit) certField() string {
	if v.CertificateField != "" {
		return v.CertificateField
	}
	return DefaultCertificateField
}

func (v *VaultTransit) keyPath() string { return v.mount() + "/keys/" + v.Key }

// String names the transit key and the certificate secret.
func (v *VaultTransit) String() string {
	return fmt.Sprintf("vault-transit:%s+%s/data/%s", v.keyPath(), v.certMount(), v.certPath())
}

func (v *VaultTransit) check() error {
	var missing []string
	if noClient(v.Client) {
		missing = append(missing, "no Vault client configured")
	}
	if v.Key == "" || strings.Contains(v.Key, "/") {
		missing = append(missing, fmt.Sprintf("transit key name %q is empty or has a slash", v.Key))
	}
	if v.certPath() == "" {
		missing = append(missing, "certificate secret path is empty")
	}
	if len(missing) > 0 {
		return fmt.Errorf("keys: loading %s: %s", v, strings.Join(missing, "; "))
	}
	return nil
}

// Load reads the transit key and the certificate chain and checks that
// they belong together. Errors name Vault paths and statuses, never the
// token.
func (v *VaultTransit) Load(ctx context.Context) (*Material, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	key, err := v.readKey(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := v.Client.ReadKV(ctx, v.certMount(), v.certPath())
	if err != nil {
		return nil, fmt.Errorf("keys: reading the certificate for transit key %s: %w", v.keyPath(), err)
	}
	where := fmt.Sprintf("%s/data/%s", v.certMount(), v.certPath())
	certPEM, err := stringField(secret.Data, v.certField())
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s: %w", where, err)
	}
	chain, err := parseCertificates([]byte(certPEM))
	if err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s (field %q): %w", where, v.certField(), err)
	}
	leaf := chain[0]
	if !publicKeysEqual(key.pub, leaf.PublicKey) {
		return nil, fmt.Errorf("keys: transit key %s version %d and the certificate at %s (version %d, leaf subject %q, serial %s): %w; "+
			"was the transit key rotated without storing a certificate for its new version?",
			v.keyPath(), key.version, where, secret.Version, leaf.Subject.String(), leaf.SerialNumber.Text(16), ErrKeyMismatch)
	}
	if chain, err = certificationOrder(chain); err != nil {
		return nil, fmt.Errorf("keys: reading secret at %s (field %q): %w", where, v.certField(), err)
	}
	kid, err := KeyIDFor(key.pub)
	if err != nil {
		return nil, fmt.Errorf("keys: transit key %s: %w", v.keyPath(), err)
	}
	timeout := v.SignTimeout
	if timeout <= 0 {
		timeout = DefaultSignTimeout
	}
	signer := &transitSigner{
		client:  v.Client,
		mount:   v.mount(),
		key:     v.Key,
		version: key.version,
		pub:     key.pub,
		kid:     kid,
		algs:    key.algs,
		timeout: timeout,
	}
	return &Material{
		Opaque:   signer,
		Chain:    chain,
		KeyID:    kid,
		Version:  fmt.Sprintf("transit:v%d+kv:v%d", key.version, secret.Version),
		LoadedAt: now(v.Clock),
	}, nil
}

// Version returns "transit:v<N>+kv:v<M>" from the transit key's latest
// version and the certificate secret's metadata, for Holder.Poll.
func (v *VaultTransit) Version(ctx context.Context) (string, error) {
	if err := v.check(); err != nil {
		return "", err
	}
	key, err := v.readKey(ctx)
	if err != nil {
		return "", err
	}
	kv, err := v.Client.KVVersion(ctx, v.certMount(), v.certPath())
	if err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	return fmt.Sprintf("transit:v%d+kv:v%d", key.version, kv), nil
}

type transitKeyInfo struct {
	version int
	pub     crypto.PublicKey
	algs    []jose.SignatureAlgorithm
}

// readKey reads the transit key and the public key of its latest version.
func (v *VaultTransit) readKey(ctx context.Context) (*transitKeyInfo, error) {
	path := v.keyPath()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("keys: reading transit key at %s: "+format, append([]any{path}, args...)...)
	}
	s, err := v.Client.ReadTransitKey(ctx, path)
	if err != nil {
		return nil, fail("%w", err)
	}
	if s == nil || s.Data == nil {
		return nil, fail("%w (is the transit engine mounted at %s/ and the key created?)", api.ErrSecretNotFound, v.mount())
	}
	typ, _ := s.Data["type"].(string)
	if signing, ok := s.Data["supports_signing"].(bool); ok && !signing {
		return nil, fail("%w: key type %q cannot sign", ErrUnsupportedKey, typ)
	}
	want, ok := transitKeyTypes[typ]
	if !ok {
		return nil, fail("%w: key type %q, want rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384", ErrUnsupportedKey, typ)
	}
	latest, err := jsonInt(s.Data["latest_version"])
	if err != nil || latest < 1 {
		return nil, fail("latest_version %v is not a key version", s.Data["latest_version"])
	}
	versions, _ := s.Data["keys"].(map[string]any)
	entry, _ := versions[strconv.Itoa(latest)].(map[string]any)
	pubPEM, _ := entry["public_key"].(string)
	if pubPEM == "" {
		return nil, fail("version %d has no public_key", latest)
	}
	pub, err := parsePublicKeyPEM(pubPEM)
	if err != nil {
		return nil, fail("version %d: %w", latest, err)
	}
	algs, err := want(pub)
	if err != nil {
		return nil, fail("version %d (type %q): %w", latest, typ, err)
	}
	return &transitKeyInfo{version: latest, pub: pub, algs: algs}, nil
}

// transitKeyTypes maps the transit key types cqgate signs with to a check
// of the public key that returns the JWS algorithms it signs.
var transitKeyTypes = map[string]func(crypto.PublicKey) ([]jose.SignatureAlgorithm, error){
	"rsa-2048":   rsaAlgs,
	"rsa-3072":   rsaAlgs,
	"rsa-4096":   rsaAlgs,
	"ecdsa-p256": ecAlgs(elliptic.P256(), jose.ES256),
	"ecdsa-p384": ecAlgs(elliptic.P384(), jose.ES384),
}

func rsaAlgs(pub crypto.PublicKey) ([]jose.SignatureAlgorithm, error) {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want RSA", pub)
	}
	if bits := k.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("%w: RSA key has %d bits, want at least %d", ErrUnsupportedKey, bits, MinRSABits)
	}
	return []jose.SignatureAlgorithm{jose.RS384, jose.RS256}, nil
}

func ecAlgs(curve elliptic.Curve, alg jose.SignatureAlgorithm) func(crypto.PublicKey) ([]jose.SignatureAlgorithm, error) {
	return func(pub crypto.PublicKey) ([]jose.SignatureAlgorithm, error) {
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curve {
			return nil, fmt.Errorf("public key is %T, want ECDSA on %s", pub, curve.Params().Name)
		}
		return []jose.SignatureAlgorithm{alg}, nil
	}
}

func parsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("public_key is not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing public_key: %w", err)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing public_key: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("public_key is a %q PEM block, want \"PUBLIC KEY\"", block.Type)
}

func jsonInt(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		return strconv.Atoi(n.String())
	case float64:
		return int(n), nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("%T is not a number", v)
}

// transitSigner is the jose.OpaqueSigner of VaultTransit material.
type transitSigner struct {
	client     VaultClient
	mount, key string
	version    int
	pub        crypto.PublicKey
	kid        string
	algs       []jose.SignatureAlgorithm
	timeout    time.Duration
}

var _ jose.OpaqueSigner = (*transitSigner)(nil)

func (s *transitSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.pub, KeyID: s.kid, Use: "sig"}
}

func (s *transitSigner) Algs() []jose.SignatureAlgorithm { return slices.Clone(s.algs) }

func (s *transitSigner) name() string {
	return fmt.Sprintf("%s/keys/%s v%d", s.mount, s.key, s.version)
}

// String names the key, never the token.
func (s *transitSigner) String() string { return "vault-transit-signer:" + s.name() }

// SignPayload signs the JWS signing input in Vault and returns the raw
// signature go-jose expects: PKCS #1 v1.5 bytes for RSA, r||s for ECDSA.
func (s *transitSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	return s.SignPayloadContext(context.Background(), payload, alg)
}

// SignPayloadContext is SignPayload with ctx's values (its trace context)
// on the request to Vault; ctx's cancellation does not stop the signing,
// which is bounded by the signer's own timeout.
func (s *transitSigner) SignPayloadContext(ctx context.Context, payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if !slices.Contains(s.algs, alg) {
		return nil, fmt.Errorf("keys: Vault transit key %s cannot sign %s (it signs %v): %w", s.name(), alg, s.algs, jose.ErrUnsupportedAlgorithm)
	}
	var (
		hashName string
		hash     crypto.Hash
	)
	switch alg {
	case jose.RS256, jose.ES256:
		hashName, hash = "sha2-256", crypto.SHA256
	case jose.RS384, jose.ES384:
		hashName, hash = "sha2-384", crypto.SHA384
	default:
		return nil, fmt.Errorf("keys: Vault transit key %s: %s: %w", s.name(), alg, jose.ErrUnsupportedAlgorithm)
	}
	body := map[string]any{
		"input":          base64.StdEncoding.EncodeToString(payload),
		"hash_algorithm": hashName,
		"key_version":    s.version,
	}
	_, isEC := s.pub.(*ecdsa.PublicKey)
	if isEC {
		body["marshaling_algorithm"] = "jws"
	} else {
		body["signature_algorithm"] = "pkcs1v15"
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	answer, err := s.client.TransitSign(ctx, s.mount+"/sign/"+s.key, body)
	if err != nil {
		e := &SignError{Key: s.name(), Err: err}
		var re *api.ResponseError
		if errors.As(err, &re) {
			e.StatusCode = re.StatusCode
		}
		return nil, e
	}
	var encoded string
	if answer != nil && answer.Data != nil {
		encoded, _ = answer.Data["signature"].(string)
	}
	if encoded == "" {
		return nil, &SignError{Key: s.name(), Err: errors.New("the answer holds no signature")}
	}
	sig, err := decodeTransitSignature(encoded, s.version, isEC)
	if err != nil {
		return nil, &SignError{Key: s.name(), Err: err}
	}
	h := hash.New()
	h.Write(payload)
	if err := verifyRaw(s.pub, hash, h.Sum(nil), sig); err != nil {
		return nil, &SignError{Key: s.name(), Err: err}
	}
	return sig, nil
}

// decodeTransitSignature takes Vault's "vault:v<N>:<base64>" apart: N must be
// the version asked for; the base64 is standard for RSA (asn1 marshaling)
// and URL-safe without padding for ECDSA with marshaling_algorithm=jws, as
// Vault's keysutil encodes them.
func decodeTransitSignature(s string, version int, urlSafe bool) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return nil, errors.New(`signature lacks the "vault:v<N>:" prefix`)
	}
	num, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, errors.New(`signature lacks the "vault:v<N>:" prefix`)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil, fmt.Errorf("signature version %q is not a number", num)
	}
	if n != version {
		return nil, fmt.Errorf("signed with key version %d, not the loaded version %d", n, version)
	}
	var sig []byte
	if urlSafe {
		sig, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	} else {
		sig, err = base64.StdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, fmt.Errorf("signature is not base64: %w", err)
	}
	return sig, nil
}

// verifyRaw checks a raw JWS signature (PKCS #1 v1.5, or ECDSA r||s) of
// digest with pub.
func verifyRaw(pub crypto.PublicKey, hash crypto.Hash, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if len(sig) != k.Size() {
			return fmt.Errorf("signature is %d bytes, want %d for the RSA key", len(sig), k.Size())
		}
		if err := rsa.VerifyPKCS1v15(k, hash, digest, sig); err != nil {
			return errors.New("signature does not verify with the loaded public key")
		}
		return nil
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("signature is %d bytes, want %d (r||s) for %s", len(sig), 2*size, k.Curve.Params().Name)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errors.New("signature does not verify with the loaded public key")
		}
		return nil
	}
	return fmt.Errorf("cannot verify with %T", pub)
}
