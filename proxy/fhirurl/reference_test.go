package fhirurl

// The JSON and XML writers as they were before the scan was rewritten
// (issue 18), kept as the reference the differential tests compare the
// writers with. Nothing here is used outside tests.

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"
)

// refSink is the sink the reference writers had: every piece written
// straight to dst.
type refSink struct {
	dst io.Writer
	err error
}

func (s *refSink) write(b []byte) {
	if s.err == nil && len(b) > 0 {
		_, s.err = s.dst.Write(b)
	}
}

// JSON rewriter states.
const (
	refJsOut  = iota // between tokens
	refJsStr         // inside a string that started in an earlier Write; raw bytes in buf
	refJsLong        // inside a string longer than the limit, passing through
	refJsHeld        // a string that maps was read; waiting for the next
	// significant byte to tell a key (followed by ':') from a value
)

// refJSONWriter is JSONWriter before issue 18.
type refJSONWriter struct {
	refSink
	m     *Mapper
	limit int

	st       int
	esc      bool   // the previous byte in a string was an unpaired backslash
	buf      []byte // refJsStr: the raw string so far
	heldOrig []byte // refJsHeld: the original token
	heldRepl []byte // refJsHeld: its replacement
	heldWS   []byte // refJsHeld: white space after it, from earlier Writes
	repl     []byte // the last replacement built
}

