package fhirurl

import (
	"bytes"
	"encoding/json"
	"io"
	"unicode/utf8"
)

// DefaultMaxToken is the longest JSON string token (quotes and escapes
// included) or XML attribute value the rewriters examine. Longer ones (a
// base64 attachment, a large narrative) cannot be a URL worth rewriting
// and pass through unexamined, so the memory a rewriter holds stays
// bounded whatever it is fed.
const DefaultMaxToken = 64 << 10

// JSON rewriter states.
const (
	jsOut  = iota // between tokens
	jsStr         // inside a string that started in an earlier Write; raw bytes in buf
	jsLong        // inside a string longer than the limit, passing through
	jsHeld        // a string that maps was read; waiting for the next
	// significant byte to tell a key (followed by ':') from a value
)

// JSONWriter rewrites, on its way to the underlying writer, every JSON
// string value (never an object key) that decodes to an absolute URL the
// Mapper maps. Every other byte is written as it came, so the output
// equals the input when nothing maps. It works on the token level
// without a parser: it only follows where strings start and end, so it
// never fails on invalid JSON (bytes pass through, strings in it may still
// be rewritten) and valid JSON stays valid (a replacement is always a
// complete, correctly escaped string). A string whose raw token is longer
// than the limit passes through unexamined. Memory is bounded by the
// limit: nothing but one string token and the white space after it is
// ever held back.
//
// Writes to the underlying writer are many and may be small; give it a
// buffer. Close must be called at the end of the input to write what is
// held back; it does not close the underlying writer.
type JSONWriter struct {
	sink
	m     *Mapper
	limit int

	st       int
	esc      bool   // the previous byte in a string was an unpaired backslash
	buf      []byte // jsStr: the raw string so far
	heldOrig []byte // jsHeld: the original token
	heldRepl []byte // jsHeld: its replacement
	heldWS   []byte // jsHeld: white space after it, from earlier Writes
	repl     []byte // the last replacement built
}

// NewJSONWriter returns a JSONWriter writing to dst. limit is the longest
// string token examined; 0 means DefaultMaxToken.
func NewJSONWriter(dst io.Writer, m *Mapper, limit int) *JSONWriter {
	return &JSONWriter{sink: sink{dst: dst}, m: m, limit: tokenLimit(limit)}
}

// reset makes w a new JSONWriter to dst, keeping its buffers.
func (w *JSONWriter) reset(dst io.Writer, m *Mapper, limit int) {
	*w = JSONWriter{sink: sink{dst: dst}, m: m, limit: tokenLimit(limit), buf: w.buf[:0], heldOrig: w.heldOrig[:0], heldWS: w.heldWS[:0], repl: w.repl[:0]}
}

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *JSONWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	mark := 0 // p[mark:i] is pass-through not written yet
	i := 0
	bs := -1 // index of the next backslash at or after it, len(p) if none
	for i < len(p) && w.err == nil {
		switch w.st {
		case jsOut:
			// Every URL that can map has "//" in its raw token unless
			// it is escaped, and an escape needs a backslash. Up to the
			// next "//" with no backslash before it, strings need not
			// be looked at one by one: counting quotes says whether
			// the "//" is inside a string, and which one.
			if bs <= i {
				bs = i + bytes.IndexByte(p[i:], '\\')
				if bs < i {
					bs = len(p)
				}
			}
			c := bytes.Index(p[i:], schemeSep)
			if c < 0 {
				c = len(p)
			} else {
				c += i
			}
			var start int
			if bs >= c {
				if bytes.Count(p[i:c], quote)%2 == 0 {
					i = min(c+1, len(p)) // p[c] is '/', outside any string
					break
				}
				start = i + bytes.LastIndexByte(p[i:c], '"')
			} else if start = indexQuote(p, i); start < 0 {
				i = len(p)
				break
			}
			// Fast path: the next quote closes the string unless a
			// backslash comes first; backslashes are rare, so where the
			// next one is is remembered.
			end, esc := -1, false
			if q := indexQuote(p, start+1); q >= 0 {
				if bs <= start {
					bs = start + 1 + bytes.IndexByte(p[start+1:], '\\')
					if bs == start {
						bs = len(p)
					}
				}
				if bs > q {
					end = q + 1
				}
			}
			if end < 0 {
				end, esc = scanJSONString(p, start+1, false)
			}
			if end >= 0 {
				i = end
				if end-start-2 < w.m.minLen || end-start > w.limit {
					break
				}
				if c := p[start+1]; c != 'h' && c != 'H' && c != '\\' {
					break
				}
				repl, ok := w.rewrite(p[start:end])
				if !ok {
					break
				}
				// A key is followed by ':'; look ahead if p has it.
				k := end
				for k < len(p) && isJSONSpace(p[k]) {
					k++
				}
				if k < len(p) {
					if p[k] != ':' {
						w.write(p[mark:start])
						w.write(repl)
						mark = end
					}
					break
				}
				w.write(p[mark:start])
				mark = end
				w.hold(p[start:end], repl)
				break
			}
			w.esc = esc
			i = len(p)
			if len(p)-start > w.limit {
				w.st = jsLong // flushed with the rest of p
				break
			}
			w.write(p[mark:start])
			mark = len(p)
			w.buf = append(w.buf[:0], p[start:]...)
			w.st = jsStr
		case jsStr:
			end, esc := scanJSONString(p, i, w.esc)
			if end < 0 {
				w.esc = esc
				if len(w.buf)+len(p)-i > w.limit {
					w.write(w.buf)
					w.buf = w.buf[:0]
					w.st = jsLong
					mark = i
				} else {
					w.buf = append(w.buf, p[i:]...)
					mark = len(p)
				}
				i = len(p)
				break
			}
			w.buf = append(w.buf, p[i:end]...)
			i, mark = end, end
			w.st = jsOut
			if repl, ok := w.rewrite(w.buf); ok && len(w.buf) <= w.limit {
				w.hold(w.buf, repl)
			} else {
				w.write(w.buf)
			}
			w.buf = w.buf[:0]
		case jsLong:
			end, esc := scanJSONString(p, i, w.esc)
			if end < 0 {
				w.esc = esc
				i = len(p)
				break
			}
			i = end
			w.st = jsOut
		case jsHeld:
			k := i
			for k < len(p) && isJSONSpace(p[k]) {
				k++
			}
			if k == len(p) {
				w.heldWS = append(w.heldWS, p[i:]...)
				i, mark = len(p), len(p)
				if len(w.heldWS) > w.limit {
					w.release(w.heldOrig) // pathological: leave it alone
				}
				break
			}
			// mark == i here: nothing after the token was written.
			if p[k] == ':' {
				w.release(w.heldOrig)
			} else {
				w.release(w.heldRepl)
			}
			i = k
		}
	}
	w.write(p[mark:])
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// hold keeps a token that maps until the next significant byte says
// whether it is a key.
func (w *JSONWriter) hold(orig, repl []byte) {
	w.heldOrig = append(w.heldOrig[:0], orig...)
	w.heldRepl = repl // w.repl, not reused until released
	w.heldWS = w.heldWS[:0]
	w.st = jsHeld
}

