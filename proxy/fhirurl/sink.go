package fhirurl

import "io"

// sink is where a rewriter writes: the first error of dst is kept and
// every later write is dropped.
type sink struct {
	dst io.Writer
	err error
}

func (s *sink) write(b []byte) {
	if s.err == nil && len(b) > 0 {
		_, s.err = s.dst.Write(b)
	}
}

// tokenLimit is limit, or DefaultMaxToken when limit is not positive.
func tokenLimit(limit int) int {
	if limit <= 0 {
		return DefaultMaxToken
	}
	return limit
}
