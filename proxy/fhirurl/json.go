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
	jsDivKey   // after a "div" key, before its ':'
	jsDivColon // after a "div" key's ':', before its value
	jsDiv      // inside the value of a "div" key: a narrative's XHTML
)

// JSONWriter rewrites, on its way to the underlying writer, every JSON
// string value (never an object key) that decodes to an absolute URL the
// Mapper maps, and in the value of a "div" key (Narrative.div, XHTML in
// one string) every attribute value that XMLWriter would map in the same
// XHTML (see narrative.go). Every other byte is written as it came, so the output
// equals the input when nothing maps. It works on the token level
// without a parser: it only follows where strings start and end, so it
// never fails on invalid JSON (bytes pass through, strings in it may still
// be rewritten) and valid JSON stays valid (a replacement is always a
// complete, correctly escaped string). A string whose raw token is longer
// than the limit passes through unexamined, and so does a string that
// maps when more white space than the limit follows it. Memory is
// bounded by the limit: nothing but one string token and the white space
// after it is ever held back.
//
// It does not look at every string. A string without escapes can map
// only if it starts with the scheme and "://", so the writer looks only
// at a "//" with '"', the scheme and ':' before it, and at backslashes
// (a string with an escape is decoded whole); the quotes before an
// anchor, counted once with bytes.Count, say whether its quote opens a
// string. Only those strings are examined: their start compared with
// the partner's base, the bytes between them copied in bulk. A third
// anchor, `"div"`, finds narratives; a narrative is read byte by byte
// only inside its tags, and its text skipped to the next '<' or escape.
//
// Each Write makes at most one Write to the underlying writer (none when
// everything is held back). Close must be called at the end of the input
// to write what is held back; it does not close the underlying writer.
type JSONWriter struct {
	sink
	m     *Mapper
	limit int

	st       int
	esc      bool   // the previous byte in a string was an unpaired backslash
	buf      []byte // jsStr: the raw string so far
	heldOrig []byte // jsHeld: the original token
	heldRepl []byte // jsHeld: its replacement
	heldWS   []byte // jsHeld: white space after it
	repl     []byte // the last replacement built

	xl    xhtmlLex // jsDiv: where in the narrative's XHTML
	jesc  uint8    // jsDiv: the JSON escape being read: 0 none, 1 after '\', 2 to 5 after "\u" and 0 to 3 hex digits
	ju    uint16   // jsDiv: the \u escape's hex digits so far
	vpass bool     // jsDiv, in an attribute value: it passes unexamined (else held in buf, when it began in an earlier Write)
	dec   []byte   // jsDiv: an attribute value, JSON escapes undone (when it has any)
}

// NewJSONWriter returns a JSONWriter writing to dst. limit is the longest
// string token examined; 0 means DefaultMaxToken.
func NewJSONWriter(dst io.Writer, m *Mapper, limit int) *JSONWriter {
	return &JSONWriter{sink: sink{dst: dst}, m: m, limit: tokenLimit(limit)}
}

