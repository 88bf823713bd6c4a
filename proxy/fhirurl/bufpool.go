package fhirurl

import "sync"

// bufClasses are the capacities of the pooled byte buffers, smallest
// first. A buffer is taken from the smallest class that fits what is
// asked, so a 2 KB Patient holds a few KiB, not a large chunk, however
// large the bodies before it were; a buffer goes back to the largest
// class its capacity fills, and one past the largest class is dropped.
var bufClasses = [...]int{1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10}

var bufPools [len(bufClasses)]sync.Pool

// getBuf returns an empty buffer with a capacity of at least n (of the
// largest class if n is larger).
func getBuf(n int) *[]byte {
	c := 0
	for c < len(bufClasses)-1 && bufClasses[c] < n {
		c++
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, bufClasses[c])
	return &b
}

// putBuf hands b back; it must not be used after.
func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	n := cap(*b)
	if n < bufClasses[0] || n > 2*bufClasses[len(bufClasses)-1] {
		return
	}
	c := len(bufClasses) - 1
	for bufClasses[c] > n {
		c--
	}
	*b = (*b)[:0]
	bufPools[c].Put(b)
}
