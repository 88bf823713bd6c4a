package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
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
	// ErrChainOrder means the certificates after the leaf cannot be put
	// in certification order (each certified by the next, RFC 7515
	// §4.1.6): one is missing between two of them, or one does not
	// belong to the leaf's chain.
	ErrChainOrder = errors.New("the certificate chain cannot be put in certification order")
)

// ParsePEM builds Material from a PEM certificate chain and a PEM private
// key.
//
// certPEM holds every CERTIFICATE block of the chain, leaf first; other
// block types are skipped, so a combined cert+key file is fine. keyPEM
// holds exactly one unencrypted private key as "PRIVATE KEY" (PKCS#8),
// "RSA PRIVATE KEY" (PKCS#1) or "EC PRIVATE KEY" (SEC 1). Only RSA keys of
// at least MinRSABits and ECDSA keys on P-256 or P-384 are accepted, and
// the key must belong to the leaf certificate. The certificates after the
// leaf may come in any order: Material.Chain holds them in certification
// order (each certificate certified by the next, as x5c must be: RFC 7515
// §4.1.6, UDAP Security IG general.md §7.1); a chain that cannot be put
// in that order, because a certificate between two of them is missing or
// one certifies none of the others, is refused (ErrChainOrder).
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
	if chain, err = certificationOrder(chain); err != nil {
		return nil, err
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

// certificationOrder returns chain (leaf first) with the certificates
// after the leaf in certification order: each one certified by the next
// (CheckSignatureFrom), as x5c must list them. A chain already in order
// comes back as it is, after len(chain)-1 signature checks. It is an
// ErrChainOrder when some certificate cannot be placed: the one the chain
// stops at is certified by none of the certificates left (one between
// them is missing), or a certificate left certifies none of the chain (it
// does not belong). Either is refused rather than sent: a partner would
// refuse the assertions, or trust them for a reason the operator did not
// mean, and a start-up or -check error says which certificate to fix.
func certificationOrder(chain []*x509.Certificate) ([]*x509.Certificate, error) {
	ordered := make([]*x509.Certificate, 1, len(chain))
	ordered[0] = chain[0]
	left := append([]*x509.Certificate(nil), chain[1:]...)
	for len(left) > 0 {
		last := ordered[len(ordered)-1]
		i := slices.IndexFunc(left, func(c *x509.Certificate) bool { return last.CheckSignatureFrom(c) == nil })
		if i < 0 {
			return nil, chainOrderError(chain, last, left)
		}
		ordered = append(ordered, left[i])
		left = slices.Delete(left, i, i+1)
	}
	return ordered, nil
}

// chainOrderError says where the chain stops (last, certified by none
// of left) and which certificates are left over, by their place in the
// PEM, subject and serial.
func chainOrderError(chain []*x509.Certificate, last *x509.Certificate, left []*x509.Certificate) error {
	names := make([]string, len(left))
	for i, c := range left {
		names[i] = fmt.Sprintf("#%d %s", slices.Index(chain, c)+1, describeCert(c))
	}
	at := fmt.Sprintf("#%d %s", slices.Index(chain, last)+1, describeCert(last))
	if bytes.Equal(last.RawIssuer, last.RawSubject) && last.CheckSignatureFrom(last) == nil {
		return fmt.Errorf("%w: it ends at the self-signed %s, and %s certify none of the chain: remove them",
			ErrChainOrder, at, strings.Join(names, ", "))
	}
	return fmt.Errorf("%w: %s was issued by %q, which is none of the certificates left (%s): "+
		"add the missing certificate, or remove those that do not belong to the leaf's chain",
		ErrChainOrder, at, last.Issuer.String(), strings.Join(names, ", "))
}

// describeCert names c by subject and serial (hex), as errors do.
func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("(subject %q, serial %s)", c.Subject.String(), c.SerialNumber.Text(16))
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