// reset makes w a new JSONWriter to dst (nil: output left in w.out),
// keeping its buffers.
func (w *JSONWriter) reset(dst io.Writer, m *Mapper, limit int) {
	*w = JSONWriter{sink: sink{dst: dst, out: w.out[:0]}, m: m, limit: tokenLimit(limit),
		buf: w.buf[:0], heldOrig: w.heldOrig[:0], heldWS: w.heldWS[:0], repl: w.repl[:0], dec: w.dec[:0]}
}

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *JSONWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.finish(p[w.scan(p):])
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// scan rewrites p into w.out up to the returned mark: p[mark:] is
// pass-through not written yet.
func (w *JSONWriter) scan(p []byte) int {
	mark := 0
	i := 0
	sl := len(w.m.scheme)
	// In jsOut, i is outside any string and p[i:qpos] holds par quotes
	// (mod 2); c is the next "//" that may follow a scheme at or after
	// i, bs the next backslash, d the next `"div"`; each is len(p) if
	// there is none.
	qpos, par := 0, 0
	c, bs, d := -1, -1, -1
	for i < len(p) {
		switch w.st {
		case jsOut:
			if bs < i {
				bs = indexByteFrom(p, i, '\\')
			}
			if c < i+sl+2 {
				c = indexSlashes(p, min(i+sl+2, len(p)))
			}
			if d < i {
				d = indexDivKey(p, i)
			}
			if qpos < i {
				qpos, par = i, 0
			}
			if d < c && d < bs {
				// A "div" key (a narrative follows) if its quote opens
				// a string.
				par ^= bytes.Count(p[qpos:d], quote) & 1
				qpos = d
				if par != 0 {
					d = indexDivKey(p, d+1)
					break
				}
				i = d + len(divKey)
				w.st = jsDivKey
				break
			}
			if c < bs {
				// Without escapes a string maps only if it starts
				// with the scheme and "://": its quote is at s.
				s := c - sl - 2
				if s < qpos || p[s] != '"' || p[c-1] != ':' || !hasPrefixFold(p[s+1:c-1], w.m.scheme) {
					c = w.nextAnchor(p, c)
					break
				}
				par ^= bytes.Count(p[qpos:s], quote) & 1
				qpos = s
				if par != 0 { // p[s] closes a string
					c = w.nextAnchor(p, c)
					break
				}
				end, esc, plain := -1, false, false
				if q := indexByteFrom(p, c+2, '"'); q < bs {
					end, plain = q+1, true
				} else {
					end, esc = scanJSONString(p, s+1, false)
				}
				if end >= 0 {
					i = end
					mark = w.token(p, mark, s, end, plain)
					break
				}
				mark, i = w.open(p, mark, s, esc), len(p)
				break
			}
			// The backslash, or the end of p, comes first.
			par ^= bytes.Count(p[qpos:bs], quote) & 1
			qpos = bs
			if par == 0 {
				i = bs + 1 // outside any string (not JSON), or the end
				break
			}
			start := i + bytes.LastIndexByte(p[i:bs], '"')
			end, esc := -1, false
			if bs < len(p) {
				end, esc = scanJSONString(p, start+1, false)
			}
			if end >= 0 {
				i = end
				if isDivKey(p[start:end]) {
					w.st = jsDivKey
					break
				}
				mark = w.token(p, mark, start, end, false)
				break
			}
			mark, i = w.open(p, mark, start, esc), len(p)
		case jsStr:
			end, esc := scanJSONString(p, i, w.esc)
			if end < 0 {
				w.esc = esc
				if len(w.buf)+len(p)-i > w.limit {
					w.put(w.buf)
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
				w.put(w.buf)
				if isDivKey(w.buf) {
					w.st = jsDivKey
				}
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
			// mark == i here: nothing after the token was written.
			k := i
			for k < len(p) && isJSONSpace(p[k]) {
				k++
			}
			switch {
			case len(w.heldWS)+k-i > w.limit:
				w.release(w.heldOrig) // pathological: leave it alone
			case k == len(p):
				w.heldWS = append(w.heldWS, p[i:]...)
			case p[k] == ':':
				w.release(w.heldOrig)
			default:
				w.release(w.heldRepl)
			}
			if w.st == jsHeld {
				i, mark = len(p), len(p)
			} else {
				i = k // p[mark:k], the white space, passes through
			}
		case jsDivKey, jsDivColon:
			// White space passes; then ':' (after the key) and '"'
			// (after the ':'); anything else is read again in jsOut.
			k := i
			for k < len(p) && isJSONSpace(p[k]) {
				k++
			}
			switch {
			case k == len(p):
			case w.st == jsDivKey && p[k] == ':':
				w.st = jsDivColon
				k++
			case w.st == jsDivColon && p[k] == '"':
				k++
				if end, ok := w.plainNarrative(p, k); ok {
					w.st, k = jsOut, end // nothing in it can map
					break
				}
				w.enterDiv()
			default:
				w.st = jsOut // not a key, or a value that is no string
			}
			i = k
		case jsDiv:
			mark, i = w.div(p, mark, i)
		}
	}
	return mark
}

// nextAnchor returns the first "//" after the one at c that may follow a
// string's opening quote and the scheme. That quote comes after c+1 (a
// quote before would put c's "//" or ':' into the scheme), so the rest
// of a URL that does not map, with the slashes of its path, is skipped
// to the next quote.
func (w *JSONWriter) nextAnchor(p []byte, c int) int {
	q := indexByteFrom(p, c+2, '"')
	return indexSlashes(p, min(q+len(w.m.scheme)+2, len(p)))
}

// open handles a string that starts at p[start] and goes on in the next
// Write (esc: p ends in an unpaired backslash): a string longer than the
// limit passes through, a shorter one is kept in w.buf. It returns the
// new mark.
func (w *JSONWriter) open(p []byte, mark, start int, esc bool) int {
	w.esc = esc
	if len(p)-start > w.limit {
		w.st = jsLong // passed through with the rest of p
		return mark
	}
	w.put(p[mark:start])
	w.buf = append(w.buf[:0], p[start:]...)
	w.st = jsStr
	return len(p)
}

// token looks at the complete string token p[start:end] (plain: without
// a backslash) and, if it is a value that maps, writes p[mark:start] and
// the replacement (or holds the replacement when p ends before the byte
// that tells a key from a value). It returns the new mark.
func (w *JSONWriter) token(p []byte, mark, start, end int, plain bool) int {
	if end-start-2 < w.m.minLen || end-start > w.limit {
		return mark
	}
	if !mayStartWithH(p[start+1 : end-1]) {
		return mark
	}
	var rest []byte
	var repl []byte
	if plain {
		var ok bool
		if rest, ok = cutFast(w.m, p[start+1:end-1]); !ok {
			return mark
		}
	} else {
		var ok bool
		if repl, ok = w.rewrite(p[start:end]); !ok {
			return mark
		}
	}
	// A key is followed by ':'; look ahead if p has it.
	k := end
	for k < len(p) && isJSONSpace(p[k]) {
		k++
	}
	if k-end > w.limit {
		return mark // pathological white space: leave it alone
	}
	if k < len(p) && p[k] == ':' {
		return mark
	}
	w.put(p[mark:start])
	if k == len(p) {
		if plain {
			repl = w.plainRepl(rest)
		}
		w.hold(p[start:end], repl)
		return end
	}
	if plain {
		// rest came from a JSON string without escapes: it needs none.
		w.out = append(w.out, '"')
		w.out = append(w.out, w.m.publicJSON...)
		w.out = append(w.out, rest...)
		w.out = append(w.out, '"')
	} else {
		w.put(repl)
	}
	return end
}

// plainRepl builds in w.repl the replacement of a string without escapes
// whose content after the partner base is rest.
func (w *JSONWriter) plainRepl(rest []byte) []byte {
	w.repl = append(w.repl[:0], '"')
	w.repl = append(w.repl, w.m.publicJSON...)
	w.repl = append(w.repl, rest...)
	w.repl = append(w.repl, '"')
	return w.repl
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
	w.put(tok)
	w.put(w.heldWS)
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
		w.put(w.buf)
		w.buf = w.buf[:0]
	case jsDiv:
		w.endDiv(-1) // an unterminated narrative: as it came
	}
	w.st = jsOut
	w.finish(nil)
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
	if !mayStartWithH(content) {
		return nil, false // cannot start with the scheme: no decoding
	}
	if bytes.IndexByte(content, '\\') < 0 {
		rest, ok := cutFast(w.m, content)
		if !ok {
			return nil, false
		}
		return w.plainRepl(rest), true
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

// mayStartWithH reports whether the JSON string content (raw, escapes
// undone only here) can start with "h" or "H", as every http(s) URL does:
// its first byte, or the code point of a leading \uXXXX escape. A long
// text that starts with an escape (FHIR narrative: "\u003cdiv ...") is
// then never decoded whole.
func mayStartWithH(content []byte) bool {
	switch c := content[0]; c {
	case 'h', 'H':
		return true
	case '\\':
		if len(content) < 6 || content[1] != 'u' {
			return false // \" \\ \/ \b \f \n \r \t: none is an h
		}
		var r rune
		for _, c := range content[2:6] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return false
			}
		}
		return r == 'h' || r == 'H'
	}
	return false
}

// appendJSONContent appends s escaped as the content of a JSON string:
// '"', '\\', control characters, U+2028 and U+2029 escaped as
// encoding/json escapes them; invalid UTF-8 becomes U+FFFD.
func appendJSONContent[S ~string | ~[]byte](dst []byte, s S) []byte {
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
		r, size := decodeRune(s[i:])
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

// decodeRune is utf8.DecodeRune for a string or a byte slice.
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	var b [utf8.UTFMax]byte
	return utf8.DecodeRune(b[:copy(b[:], s)])
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
	schemeSep = []byte("//")
	quote     = []byte{'"'}
)

// indexSlashes returns the index of the first "//" in p at or after
// from, or len(p). It looks for '/' and checks the byte after: cheaper
// than bytes.Index while '/' is rare, as in JSON; after a few lone '/' it
// leaves the rest to bytes.Index, which copes with many.
func indexSlashes(p []byte, from int) int {
	for range 4 {
		j := bytes.IndexByte(p[from:], '/')
		if j < 0 {
			return len(p)
		}
		j += from
		if j+1 >= len(p) {
			return len(p)
		}
		if p[j+1] == '/' {
			return j
		}
		from = j + 2 // no "//" starts at j+1
	}
	if k := bytes.Index(p[from:], schemeSep); k >= 0 {
		return from + k
	}
	return len(p)
}

// indexByteFrom returns the index of the first c in p at or after from,
// or len(p).
func indexByteFrom(p []byte, from int, c byte) int {
	if k := bytes.IndexByte(p[from:], c); k >= 0 {
		return from + k
	}
	return len(p)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
