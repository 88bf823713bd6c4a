package fhirurl

import (
	"bytes"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A FHIR narrative (Narrative.div, the only XHTML-typed element) is
// inline markup in XML, where XMLWriter maps its attribute values
// (<a href="…">) like any other. In JSON it is one string, the value of a
// "div" key, whose links a whole-string URL check never sees. JSONWriter
// follows such a string as XHTML: it undoes the JSON escapes one byte at
// a time, feeds the bytes to xhtmlLex (XMLWriter's lexer, byte by byte),
// and maps each attribute value as XMLWriter would, so that the JSON and
// XML forms of one resource come back alike. The rule is the key: a
// string that is the value of a "div" key (however its name is escaped)
// is XHTML, any other string is not, whatever it contains.

// xhtmlLex is XMLWriter's lexer one byte at a time: the same states,
// taken on the same bytes, so that a JSON narrative's markup is read as
// XMLWriter reads the XML one. Only the attribute name's first bytes are
// kept: enough to tell a namespace declaration.
type xhtmlLex struct {
	st    uint8
	quote byte // xAttr: the quote that closes the value
	space bool // xTag: white space since the last name byte
	ns    bool // xAttr: the value is a namespace declaration's
	nameN int  // xTag: the name's length, counted up to len(name)+1
	name  [len("xmlns:")]byte
	bangN int // xBang: bytes after "<!"
	bang  [len(cdataOpen)]byte
	run   int     // xComment: '-' run; xCDATA: ']' run; xPI: 1 after '?'
	decl  declLex // xDecl: where in the declaration
}

// What a byte did to xhtmlLex.
const (
	lexNone       = iota
	lexAttrOpened // it opened an attribute value
	lexAttrClosed // it closed one
)

// step reads the (decoded) byte c, as XMLWriter.Write reads it.
func (l *xhtmlLex) step(c byte) int {
	switch l.st {
	case xText:
		if c == '<' {
			l.st = xLT
		}
	case xLT:
		switch c {
		case '!':
			l.st, l.bangN = xBang, 0
		case '?':
			l.st, l.run = xPI, 0
		case '/':
			l.st = xEndTag
		default:
			l.st, l.nameN, l.space = xTag, 0, false
			l.addName(c)
			if c == '>' {
				l.st = xText
			}
		}
	case xBang:
		l.bang[l.bangN] = c
		l.bangN++
		switch b := string(l.bang[:l.bangN]); {
		case b == "--":
			l.st, l.run = xComment, 0
		case b == cdataOpen:
			l.st, l.run = xCDATA, 0
		case b == "-" || cdataOpen[:len(b)] == b:
		default:
			// The first byte of a declaration is taken as it is.
			l.st, l.decl = xDecl, declLex{}
		}
	case xComment:
		switch {
		case c == '-':
			l.run++
		case c == '>' && l.run >= 2:
			l.st = xText
		default:
			l.run = 0
		}
	case xCDATA:
		switch {
		case c == ']':
			l.run++
		case c == '>':
			if l.run >= 2 {
				l.st = xText
			}
			l.run = 0
		default:
			l.run = 0
		}
	case xPI:
		switch {
		case c == '>' && l.run == 1:
			l.st = xText
		case c == '?':
			l.run = 1
		default:
			l.run = 0
		}
	case xDecl:
		if l.decl.step(c) {
			l.st = xText
		}
	case xEndTag:
		if c == '>' {
			l.st = xText
		}
	case xTag:
		switch c {
		case '>':
			l.st = xText
		case '"', '\'':
			l.st, l.quote = xAttr, c
			l.ns = isXMLNS(l.name[:min(l.nameN, len(l.name))], l.nameN)
			return lexAttrOpened
		case ' ', '\t', '\n', '\r':
			l.space = true
		case '=':
		default:
			if l.space {
				l.nameN, l.space = 0, false
			}
			l.addName(c)
		}
	case xAttr:
		if c == l.quote {
			l.st, l.nameN = xTag, 0
			return lexAttrClosed
		}
	}
	return lexNone
}

// addName adds c to the attribute (or element) name being read.
func (l *xhtmlLex) addName(c byte) {
	if l.nameN < len(l.name) {
		l.name[l.nameN] = c
	}
	if l.nameN <= len(l.name) {
		l.nameN++
	}
}

// notASCII is what xhtmlLex is given for a character outside ASCII
// written as a \u escape: every such byte is alike to the lexer.
const notASCII = 0x80

// enterDiv starts the narrative string whose opening quote was just read.
func (w *JSONWriter) enterDiv() {
	w.st = jsDiv
	w.xl = xhtmlLex{}
	w.jesc, w.vpass = 0, false
}

// div follows the narrative string from p[i] (jsDiv) to its end or the
// end of p, mapping the XHTML's attribute values. It returns the new mark
// and i. An attribute value wholly in p is looked at where it is; one
// that goes on in the next Write is held in w.buf (up to the limit), as
// XMLWriter holds one.
func (w *JSONWriter) div(p []byte, mark, i int) (int, int) {
	vs := -1 // the start in p of an attribute value opened in this Write
	lt, bs, qt := -1, -1, -1
	for i < len(p) {
		if w.jesc == 0 && w.xl.st == xText {
			// Text, most of a narrative: on to the next '<', escape
			// (\u003c is a '<' too) or the string's end.
			if lt < i {
				lt = indexByteFrom(p, i, '<')
			}
			if bs < i {
				bs = indexByteFrom(p, i, '\\')
			}
			if qt < i {
				qt = indexByteFrom(p, i, '"')
			}
			if i = min(lt, bs, qt); i == len(p) {
				break
			}
		}
		c := p[i]
		i++
		d, n := c, 1 // the decoded byte and its length in p
		switch w.jesc {
		case 0:
			switch c {
			case '"':
				w.endDiv(vs)
				return mark, i
			case '\\':
				w.jesc = 1
				continue
			}
		case 1:
			w.jesc, n = 0, 2
			switch c {
			case 'u':
				w.jesc, w.ju = 2, 0
				continue
			case 'b':
				d = '\b'
			case 'f':
				d = '\f'
			case 'n':
				d = '\n'
			case 'r':
				d = '\r'
			case 't':
				d = '\t'
			} // \" \\ \/ are their byte; so is an invalid escape
		default: // after "\u" and w.jesc-2 hex digits
			h, ok := unhex(c)
			if !ok {
				// Not JSON: the escape ends, and c is read again.
				w.jesc, d = 0, notASCII
				i--
				break
			}
			if w.ju = w.ju<<4 | uint16(h); w.jesc < 5 {
				w.jesc++
				continue
			}
			w.jesc, n, d = 0, 6, notASCII
			if w.ju < utf8.RuneSelf {
				d = byte(w.ju)
			}
		}
		switch w.xl.step(d) {
		case lexAttrOpened:
			vs, w.vpass = i, w.xl.ns
		case lexAttrClosed:
			mark = w.closeAttr(p, mark, vs, i, n)
			vs = -1
		}
	}
	if w.xl.st == xAttr {
		mark = w.holdAttr(p, mark, vs)
	}
	return mark, i
}

// endDiv ends the narrative at its closing quote: a value still open
// (the XHTML is cut short) is written as it came.
func (w *JSONWriter) endDiv(vs int) {
	if w.xl.st == xAttr && vs < 0 && !w.vpass {
		w.put(w.buf)
	}
	w.buf = w.buf[:0]
	w.st, w.vpass = jsOut, false
}

// closeAttr handles an attribute value whose closing quote, n bytes raw
// or escaped, ends at p[i]; vs is the value's start in p, or -1 if it
// started in an earlier Write (then held in w.buf, or passing). It
// returns the new mark.
func (w *JSONWriter) closeAttr(p []byte, mark, vs, i, n int) int {
	if w.vpass {
		w.vpass = false
		return mark
	}
	if vs >= 0 {
		end := i - n
		if end-vs <= w.limit {
			if repl, ok := w.divAttr(p[vs:end]); ok {
				w.put(p[mark:vs])
				w.put(repl)
				return end
			}
		}
		return mark
	}
	// Held: the value and its closing quote (which may have begun in
	// the earlier Write) are w.buf and p[:i]; nothing of p is written
	// yet (mark is 0).
	w.buf = append(w.buf, p[:i]...)
	v := w.buf[:len(w.buf)-n]
	if repl, ok := w.divAttr(v); ok && len(v) <= w.limit {
		w.put(repl)
		w.put(w.buf[len(v):])
	} else {
		w.put(w.buf)
	}
	w.buf = w.buf[:0]
	return i
}

// holdAttr handles an attribute value still open at the end of p: it is
// held in w.buf, unless it cannot map (a namespace declaration, a first
// byte no URL starts with) or is longer than the limit, and passes
// through. It returns the new mark.
func (w *JSONWriter) holdAttr(p []byte, mark, vs int) int {
	switch {
	case w.vpass:
		return mark
	case vs >= 0:
		if len(p)-vs > w.limit || (vs < len(p) && !mayStartAttrURL(p[vs])) {
			w.vpass = true
			return mark
		}
		w.put(p[mark:vs])
		w.buf = append(w.buf[:0], p[vs:]...)
	case len(w.buf)+len(p) > w.limit:
		w.put(w.buf) // mark is 0: p passes after it
		w.buf = w.buf[:0]
		w.vpass = true
		return mark
	default:
		w.buf = append(w.buf, p...)
	}
	return len(p)
}

// mayStartAttrURL reports whether a narrative attribute value whose raw
// JSON starts with c may decode to a URL: 'h', 'H', a character reference
// ('&') or a JSON escape of one of them.
func mayStartAttrURL(c byte) bool {
	return c == 'h' || c == 'H' || c == '&' || c == '\\'
}

// divAttr returns the replacement for the raw (JSON-escaped) content of a
// narrative attribute value if, JSON escapes undone, it is an attribute
// value XMLWriter would map: the XML replacement, escaped for JSON. The
// replacement is built in w.repl. A value without JSON escapes is not
// copied.
func (w *JSONWriter) divAttr(raw []byte) ([]byte, bool) {
	if w.xl.ns || len(raw) < w.m.minLen || !mayStartAttrURL(raw[0]) {
		return nil, false
	}
	v := raw
	if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		var ok bool
		if w.dec, ok = appendJSONUnescape(w.dec[:0], raw); !ok {
			return nil, false
		}
		v = w.dec
	}
	rest, decoded, plain, ok := cutAttr(w.m, v)
	if !ok {
		return nil, false
	}
	w.repl = appendJSONContent(w.repl[:0], w.m.publicXML)
	if plain {
		w.repl = appendJSONContent(w.repl, rest)
	} else {
		w.repl = appendAttrJSON(w.repl, decoded)
	}
	return w.repl, true
}

