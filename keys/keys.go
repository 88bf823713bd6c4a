package keys

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// Material is a signing key with the X.509 certificate chain that vouches
// for it. It is immutable once loaded: a reload produces new Material.
type Material struct {
	// Signer signs with the private key. It never exposes the key itself
	// to callers, so a remote signer (a KMS, Vault transit) fits as well
	// as an in-memory key.
	Signer crypto.Signer
	// Opaque, when set, signs JWS signing inputs itself: a remote signer
	// such as Vault transit, where no crypto.Signer fits because the
	// signature is computed over the whole input. Signer may then be nil;
	// the public key is the leaf certificate's.
	Opaque jose.OpaqueSigner
	// Chain is the certificate chain, leaf first. Chain[0].PublicKey is
	// the public half of Signer.
	Chain []*x509.Certificate
	// KeyID identifies the key in JWT headers ("kid"): the RFC 7638 JWK
	// thumbprint (SHA-256, base64url) of the public key.
	KeyID string
	// Version names what was loaded, e.g. "kv:v3" for a Vault KV
	// version or a file's modification time, for logs and metrics.
	Version string
	// LoadedAt is when the material was loaded.
	LoadedAt time.Time
}

// NotAfter is the expiry of the leaf certificate.
func (m *Material) NotAfter() time.Time {
	if m == nil || len(m.Chain) == 0 {
		return time.Time{}
	}
	return m.Chain[0].NotAfter
}

// Public returns the public half of the signing key: the signer's, or the
// leaf certificate's for an opaque signer.
func (m *Material) Public() crypto.PublicKey {
	switch {
	case m == nil:
		return nil
	case m.Signer != nil:
		return m.Signer.Public()
	case m.Opaque != nil:
		return m.Opaque.Public().Key
	case len(m.Chain) > 0 && m.Chain[0] != nil:
		return m.Chain[0].PublicKey
	}
	return nil
}

// JOSESigner returns the signer go-jose signs with: Opaque when set,
// otherwise Signer wrapped by go-jose's cryptosigner. It is nil when the
// material has neither.
func (m *Material) JOSESigner() jose.OpaqueSigner {
	switch {
	case m == nil:
		return nil
	case m.Opaque != nil:
		return m.Opaque
	case m.Signer != nil:
		return cryptosigner.Opaque(m.Signer)
	}
	return nil
}

// Source loads signing material from wherever it is kept.
type Source interface {
	Load(ctx context.Context) (*Material, error)
}

// String describes the material for logs: key ID, version, leaf subject and
// expiry. It never prints the key.
func (m Material) String() string {
	subject := ""
	if len(m.Chain) > 0 && m.Chain[0] != nil {
		subject = m.Chain[0].Subject.String()
	}
	return fmt.Sprintf("keys.Material{KeyID:%s Version:%s Subject:%q NotAfter:%s Chain:%d}",
		m.KeyID, m.Version, subject, m.NotAfter().UTC().Format(time.RFC3339), len(m.Chain))
}

// GoString is String, so that %#v does not print the key either.
func (m Material) GoString() string { return m.String() }
