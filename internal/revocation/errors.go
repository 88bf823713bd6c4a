package revocation

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinels the typed errors wrap.
var (
	ErrRevoked     = errors.New("revocation: certificate revoked")
	ErrUnavailable = errors.New("revocation: status unavailable")
	// ErrTooLarge is wrapped when a response exceeds its size limit.
	ErrTooLarge = errors.New("revocation: response too large")
)

// RevokedError says a certificate was revoked.
type RevokedError struct {
	Subject string
	// Serial is the serial number in hexadecimal.
	Serial string
	// Reason is the RFC 5280 CRLReason code (0 when none was given).
	Reason    int
	RevokedAt time.Time
	// Source is "ocsp <url>" or "crl <url>".
	Source string
}

func (e *RevokedError) Error() string {
	at := ""
	if !e.RevokedAt.IsZero() {
		at = " at " + e.RevokedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("revocation: certificate %q (serial %s) was revoked%s, reason %s, according to %s",
		e.Subject, e.Serial, at, ReasonText(e.Reason), e.Source)
}

func (e *RevokedError) Unwrap() error { return ErrRevoked }

// Attempt is one source asked for a status, and why it gave none.
type Attempt struct {
	// Source is "ocsp <url>" or "crl <url>"; empty when the certificate
	// names no source.
	Source string
	Err    error
}

// UnavailableError says a certificate's status could not be found.
type UnavailableError struct {
	Subject  string
	Serial   string
	Attempts []Attempt
}

func (e *UnavailableError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		if a.Source == "" {
			parts[i] = a.Err.Error()
		} else {
			parts[i] = a.Source + ": " + a.Err.Error()
		}
	}
	return fmt.Sprintf("revocation: cannot tell whether certificate %q (serial %s) is revoked: %s",
		e.Subject, e.Serial, strings.Join(parts, "; "))
}

// Unwrap returns ErrUnavailable and every attempt's error, so that
// errors.Is finds, say, an SSRF refusal behind the failure.
func (e *UnavailableError) Unwrap() []error {
	out := []error{ErrUnavailable}
	for _, a := range e.Attempts {
		out = append(out, a.Err)
	}
	return out
}

// ReasonText names an RFC 5280 CRLReason code.
func ReasonText(code int) string {
	names := [...]string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
		"superseded", "cessationOfOperation", "certificateHold", "", "removeFromCRL",
		"privilegeWithdrawn", "aACompromise"}
	if code >= 0 && code < len(names) && names[code] != "" {
		return names[code]
	}
	return fmt.Sprintf("code %d", code)
}