// appendAttrJSON appends s escaped for an XML attribute value (appendAttr)
// and that escaped for a JSON string (appendJSONContent), in one pass.
func appendAttrJSON(dst []byte, s string) []byte {
	from := 0
	for i := 0; i < len(s); i++ {
		if attrEscape[s[i]] {
			dst = appendJSONContent(dst, s[from:i])
			dst = appendAttr(dst, s[i:i+1]) // an entity: ASCII, nothing JSON escapes
			from = i + 1
		}
	}
	return appendJSONContent(dst, s[from:])
}

// attrEscape marks the bytes appendAttr writes as references.
var attrEscape = [256]bool{'&': true, '<': true, '>': true, '"': true, '\'': true, '\t': true, '\n': true, '\r': true}

// isDivKey reports whether the raw string token tok (quotes included)
// decodes to "div": the key of Narrative.div, written plainly or with
// \u escapes.
func isDivKey(tok []byte) bool {
	if string(tok) == `"div"` {
		return true
	}
	if len(tok) < len(`"div"`) || len(tok) > 2+3*len(`\u0000`) || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return false
	}
	c := tok[1 : len(tok)-1]
	for _, want := range []byte("div") {
		switch {
		case len(c) > 0 && c[0] == want:
			c = c[1:]
		case len(c) >= 6 && c[0] == '\\' && c[1] == 'u':
			if r, ok := hex4(c[2:6]); !ok || r != rune(want) {
				return false
			}
			c = c[6:]
		default:
			return false
		}
	}
	return len(c) == 0
}

