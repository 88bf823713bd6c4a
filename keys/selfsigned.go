package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Key types for SelfSignedOptions.KeyType.
const (
	KeyTypeRSA    = "RSA"     // RSA, 2048 bits
	KeyTypeECP256 = "EC-P256" // ECDSA on P-256
	KeyTypeECP384 = "EC-P384" // ECDSA on P-384
)

// DefaultSelfSignedCommonName is the subject CN used when
// SelfSignedOptions.CommonName is empty.
const DefaultSelfSignedCommonName = "cqgate self-signed"

// SelfSignedOptions describes a certificate for GenerateSelfSigned. The zero
// value is usable: an RSA-2048 key and a certificate valid from a minute ago
// for a year.
type SelfSignedOptions struct {
	// CommonName is the subject CN; DefaultSelfSignedCommonName if empty.
	CommonName string
	// DNSNames and URIs become subject alternative names. Each URI must be
	// absolute (e.g. "urn:oid:2.16.840.1.113883.3.1234").
	DNSNames []string
	URIs     []string
	// KeyType is KeyTypeRSA (default), KeyTypeECP256 or KeyTypeECP384.
	KeyType string
	// NotBefore defaults to now minus one minute, NotAfter to now plus one
	// year.
	NotBefore, NotAfter time.Time
}

// GenerateSelfSigned creates a fresh key and a self-signed certificate for
// it, both PEM encoded; the key as "PRIVATE KEY" (PKCS#8). The result feeds
// straight into ParsePEM. It is meant for development mode and tests: a
// real deployment presents a certificate issued under the Carequality
// trust framework.
func GenerateSelfSigned(opts SelfSignedOptions) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Minute)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.AddDate(1, 0, 0)
	}
	if !opts.NotAfter.After(opts.NotBefore) {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: NotAfter %s is not after NotBefore %s",
			opts.NotAfter.UTC().Format(time.RFC3339), opts.NotBefore.UTC().Format(time.RFC3339))
	}
	if opts.CommonName == "" {
		opts.CommonName = DefaultSelfSignedCommonName
	}
	uris := make([]*url.URL, 0, len(opts.URIs))
	for _, s := range opts.URIs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: generating self-signed certificate: URI SAN %q: %w", s, err)
		}
		if u.Scheme == "" {
			return nil, nil, fmt.Errorf("keys: generating self-signed certificate: URI SAN %q is not absolute", s)
		}
		uris = append(uris, u)
	}

	signer, err := generateKey(opts.KeyType)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: serial number: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: %w", err)
	}
	ski := sha256.Sum256(pubDER)

	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		DNSNames:              opts.DNSNames,
		URIs:                  uris,
		SubjectKeyId:          ski[:20],
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating self-signed certificate: encoding key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8, Bytes: pkcs8})
	return certPEM, keyPEM, nil
}

func generateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "", KeyTypeRSA:
		return rsa.GenerateKey(rand.Reader, MinRSABits)
	case KeyTypeECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyTypeECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key type %q, want %q, %q or %q", keyType, KeyTypeRSA, KeyTypeECP256, KeyTypeECP384)
	}
}
