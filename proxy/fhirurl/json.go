package fhirurl

import (
	"bytes"
	"encoding/json"
	"io"
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
	dst   io.Writer
	m     *Mapper
	limit int

	st       int
	esc      bool   // the previous byte in a string was an unpaired backslash
	buf      []byte // jsStr: the raw string so far
	heldOrig []byte // jsHeld: the original token
	heldRepl []byte // jsHeld: its replacement
	heldWS   []byte // jsHeld: white space after it, from earlier Writes
	err      error
}

// NewJSONWriter returns a JSONWriter writing to dst. limit is the longest
// string token examined; 0 means DefaultMaxToken.
func NewJSONWriter(dst io.Writer, m *Mapper, limit int) *JSONWriter {
	if limit <= 0 {
		limit = DefaultMaxToken
	}
	return &JSONWriter{dst: dst, m: m, limit: limit}
}

func (w *JSONWriter) write(b []byte) {
	if w.err == nil && len(b) > 0 {
		_, w.err = w.dst.Write(b)
	}
}

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *JSONWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	mark := 0 // p[mark:i] is pass-through not written yet
	i := 0
	for i < len(p) && w.err == nil {
		switch w.st {
		case jsOut:
			j := bytes.IndexByte(p[i:], '"')
			if j < 0 {
				i = len(p)
				break
			}
			start := i + j
			end, esc := scanJSONString(p, start+1, false)
			if end >= 0 {
				i = end
				if end-start > w.limit {
					break
				}
				if repl, ok := w.rewrite(p[start:end]); ok {
					w.write(p[mark:start])
					mark = end
					w.hold(p[start:end], repl)
				}
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
	w.heldRepl = repl
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
// included) if it decodes to a URL the Mapper maps.
func (w *JSONWriter) rewrite(tok []byte) ([]byte, bool) {
	content := tok[1 : len(tok)-1]
	if len(content) < w.m.minLen {
		return nil, false
	}
	if c := content[0]; c != 'h' && c != 'H' && c != '\\' {
		return nil, false
	}
	var s string
	if bytes.IndexByte(content, '\\') < 0 {
		if !hasPrefixFold(content, w.m.scheme) {
			return nil, false
		}
		s = string(content)
	} else if err := json.Unmarshal(tok, &s); err != nil {
		return nil, false
	}
	out, ok := w.m.Map(s)
	if !ok {
		return nil, false
	}
	return appendJSONString(nil, out), true
}

// hasPrefixFold reports whether b starts with scheme (lower case) in any
// case.
func hasPrefixFold(b []byte, scheme string) bool {
	if len(b) < len(scheme) {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		if b[i]|0x20 != scheme[i] {
			return false
		}
	}
	return true
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires (and U+2028, U+2029 as encoding/json does); invalid UTF-8
// becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
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

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
