package discovery

import (
	"fmt"
	"strings"
)

// Source names one claim a FHIR server can make about its token URL.
// Sources are tried in a Request's Order; see the package documentation
// for what each one reads and why DefaultOrder is what it is.
type Source string

// The sources Discover knows.
const (
	// SourceCarequalityToken is the Carequality-specific token URL from
	// {base}/metadata: the "carequality-token" sub-extension of
	// oauth-uris, Cerner's separate carequality-oauth-uris extension, or,
	// with Request.CernerOverride, the plain "token" sub-extension.
	SourceCarequalityToken Source = "carequality-token"
	// SourceUDAP is token_endpoint from the verified signed_metadata of
	// {base}/.well-known/udap.
	SourceUDAP Source = "udap"
	// SourceSMARTConfiguration is token_endpoint from
	// {base}/.well-known/smart-configuration.
	SourceSMARTConfiguration Source = "smart-configuration"
	// SourceToken is the generic "token" sub-extension of oauth-uris in
	// {base}/metadata.
	SourceToken Source = "token"
)

// DefaultOrder returns the order in which Discover tries the sources when
// a Request names none: carequality-token, udap, smart-configuration,
// token. Each call returns a new slice.
func DefaultOrder() []Source {
	return []Source{SourceCarequalityToken, SourceUDAP, SourceSMARTConfiguration, SourceToken}
}

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool {
	switch s {
	case SourceCarequalityToken, SourceUDAP, SourceSMARTConfiguration, SourceToken:
		return true
	}
	return false
}

// String returns the source's name.
func (s Source) String() string { return string(s) }

// ParseSource returns the Source named name (surrounding space and case
// are ignored).
func ParseSource(name string) (Source, error) {
	s := Source(strings.ToLower(strings.TrimSpace(name)))
	if !s.Valid() {
		return "", fmt.Errorf("discovery: unknown source %s, want one of %s", quote(name), joinSources(DefaultOrder()))
	}
	return s, nil
}

// ParseOrder parses a list of source names, as read from configuration,
// into an order for Request.Order or Config.Order. Names must be known
// and not repeated; an empty list yields nil (the default order).
func ParseOrder(names []string) ([]Source, error) {
	if len(names) == 0 {
		return nil, nil
	}
	order := make([]Source, 0, len(names))
	for _, n := range names {
		s, err := ParseSource(n)
		if err != nil {
			return nil, err
		}
		order = append(order, s)
	}
	if err := checkOrder(order); err != nil {
		return nil, err
	}
	return order, nil
}

// checkOrder rejects unknown and repeated sources.
func checkOrder(order []Source) error {
	seen := make(map[Source]bool, len(order))
	for _, s := range order {
		if !s.Valid() {
			return fmt.Errorf("discovery: unknown source %s in order, want one of %s", quote(string(s)), joinSources(DefaultOrder()))
		}
		if seen[s] {
			return fmt.Errorf("discovery: source %s appears twice in order", s)
		}
		seen[s] = true
	}
	return nil
}

func joinSources(order []Source) string {
	names := make([]string, len(order))
	for i, s := range order {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
