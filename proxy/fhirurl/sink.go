package fhirurl

import "io"

// sink is where a rewriter's output goes: into out, a buffer the writer
// owns, handed on to dst once per Write (or, with no dst, taken by the
// reader that drives the writer). Unchanged runs of the input are
// appended in bulk, so a Write costs one call of dst, however many
// strings it rewrote. The first error of dst is kept and every later
// write is dropped.
type sink struct {
	dst io.Writer // nil: the output stays in out for a reader to take
	err error
	out []byte
}

// put appends b to the output.
func (s *sink) put(b []byte) { s.out = append(s.out, b...) }

// finish ends a Write whose last pass-through run is tail: with no
// output buffered, tail goes to dst as it is (no copy); otherwise it is
// appended and the buffer goes to dst in one call.
func (s *sink) finish(tail []byte) {
	if s.dst == nil {
		s.out = append(s.out, tail...)
		return
	}
	if s.err != nil {
		s.out = s.out[:0]
		return
	}
	b := tail
	if len(s.out) > 0 {
		s.out = append(s.out, tail...)
		b = s.out
	}
	if len(b) > 0 {
		_, s.err = s.dst.Write(b)
	}
	s.out = s.out[:0]
}

// tokenLimit is limit, or DefaultMaxToken when limit is not positive.
func tokenLimit(limit int) int {
	if limit <= 0 {
		return DefaultMaxToken
	}
	return limit
}