// release writes the held token as tok, then the white space after it.
func (w *JSONWriter) release(tok []byte) {
	w.write(tok)
	w.write(w.heldWS)
	w.heldWS = w.heldWS[:0]
	w.heldRepl = nil
	w.st = jsOut
}

// Close writes what is held back: a string that maps at the very end of
// the input is a value and is rewritten; an unterminated string is
// written as it came. It does not close the underlying writer.
func (w *JSONWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	switch w.st {
	case jsHeld:
		w.release(w.heldRepl)
	case jsStr:
		w.write(w.buf)
		w.buf = w.buf[:0]
	}
	w.st = jsOut
	return w.err
}

// rewrite returns the replacement for the raw string token tok (quotes
// included) if it decodes to a URL the Mapper maps. The replacement is
// built in w.repl. Without escapes in tok it allocates nothing.
func (w *JSONWriter) rewrite(tok []byte) ([]byte, bool) {
	content := tok[1 : len(tok)-1]
	if len(content) < w.m.minLen {
		return nil, false
	}
	if bytes.IndexByte(content, '\\') < 0 {
		rest, ok := cut(w.m, content)
		if !ok {
			return nil, false
		}
		// rest came from a JSON string without escapes: it needs none.
		w.repl = append(w.repl[:0], '"')
		w.repl = append(w.repl, w.m.publicJSON...)
		w.repl = append(w.repl, rest...)
		w.repl = append(w.repl, '"')
		return w.repl, true
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, false
	}
	rest, ok := cut(w.m, s)
	if !ok {
		return nil, false
	}
	w.repl = append(w.repl[:0], '"')
	w.repl = append(w.repl, w.m.publicJSON...)
	w.repl = appendJSONContent(w.repl, rest)
	w.repl = append(w.repl, '"')
	return w.repl, true
}

// appendJSONContent appends s escaped as the content of a JSON string:
// '"', '\\', control characters, U+2028 and U+2029 escaped as
// encoding/json escapes them; invalid UTF-8 becomes U+FFFD.
func appendJSONContent(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// scanJSONString looks for the end of a JSON string whose content starts
// at p[from]; esc says the byte before p[from] was an unpaired backslash.
// It returns the index just past the closing quote, or -1 and whether
// the last byte of p leaves an unpaired backslash.
func scanJSONString(p []byte, from int, esc bool) (int, bool) {
	for {
		if esc {
			if from >= len(p) {
				return -1, true
			}
			from++
		}
		if from >= len(p) {
			return -1, false
		}
		q := bytes.IndexByte(p[from:], '"')
		span := p[from:]
		if q >= 0 {
			span = span[:q]
		}
		if b := bytes.IndexByte(span, '\\'); b >= 0 {
			from += b + 1
			esc = true
			continue
		}
		if q < 0 {
			return -1, false
		}
		return from + q + 1, false
	}
}

var (
	schemeSep = []byte("//") // "://" makes bytes.Index stop at every ':'; '/' is rarer
	quote     = []byte{'"'}
)

// indexQuote returns the index of the first '"' in p at or after from,
// or -1. JSON alternates short runs (`":"`, keys, codes) with long ones;
// a plain loop finds a near quote faster than bytes.IndexByte's setup.
func indexQuote(p []byte, from int) int {
	end := min(from+16, len(p))
	for k := from; k < end; k++ {
		if p[k] == '"' {
			return k
		}
	}
	if end == len(p) {
		return -1
	}
	if k := bytes.IndexByte(p[end:], '"'); k >= 0 {
		return end + k
	}
	return -1
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