var divKey = []byte(`"div"`)

// indexDivKey returns the index of the first `"div"` in p at or after
// from, or len(p).
func indexDivKey(p []byte, from int) int {
	// By its 'v', far rarer in JSON than the quote bytes.Index would
	// look for first.
	for i := from + len(`"di`); i+1 < len(p); i++ {
		k := bytes.IndexByte(p[i:len(p)-1], 'v')
		if k < 0 {
			break
		}
		if i += k; p[i+1] == '"' && p[i-1] == 'i' && p[i-2] == 'd' && p[i-3] == '"' {
			return i - 3
		}
	}
	return len(p)
}

// plainNarrative looks at a narrative string whose content starts at
// p[from] and, when the whole string is in p and none of its attribute
// values can map, returns the index just past its closing quote: the
// string then passes as it is, without being read as XHTML. That is so
// when its only escapes are JSON's short ones and \u escapes of '<',
// '>', '&', '\” and '"' and of non-ASCII characters (what encoders
// write), it has no character reference ("&#"), and no "//" in it (a
// slash being '/' or "\/" then) is followed by the partner's host name:
// every URL the Mapper maps has its authority there. Anything else is
// read as XHTML (div), which decides exactly.
func (w *JSONWriter) plainNarrative(p []byte, from int) (int, bool) {
	end, _ := scanJSONString(p, from, false)
	if end < 0 {
		return 0, false
	}
	s := p[from : end-1]
	for i := 0; ; {
		k := bytes.IndexByte(s[i:], '\\')
		if k < 0 {
			break
		}
		i += k + 1
		if i >= len(s) || s[i] != 'u' {
			i++ // a short escape: \" \\ \/ \b \f \n \r \t
			continue
		}
		r, ok := hex4(s[i+1 : min(i+5, len(s))])
		if !ok || r < utf8.RuneSelf && r != '<' && r != '>' && r != '&' && r != '\'' && r != '"' ||
			r == '&' && i+5 < len(s) && s[i+5] == '#' || r >= utf8.RuneSelf && !isASCII(w.m.hostname) {
			// (A host that is not ASCII may be spelled with such escapes.)
			return 0, false
		}
		i += 5
	}
	if bytes.Contains(s, charRefStart) {
		return 0, false
	}
	host := w.m.hostname
	for i := 0; ; {
		k := bytes.IndexByte(s[i:], '/')
		if k < 0 {
			return end, true
		}
		i += k + 1
		switch {
		case i < len(s) && s[i] == '/':
			i++
		case i+1 < len(s) && s[i] == '\\' && s[i+1] == '/':
			i += 2
		default:
			continue
		}
		if hasPrefixFold(s[i:], host) {
			return 0, false
		}
	}
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// charRefStart starts an XML character reference.
var charRefStart = []byte("&#")

// unhex returns the value of the hex digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hex4 decodes the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		h, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

// appendJSONUnescape appends the raw content of a JSON string decoded as
// encoding/json decodes it: escapes undone, a \u surrogate pair joined, a
// lone surrogate and invalid UTF-8 made U+FFFD. ok is false when raw is
// not valid string content (a bad escape, a control character, a quote).
func appendJSONUnescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 >= len(raw) {
				return dst, false
			}
			e := raw[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				if i+4 > len(raw) {
					return dst, false
				}
				r, ok := hex4(raw[i : i+4])
				if !ok {
					return dst, false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2, _ = hex4(raw[i+2 : i+6])
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						r = dec
						i += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, false
			}
		case c == '"' || c < 0x20:
			return dst, false
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, unicode.ReplacementChar)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst, true
}
