package callerauth

import (
	"crypto/x509"
	"fmt"
	"net/http"
)

// Where MTLS takes the caller's name from.
const (
	IdentitySANURI    = "san_uri"
	IdentitySANDNS    = "san_dns"
	IdentitySubjectCN = "subject_cn"
)

// MTLS authenticates callers by the client certificate that the TLS
// server verified (see LoadServerTLS: with a client CA file it requires
// and verifies a client certificate during the handshake). It trusts only
// r.TLS.VerifiedChains, never a certificate that was merely presented or
// a header set by someone in front of cqgate.
//
// The caller's name comes from the verified leaf certificate, as
// IdentityFrom says: IdentitySANURI (the first URI SAN, e.g. a SPIFFE ID;
// the default when empty), IdentitySANDNS (the first DNS SAN) or
// IdentitySubjectCN (the subject common name).
type MTLS struct {
	IdentityFrom string
}

var _ Authenticator = MTLS{}

// Validate reports whether IdentityFrom is one MTLS knows.
func (m MTLS) Validate() error {
	switch m.IdentityFrom {
	case "", IdentitySANURI, IdentitySANDNS, IdentitySubjectCN:
		return nil
	}
	return fmt.Errorf("callerauth: mtls identity %q: want %s, %s or %s", truncate(m.IdentityFrom), IdentitySANURI, IdentitySANDNS, IdentitySubjectCN)
}

// Authenticate returns the identity of the verified client certificate.
// A request without a verified chain (plain HTTP, or TLS without a
// verified client certificate) is ErrUnauthenticated; a verified
// certificate without the configured name is ErrBadCredentials.
func (m MTLS) Authenticate(r *http.Request) (*Identity, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, &AuthError{Method: MethodMTLS, Reason: "no verified client certificate", Err: ErrUnauthenticated}
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name, reason := m.nameOf(leaf)
	if name == "" {
		return nil, &AuthError{Method: MethodMTLS, Reason: reason, Err: ErrBadCredentials}
	}
	return &Identity{Name: name, Method: MethodMTLS, Subject: leaf.Subject.String()}, nil
}

func (m MTLS) nameOf(leaf *x509.Certificate) (name, reason string) {
	switch m.IdentityFrom {
	case IdentitySANDNS:
		if len(leaf.DNSNames) == 0 || leaf.DNSNames[0] == "" {
			return "", "client certificate has no DNS SAN"
		}
		return leaf.DNSNames[0], ""
	case IdentitySubjectCN:
		if leaf.Subject.CommonName == "" {
			return "", "client certificate has no subject common name"
		}
		return leaf.Subject.CommonName, ""
	default:
		if len(leaf.URIs) == 0 || leaf.URIs[0] == nil {
			return "", "client certificate has no URI SAN"
		}
		return leaf.URIs[0].String(), ""
	}
}
