package proxy

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cqgate/cqgate/internal/failure"
)

// ErrBadPath is wrapped by every error ParsePath returns.
var ErrBadPath = failure.New(failure.Invalid, "proxy: invalid FHIR path")

// maxPathLen bounds the FHIR path cqgate will forward.
const maxPathLen = 2048

// ParsePath checks the escaped FHIR path a caller asked for (the part after
// /fhir/{oid}, e.g. "/Patient/1316024") and returns it in the escaped form
// to append to the tenant's FHIR base. It refuses anything that could climb
// out of the base: dot segments (also percent-encoded, also with path
// parameters such as "..;x", which Java servlet containers read as "..",
// and segments of nothing but dots and spaces, which Windows servers trim
// to ".."), encoded slashes or backslashes, empty segments, control
// characters, and bytes that are not UTF-8 once decoded (overlong
// encodings such as %c0%ae for ".").
func ParsePath(escaped string) (string, error) {
	if escaped == "" || escaped == "/" {
		return "", nil
	}
	if len(escaped) > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, maxPathLen)
	}
	if !strings.HasPrefix(escaped, "/") {
		return "", fmt.Errorf("%w: must start with /", ErrBadPath)
	}
	rest := escaped[1:]
	for rest != "" || strings.HasSuffix(escaped, "/") {
		seg, tail, more := strings.Cut(rest, "/")
		rest = tail
		if seg == "" {
			if !more {
				break // a trailing slash is harmless
			}
			return "", fmt.Errorf("%w: empty path segment", ErrBadPath)
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("%w: bad percent-encoding", ErrBadPath)
		}
		if name, _, _ := strings.Cut(dec, ";"); strings.Trim(name, ". ") == "" && strings.Contains(name, ".") {
			return "", fmt.Errorf("%w: dot segments are not allowed", ErrBadPath)
		}
		if !utf8.ValidString(dec) {
			return "", fmt.Errorf("%w: not UTF-8 after percent-decoding", ErrBadPath)
		}
		if strings.ContainsAny(dec, "/\\") {
			return "", fmt.Errorf("%w: encoded slash or backslash in a segment", ErrBadPath)
		}
		for _, r := range dec {
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("%w: control character", ErrBadPath)
			}
		}
	}
	return escaped, nil
}
