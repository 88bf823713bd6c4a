package directory

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cqgate/cqgate/internal/failure"
)

// ErrInvalidOID is returned (wrapped) when a string is not a valid OID.
var ErrInvalidOID = failure.New(failure.Malformed, "directory: invalid OID")

const (
	// maxOIDLen bounds the length of a bare OID.
	maxOIDLen = 128
	// oidPrefix is the URN form's prefix, matched case-insensitively.
	oidPrefix = "urn:oid:"
	// maxQuotedInput bounds how much of a rejected input an error quotes.
	maxQuotedInput = 64
)

// ParseOID returns the bare, canonical form of an OID given bare
// ("2.16.840.1.113883.3.13.1") or as a URN ("urn:oid:2.16.840.1.113883.3.13.1",
// prefix matched case-insensitively).
//
// A valid OID has at least two arcs of decimal digits, none empty and none
// with a leading zero (except "0" itself); the first arc is 0, 1 or 2 and,
// under 0 and 1, the second arc is at most 39. The bare OID is at most 128
// characters long and contains no whitespace. Otherwise the error wraps
// ErrInvalidOID.
func ParseOID(s string) (string, error) {
	oid := s
	if len(oid) >= len(oidPrefix) && strings.EqualFold(oid[:len(oidPrefix)], oidPrefix) {
		oid = oid[len(oidPrefix):]
	}
	if err := checkOID(oid); err != nil {
		return "", fmt.Errorf("%w %s: %s", ErrInvalidOID, quoteInput(s), err)
	}
	return oid, nil
}

// checkOID validates a bare OID. Its errors are plain reasons, without
// the package prefix; ParseOID adds the context.
func checkOID(oid string) error {
	switch {
	case oid == "":
		return errors.New("empty")
	case len(oid) > maxOIDLen:
		return fmt.Errorf("longer than %d characters", maxOIDLen)
	}
	if !strings.Contains(oid, ".") {
		return errors.New("fewer than two arcs")
	}
	var first, second string
	i := 0
	for arc := range strings.SplitSeq(oid, ".") {
		switch i {
		case 0:
			first = arc
		case 1:
			second = arc
		}
		if arc == "" {
			return fmt.Errorf("arc %d is empty", i+1)
		}
		for j := 0; j < len(arc); j++ {
			if arc[j] < '0' || arc[j] > '9' {
				return fmt.Errorf("arc %d is not a decimal number", i+1)
			}
		}
		if len(arc) > 1 && arc[0] == '0' {
			return fmt.Errorf("arc %d has a leading zero", i+1)
		}
		i++
	}
	if first != "0" && first != "1" && first != "2" {
		return errors.New("first arc must be 0, 1 or 2")
	}
	if first != "2" {
		// At most two digits, so Atoi cannot overflow.
		if n, err := strconv.Atoi(second); err != nil || len(second) > 2 || n > 39 {
			return errors.New("second arc must be at most 39 under arcs 0 and 1")
		}
	}
	return nil
}

// quoteInput quotes untrusted input for an error message: truncated, with
// control characters and invalid UTF-8 escaped.
func quoteInput(s string) string {
	if len(s) <= maxQuotedInput {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuotedInput]) + "..."
}
