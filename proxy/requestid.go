package proxy

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"unsafe"
)

// requestIDSources are ChaCha8 generators, each seeded from crypto/rand:
// a new request id costs no system call and no allocation but the
// string itself (uuid.NewString costs two).
var requestIDSources = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand does not fail (it crashes the program instead)
	return rand.NewChaCha8(seed)
}}

// RequestIDBuffer holds a request id made by RequestIDIn.
type RequestIDBuffer [36]byte

// RequestIDIn is RequestID with a new id written into buf, which must
// not be written again: the string returned shares its memory, so a
// per-request struct holding buf saves the string's allocation.
func RequestIDIn(given string, buf *RequestIDBuffer) string {
	if given != "" {
		return RequestID(given) // the caller's, or (not sane) a new one
	}
	putRequestID(buf)
	return unsafe.String(&buf[0], len(buf))
}

// newRequestID returns a random (version 4) UUID in its canonical form:
// 122 random bits from a cryptographically secure generator, so ids are
// unique and cannot be guessed from one another.
func newRequestID() string {
	var b RequestIDBuffer
	putRequestID(&b)
	return string(b[:])
}

// putRequestID writes a new request id (newRequestID) into b.
func putRequestID(b *RequestIDBuffer) {
	var u [16]byte
	src := requestIDSources.Get().(*rand.ChaCha8)
	_, _ = src.Read(u[:]) // never fails
	requestIDSources.Put(src)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	const hexDigits = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[c>>4], hexDigits[c&0x0f]
		j += 2
	}
}
