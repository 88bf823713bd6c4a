package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// MinRSABits is the smallest RSA modulus ParsePEM accepts.
const MinRSABits = 2048

// PEM block types understood by ParsePEM.
const (
	pemTypeCertificate  = "CERTIFICATE"
	pemTypePKCS8        = "PRIVATE KEY"
	pemTypePKCS1        = "RSA PRIVATE KEY"
	pemTypeSEC1         = "EC PRIVATE KEY"
	pemTypeEncryptedKey = "ENCRYPTED PRIVATE KEY"
	pemTypeECParameters = "EC PARAMETERS"
)

// Errors returned (wrapped) by ParsePEM and the sources built on it. Test
// for them with errors.Is. None of them, and no error of this package,
// ever carries key material, PEM text or a Vault token.
var (
	// ErrNoCertificate means the certificate PEM holds no CERTIFICATE block.
	ErrNoCertificate = errors.New("no CERTIFICATE block found")
	// ErrNoPrivateKey means the key PEM holds no supported private key block.
	ErrNoPrivateKey = errors.New(`no "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY" block found`)
	// ErrEncryptedKey means the private key is password protected.
	ErrEncryptedKey = errors.New("private key is encrypted; provide it unencrypted (keep it in Vault instead of protecting it with a passphrase)")
	// ErrUnsupportedKey means the key is not RSA ≥ 2048 bits or ECDSA P-256/P-384.
	ErrUnsupportedKey = errors.New("unsupported private key")
	// ErrKeyMismatch means the private key is not the one certified by the
	// leaf (first) certificate.
	ErrKeyMismatch = errors.New("private key does not match the leaf certificate's public key")
)

// ParsePEM builds Material from a PEM certificate chain and a PEM private
// key.
//
// certPEM holds every CERTIFICATE block of the chain, leaf first; other
// block types are skipped, so a combined cert+key file is fine. keyPEM
// holds exactly one unencrypted private key as "PRIVATE KEY" (PKCS#8),
// "RSA PRIVATE KEY" (PKCS#1) or "EC PRIVATE KEY" (SEC 1). Only RSA keys of
// at least MinRSABits and ECDSA keys on P-256 or P-384 are accepted, and
// the key must belong to the leaf certificate.
//
// The returned Material has Signer, Chain and KeyID set; Version and
// LoadedAt are left for the Source to fill in. Errors never echo the
// input.
func ParsePEM(certPEM, keyPEM []byte) (*Material, error) {
	m, err := parsePEM(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return m, nil
}

// parsePEM is ParsePEM without the package prefix on errors, so that the
// sources can add their own context in front.
func parsePEM(certPEM, keyPEM []byte) (*Material, error) {
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkKeyAlgorithm(signer); err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !publicKeysEqual(signer.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("%w (leaf subject %q, serial %s); the certificate PEM must list the leaf certificate first",
			ErrKeyMismatch, leaf.Subject.String(), leaf.SerialNumber.Text(16))
	}
	kid, err := KeyIDFor(signer.Public())
	if err != nil {
		return nil, err
	}
	return &Material{Signer: signer, Chain: chain, KeyID: kid}, nil
}

// KeyIDFor returns the RFC 7638 JWK SHA-256 thumbprint of pub, base64url
// without padding: the "kid" this package puts in Material.KeyID.
func KeyIDFor(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("computing JWK thumbprint of %T: %w", pub, err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func parseCertificates(certPEM []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemTypeCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate #%d of the certificate PEM: %w", len(chain)+1, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("certificate PEM: %w", ErrNoCertificate)
	}
	return chain, nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	var keyBlocks []*pem.Block
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case pemTypeEncryptedKey:
			return nil, fmt.Errorf("private key PEM: %w", ErrEncryptedKey)
		case pemTypePKCS8, pemTypePKCS1, pemTypeSEC1:
			if isEncryptedBlock(block) {
				return nil, fmt.Errorf("private key PEM: %w", ErrEncryptedKey)
			}
			keyBlocks = append(keyBlocks, block)
		case pemTypeECParameters, pemTypeCertificate:
			// openssl ecparam -genkey writes EC PARAMETERS before the key;
			// combined files carry certificates. Neither is the key.
		}
	}
	switch len(keyBlocks) {
	case 0:
		return nil, fmt.Errorf("private key PEM: %w", ErrNoPrivateKey)
	case 1:
	default:
		return nil, fmt.Errorf("private key PEM holds %d private keys, want exactly one", len(keyBlocks))
	}

	block := keyBlocks[0]
	var (
		key any
		err error
	)
	switch block.Type {
	case pemTypePKCS8:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemTypePKCS1:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case pemTypeSEC1:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		// The x509/asn1 errors describe structure (tags, offsets), never
		// the key bytes themselves.
		return nil, fmt.Errorf("parsing %q block of the private key PEM: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrUnsupportedKey, key)
	}
	return signer, nil
}

// isEncryptedBlock reports a legacy OpenSSL "Proc-Type: 4,ENCRYPTED" block
// (RFC 1421), without the deprecated x509.IsEncryptedPEMBlock.
func isEncryptedBlock(b *pem.Block) bool {
	if _, ok := b.Headers["DEK-Info"]; ok {
		return true
	}
	return strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED")
}

func checkKeyAlgorithm(signer crypto.Signer) error {
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("%w: RSA key has %d bits, want at least %d", ErrUnsupportedKey, bits, MinRSABits)
		}
		return nil
	case *ecdsa.PrivateKey:
		switch name := k.Curve.Params().Name; name {
		case "P-256", "P-384":
			return nil
		default:
			return fmt.Errorf("%w: ECDSA curve %s, want P-256 or P-384", ErrUnsupportedKey, name)
		}
	default:
		return fmt.Errorf("%w: %T, want RSA (>= %d bits) or ECDSA P-256/P-384", ErrUnsupportedKey, signer, MinRSABits)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
