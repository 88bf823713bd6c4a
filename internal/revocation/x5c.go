package revocation

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxX5C bounds the certificates X5C reads from a header.
const MaxX5C = 10

// X5C returns the certificates of a compact JWS's "x5c" header (standard
// base64 DER, leaf first, RFC 7515 §4.1.6) without verifying anything,
// so that Verify can complete the chain through AIA: go-jose hands out a
// header's certificates only once they verify. At most MaxX5C
// certificates are read.
func X5C(compact string) ([]*x509.Certificate, error) {
	head, _, ok := strings.Cut(strings.TrimSpace(compact), ".")
	if !ok {
		return nil, errors.New("revocation: x5c: not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, fmt.Errorf("revocation: x5c: the JWS header is not base64url: %w", err)
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("revocation: x5c: the JWS header is not a JSON object with an x5c array: %w", err)
	}
	switch {
	case len(h.X5C) == 0:
		return nil, errors.New("revocation: x5c: the JWS header has no x5c certificates")
	case len(h.X5C) > MaxX5C:
		return nil, fmt.Errorf("revocation: x5c: %d certificates, at most %d allowed", len(h.X5C), MaxX5C)
	}
	out := make([]*x509.Certificate, len(h.X5C))
	for i, s := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("revocation: x5c: certificate %d is not standard base64: %w", i, err)
		}
		if out[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("revocation: x5c: certificate %d: %w", i, err)
		}
	}
	return out, nil
}