// newRefJSONWriter returns the reference JSON writer to dst.
func newRefJSONWriter(dst io.Writer, m *Mapper, limit int) *refJSONWriter {
	return &refJSONWriter{refSink: refSink{dst: dst}, m: m, limit: tokenLimit(limit)}
}

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *refJSONWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	mark := 0 // p[mark:i] is pass-through not written yet
	i := 0
	bs := -1 // index of the next backslash at or after it, len(p) if none
	for i < len(p) && w.err == nil {
		switch w.st {
		case refJsOut:
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
			c := bytes.Index(p[i:], refSchemeSep)
			if c < 0 {
				c = len(p)
			} else {
				c += i
			}
			var start int
			if bs >= c {
				if bytes.Count(p[i:c], refQuote)%2 == 0 {
					i = min(c+1, len(p)) // p[c] is '/', outside any string
					break
				}
				start = i + bytes.LastIndexByte(p[i:c], '"')
			} else if start = refIndexQuote(p, i); start < 0 {
				i = len(p)
				break
			}
			// Fast path: the next quote closes the string unless a
			// backslash comes first; backslashes are rare, so where the
			// next one is is remembered.
			end, esc := -1, false
			if q := refIndexQuote(p, start+1); q >= 0 {
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
				end, esc = refScanJSONString(p, start+1, false)
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
				for k < len(p) && refIsJSONSpace(p[k]) {
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
				w.st = refJsLong // flushed with the rest of p
				break
			}
			w.write(p[mark:start])
			mark = len(p)
			w.buf = append(w.buf[:0], p[start:]...)
			w.st = refJsStr
		case refJsStr:
			end, esc := refScanJSONString(p, i, w.esc)
			if end < 0 {
				w.esc = esc
				if len(w.buf)+len(p)-i > w.limit {
					w.write(w.buf)
					w.buf = w.buf[:0]
					w.st = refJsLong
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
			w.st = refJsOut
			if repl, ok := w.rewrite(w.buf); ok && len(w.buf) <= w.limit {
				w.hold(w.buf, repl)
			} else {
				w.write(w.buf)
			}
			w.buf = w.buf[:0]
		case refJsLong:
			end, esc := refScanJSONString(p, i, w.esc)
			if end < 0 {
				w.esc = esc
				i = len(p)
				break
			}
			i = end
			w.st = refJsOut
		case refJsHeld:
			k := i
			for k < len(p) && refIsJSONSpace(p[k]) {
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
func (w *refJSONWriter) hold(orig, repl []byte) {
	w.heldOrig = append(w.heldOrig[:0], orig...)
	w.heldRepl = repl // w.repl, not reused until released
	w.heldWS = w.heldWS[:0]
	w.st = refJsHeld
}

// release writes the held token as tok, then the white space after it.
func (w *refJSONWriter) release(tok []byte) {
	w.write(tok)
	w.write(w.heldWS)
	w.heldWS = w.heldWS[:0]
	w.heldRepl = nil
	w.st = refJsOut
}

// Close writes what is held back: a string that maps at the very end of
// the input is a value and is rewritten; an unterminated string is
// written as it came. It does not close the underlying writer.
func (w *refJSONWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	switch w.st {
	case refJsHeld:
		w.release(w.heldRepl)
	case refJsStr:
		w.write(w.buf)
		w.buf = w.buf[:0]
	}
	w.st = refJsOut
	return w.err
}

// rewrite returns the replacement for the raw string token tok (quotes
// included) if it decodes to a URL the Mapper maps. The replacement is
// built in w.repl. Without escapes in tok it allocates nothing.
func (w *refJSONWriter) rewrite(tok []byte) ([]byte, bool) {
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

// refScanJSONString looks for the end of a JSON string whose content starts
// at p[from]; esc says the byte before p[from] was an unpaired backslash.
// It returns the index just past the closing quote, or -1 and whether
// the last byte of p leaves an unpaired backslash.
func refScanJSONString(p []byte, from int, esc bool) (int, bool) {
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
	refSchemeSep = []byte("//") // "://" makes bytes.Index stop at every ':'; '/' is rarer
	refQuote     = []byte{'"'}
)

// refIndexQuote returns the index of the first '"' in p at or after from,
// or -1. JSON alternates short runs (`":"`, keys, codes) with long ones;
// a plain loop finds a near quote faster than bytes.IndexByte's setup.
func refIndexQuote(p []byte, from int) int {
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

func refIsJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// XML rewriter states.
const (
	rxText     = iota // character data
	rxLT              // just after '<'
	rxBang            // after "<!", collecting to tell a comment, CDATA or declaration apart
	rxComment         // inside <!-- -->
	rxCDATA           // inside <![CDATA[ ]]>
	rxPI              // inside <? ?>
	rxDecl            // inside <!DOCTYPE ...> and kin
	rxEndTag          // inside </name >
	rxTag             // inside a start tag, outside attribute values
	rxAttr            // inside an attribute value that started in an earlier Write; raw bytes in buf
	rxAttrLong        // inside an attribute value longer than the limit, passing through
)

const refCdataOpen = "[CDATA["

// refXMLWriter is XMLWriter before issue 18.
type refXMLWriter struct {
	refSink
	m     *Mapper
	limit int

	st    int
	quote byte   // rxAttr, rxAttrLong: the quote that closes the value
	name  []byte // rxTag: the name being read (attribute or element); capped
	space bool   // rxTag: white space since the last name byte
	buf   []byte // rxAttr: raw value so far; rxBang: bytes after "<!"
	run   int    // rxComment, rxDecl comment: '-' run; rxCDATA: ']' run; rxPI: 1 after '?'
	depth int    // rxDecl: '<' nesting
	dq    byte   // rxDecl: the quote open, 0 if none
	lt    int    // rxDecl: 1 after '<', +1 for each byte of "!--" that followed
	inCmt bool   // rxDecl: inside a comment
	repl  []byte // the last replacement built
}

// newRefXMLWriter returns the reference XML writer to dst.
func newRefXMLWriter(dst io.Writer, m *Mapper, limit int) *refXMLWriter {
	return &refXMLWriter{refSink: refSink{dst: dst}, m: m, limit: tokenLimit(limit)}
}

// refMaxName is the longest attribute name remembered; names are only
// compared with "xmlns".
const refMaxName = 16

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *refXMLWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	mark := 0 // p[mark:i] is pass-through not written yet
	i := 0
	for i < len(p) && w.err == nil {
		switch w.st {
		case rxText:
			j := bytes.IndexByte(p[i:], '<')
			if j < 0 {
				i = len(p)
				break
			}
			i += j + 1
			w.st = rxLT
		case rxLT:
			switch c := p[i]; c {
			case '!':
				w.st = rxBang
				w.buf = w.buf[:0]
			case '?':
				w.st, w.run = rxPI, 0
			case '/':
				w.st = rxEndTag
			default:
				w.st = rxTag
				w.name = append(w.name[:0], c)
				w.space = false
				if c == '>' {
					w.st = rxText
				}
			}
			i++
		case rxBang:
			c := p[i]
			i++
			w.buf = append(w.buf, c)
			switch {
			case string(w.buf) == "--":
				w.st, w.run = rxComment, 0
			case string(w.buf) == refCdataOpen:
				w.st, w.run = rxCDATA, 0
			case strings.HasPrefix(refCdataOpen, string(w.buf)) || string(w.buf) == "-":
			default:
				// The first byte of a declaration is taken as it is,
				// as encoding/xml does.
				w.st, w.run, w.depth, w.dq, w.lt, w.inCmt = rxDecl, 0, 0, 0, 0, false
			}
		case rxComment:
			c := p[i]
			i++
			switch {
			case c == '-':
				w.run++
			case c == '>' && w.run >= 2:
				w.st = rxText
			default:
				w.run = 0
			}
		case rxCDATA:
			j := bytes.IndexByte(p[i:], '>')
			if j < 0 {
				w.run = trailing(p[i:], ']', w.run)
				i = len(p)
				break
			}
			if trailing(p[i:i+j], ']', w.run) >= 2 {
				w.st = rxText
			}
			w.run = 0
			i += j + 1
		case rxPI:
			c := p[i]
			i++
			switch {
			case c == '>' && w.run == 1:
				w.st = rxText
			case c == '?':
				w.run = 1
			default:
				w.run = 0
			}
		case rxDecl:
			c := p[i]
			i++
			w.decl(c)
		case rxEndTag:
			j := bytes.IndexByte(p[i:], '>')
			if j < 0 {
				i = len(p)
				break
			}
			i += j + 1
			w.st = rxText
		case rxTag:
			c := p[i]
			i++
			switch c {
			case '>':
				w.st = rxText
			case '"', '\'':
				w.quote = c
				start := i
				end := bytes.IndexByte(p[i:], c)
				if end >= 0 {
					end += i
					i = end + 1
					if repl, ok := w.rewrite(p[start:end]); ok && end-start <= w.limit {
						w.write(p[mark:start])
						w.write(repl)
						mark = end
					}
					w.name = w.name[:0]
					break
				}
				i = len(p)
				if len(p)-start > w.limit {
					w.st = rxAttrLong
					break
				}
				w.write(p[mark:start])
				mark = len(p)
				w.buf = append(w.buf[:0], p[start:]...)
				w.st = rxAttr
			case ' ', '\t', '\n', '\r':
				w.space = true
			case '=':
			default:
				if w.space {
					w.name = w.name[:0]
					w.space = false
				}
				if len(w.name) < refMaxName {
					w.name = append(w.name, c)
				}
			}
		case rxAttr:
			end := bytes.IndexByte(p[i:], w.quote)
			if end < 0 {
				if len(w.buf)+len(p)-i > w.limit {
					w.write(w.buf)
					w.buf = w.buf[:0]
					w.st = rxAttrLong
					mark = i
				} else {
					w.buf = append(w.buf, p[i:]...)
					mark = len(p)
				}
				i = len(p)
				break
			}
			end += i
			w.buf = append(w.buf, p[i:end]...)
			if repl, ok := w.rewrite(w.buf); ok && len(w.buf) <= w.limit {
				w.write(repl)
			} else {
				w.write(w.buf)
			}
			w.buf = w.buf[:0]
			w.name = w.name[:0]
			mark = end
			i = end + 1
			w.st = rxTag
		case rxAttrLong:
			end := bytes.IndexByte(p[i:], w.quote)
			if end < 0 {
				i = len(p)
				break
			}
			i += end + 1
			w.name = w.name[:0]
			w.st = rxTag
		}
	}
	w.write(p[mark:])
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// decl follows a declaration (<!DOCTYPE …>, <!ENTITY …>) one byte at a
// time the way encoding/xml reads one: quoted text hides markup, '<' and
// '>' nest, and "<!--" starts a comment that ends at "-->".
func (w *refXMLWriter) decl(c byte) {
	const cmt = "!--"
	switch {
	case w.inCmt:
		switch {
		case c == '>' && w.run >= 2:
			w.inCmt, w.run = false, 0
		case c == '-':
			w.run++
		default:
			w.run = 0
		}
		return
	case w.lt > 0:
		if c == cmt[w.lt-1] {
			if w.lt++; w.lt > len(cmt) {
				w.lt, w.inCmt, w.run = 0, true, 0
			}
			return
		}
		w.lt = 0
		w.depth++
	case w.dq == 0 && c == '>' && w.depth == 0:
		w.st = rxText
		return
	}
	switch {
	case c == w.dq:
		w.dq = 0
	case w.dq != 0:
	case c == '\'' || c == '"':
		w.dq = c
	case c == '>':
		w.depth--
	case c == '<':
		w.lt = 1
	}
}

// Close writes what is held back (an unterminated attribute value, as it
// came). It does not close the underlying writer.
func (w *refXMLWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.st == rxAttr {
		w.write(w.buf)
		w.buf = w.buf[:0]
		w.st = rxAttrLong
	}
	return w.err
}

// rewrite returns the escaped replacement for the raw attribute value v
// if it decodes to a URL the Mapper maps and the attribute is not a
// namespace declaration.
func (w *refXMLWriter) rewrite(v []byte) ([]byte, bool) {
	if len(v) < w.m.minLen {
		return nil, false
	}
	if c := v[0]; c != 'h' && c != 'H' && c != '&' {
		return nil, false
	}
	if n := string(w.name); n == "xmlns" || strings.HasPrefix(n, "xmlns:") {
		return nil, false
	}
	if bytes.IndexByte(v, '&') < 0 && bytes.IndexAny(v, "\t\n\r<") < 0 && utf8.Valid(v) {
		rest, ok := cut(w.m, v)
		if !ok {
			return nil, false
		}
		// rest was a valid attribute value as it is.
		w.repl = append(append(w.repl[:0], w.m.publicXML...), rest...)
		return w.repl, true
	}
	s, ok := decodeAttr(v)
	if !ok {
		return nil, false
	}
	rest, ok := cut(w.m, s)
	if !ok {
		return nil, false
	}
	w.repl = appendAttr(append(w.repl[:0], w.m.publicXML...), rest)
	return w.repl, true
}
