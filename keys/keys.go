package keys

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"
)

// Material is a signing key with the X.509 certificate chain that vouches
// for it. It is immutable once loaded: a reload produces new Material.
type Material struct {
	// Signer signs with the private key. It never exposes the key itself
	// to callers, so a remote signer (a KMS, Vault transit) fits as well
	// as an in-memory key.
	Signer crypto.Signer
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
