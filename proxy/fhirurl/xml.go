package fhirurl

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// XML rewriter states.
const (
	xText     = iota // character data
	xLT              // just after '<'
	xBang            // after "<!", collecting to tell a comment, CDATA or declaration apart
	xComment         // inside <!-- -->
	xCDATA           // inside <![CDATA[ ]]>
	xPI              // inside <? ?>
	xDecl            // inside <!DOCTYPE ...> and kin
	xEndTag          // inside </name >
	xTag             // inside a start tag, outside attribute values
	xAttr            // inside an attribute value that started in an earlier Write; raw bytes in buf
	xAttrLong        // inside an attribute value longer than the limit, passing through
)

const cdataOpen = "[CDATA["

// XMLWriter rewrites, on its way to the underlying writer, every
// attribute value that decodes (entity and character references
// resolved, white space normalized as XML does) to an absolute URL the
// Mapper maps, and writes it back escaped for the quote it is in. FHIR
// XML carries every primitive, URLs included, in value="…" attributes.
// Namespace declarations (xmlns, xmlns:*) are never rewritten. Element
// names, text (the XHTML narrative's text included), comments, CDATA
// sections, processing instructions and declarations pass through byte
// for byte, so the output equals the input when nothing maps. Like
// JSONWriter it follows only the lexical structure and never fails on
// invalid XML; an attribute value longer than the limit passes through
// unexamined; memory is bounded by the limit. Input is taken as UTF-8,
// which FHIR requires.
//
// Give it a buffered underlying writer; call Close at the end of the
// input (it does not close the underlying writer).
type XMLWriter struct {
	sink
	m     *Mapper
	limit int

	st    int
	quote byte          // xAttr, xAttrLong: the quote that closes the value
	name  [maxName]byte // xTag: the name being read (attribute or element); capped
	nameN int           // its length
	space bool          // xTag: white space since the last name byte
	buf   []byte        // xAttr: raw value so far; xBang: bytes after "<!"
	run   int           // xComment: '-' run; xCDATA: ']' run; xPI: 1 after '?'
	decl  declLex       // xDecl: where in the declaration
	repl  []byte        // the last replacement built
}

// NewXMLWriter returns an XMLWriter writing to dst. limit is the longest
// attribute value examined; 0 means DefaultMaxToken.
func NewXMLWriter(dst io.Writer, m *Mapper, limit int) *XMLWriter {
	return &XMLWriter{sink: sink{dst: dst}, m: m, limit: tokenLimit(limit)}
}

// reset makes w a new XMLWriter to dst, keeping its buffers.
func (w *XMLWriter) reset(dst io.Writer, m *Mapper, limit int) {
	*w = XMLWriter{sink: sink{dst: dst, out: w.out[:0]}, m: m, limit: tokenLimit(limit), buf: w.buf[:0], repl: w.repl[:0]}
}

// maxName is the longest attribute name remembered; names are only
// compared with "xmlns".
const maxName = 16

// Write rewrites p. It returns len(p) unless the underlying writer failed.
func (w *XMLWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	mark := 0 // p[mark:i] is pass-through not written yet
	i := 0
	for i < len(p) {
		switch w.st {
		case xText:
			j := bytes.IndexByte(p[i:], '<')
			if j < 0 {
				i = len(p)
				break
			}
			i += j + 1
			w.st = xLT
		case xLT:
			switch c := p[i]; c {
			case '!':
				w.st = xBang
				w.buf = w.buf[:0]
			case '?':
				w.st, w.run = xPI, 0
			case '/':
				w.st = xEndTag
			default:
				w.st = xTag
				w.nameN = 0
				w.addName(p[i : i+1])
				w.space = false
				if c == '>' {
					w.st = xText
				}
			}
			i++
		case xBang:
			c := p[i]
			i++
			w.buf = append(w.buf, c)
			switch {
			case string(w.buf) == "--":
				w.st, w.run = xComment, 0
			case string(w.buf) == cdataOpen:
				w.st, w.run = xCDATA, 0
			case strings.HasPrefix(cdataOpen, string(w.buf)) || string(w.buf) == "-":
			default:
				// The first byte of a declaration is taken as it is,
				// as encoding/xml does.
				w.st, w.decl = xDecl, declLex{}
			}
		case xComment:
			c := p[i]
			i++
			switch {
			case c == '-':
				w.run++
			case c == '>' && w.run >= 2:
				w.st = xText
			default:
				w.run = 0
			}
		case xCDATA:
			j := bytes.IndexByte(p[i:], '>')
			if j < 0 {
				w.run = trailing(p[i:], ']', w.run)
				i = len(p)
				break
			}
			if trailing(p[i:i+j], ']', w.run) >= 2 {
				w.st = xText
			}
			w.run = 0
			i += j + 1
		case xPI:
			c := p[i]
			i++
			switch {
			case c == '>' && w.run == 1:
				w.st = xText
			case c == '?':
				w.run = 1
			default:
				w.run = 0
			}
		case xDecl:
			c := p[i]
			i++
			if w.decl.step(c) {
				w.st = xText
			}
		case xEndTag:
			j := bytes.IndexByte(p[i:], '>')
			if j < 0 {
				i = len(p)
				break
			}
			i += j + 1
			w.st = xText
		case xTag:
			// The bytes of a tag, up to a quote or its end, in one loop.
			for i < len(p) && w.st == xTag {
				c := p[i]
				i++
				switch c {
				case '>':
					w.st = xText
				case '"', '\'':
					w.quote = c
					start := i
					end := bytes.IndexByte(p[i:], c)
					if end >= 0 {
						end += i
						i = end + 1
						if repl, ok := w.rewrite(p[start:end]); ok && end-start <= w.limit {
							w.put(p[mark:start])
							w.put(repl)
							mark = end
						}
						w.nameN = 0
						break
					}
					i = len(p)
					if len(p)-start > w.limit {
						w.st = xAttrLong
						break
					}
					w.put(p[mark:start])
					mark = len(p)
					w.buf = append(w.buf[:0], p[start:]...)
					w.st = xAttr
				case ' ', '\t', '\n', '\r':
					w.space = true
				case '=':
				default:
					if w.space {
						w.nameN = 0
						w.space = false
					}
					// The rest of the name at once.
					j := i
					for j < len(p) && !tagDelim[p[j]] {
						j++
					}
					w.addName(p[i-1 : j])
					i = j
				}
			}
		case xAttr:
			end := bytes.IndexByte(p[i:], w.quote)
			if end < 0 {
				if len(w.buf)+len(p)-i > w.limit {
					w.put(w.buf)
					w.buf = w.buf[:0]
					w.st = xAttrLong
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
				w.put(repl)
			} else {
				w.put(w.buf)
			}
			w.buf = w.buf[:0]
			w.nameN = 0
			mark = end
			i = end + 1
			w.st = xTag
		case xAttrLong:
			end := bytes.IndexByte(p[i:], w.quote)
			if end < 0 {
				i = len(p)
				break
			}
			i += end + 1
			w.nameN = 0
			w.st = xTag
		}
	}
	w.finish(p[mark:])
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// tagDelim marks the bytes that end a run of name bytes in a tag.
var tagDelim = [256]bool{'>': true, '"': true, '\'': true, ' ': true, '\t': true, '\n': true, '\r': true, '=': true}

// addName appends b to the name being read, up to maxName bytes.
func (w *XMLWriter) addName(b []byte) {
	w.nameN += copy(w.name[w.nameN:], b)
}

// declLex follows a declaration (<!DOCTYPE …>, <!ENTITY …>) one byte at
// a time the way encoding/xml reads one: quoted text hides markup, '<'
// and '>' nest, and "<!--" starts a comment that ends at "-->". The zero
// value is just after the declaration's first byte.
type declLex struct {
	depth int  // '<' nesting
	run   int  // inside a comment: the '-' run
	lt    int  // 1 after '<', +1 for each byte of "!--" that followed
	dq    byte // the quote open, 0 if none
	inCmt bool // inside a comment
}

// step reads c and reports whether it ended the declaration.
func (d *declLex) step(c byte) bool {
	const cmt = "!--"
	switch {
	case d.inCmt:
		switch {
		case c == '>' && d.run >= 2:
			d.inCmt, d.run = false, 0
		case c == '-':
			d.run++
		default:
			d.run = 0
		}
		return false
	case d.lt > 0:
		if c == cmt[d.lt-1] {
			if d.lt++; d.lt > len(cmt) {
				d.lt, d.inCmt, d.run = 0, true, 0
			}
			return false
		}
		d.lt = 0
		d.depth++
	case d.dq == 0 && c == '>' && d.depth == 0:
		return true
	}
	switch {
	case c == d.dq:
		d.dq = 0
	case d.dq != 0:
	case c == '\'' || c == '"':
		d.dq = c
	case c == '>':
		d.depth--
	case c == '<':
		d.lt = 1
	}
	return false
}

// trailing returns the length of the run of c at the end of b, continuing
// a run of prev if b is all c.
func trailing(b []byte, c byte, prev int) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == c {
		n++
	}
	if n == len(b) {
		return prev + n
	}
	return n
}

// Close writes what is held back (an unterminated attribute value, as it
// came). It does not close the underlying writer.
func (w *XMLWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.st == xAttr {
		w.put(w.buf)
		w.buf = w.buf[:0]
		w.st = xAttrLong
	}
	w.finish(nil)
	return w.err
}

// rewrite returns the escaped replacement for the raw attribute value v
// if it decodes to a URL the Mapper maps and the attribute is not a
// namespace declaration.
func (w *XMLWriter) rewrite(v []byte) ([]byte, bool) {
	if isXMLNS(w.name[:w.nameN], w.nameN) {
		return nil, false
	}
	rest, decoded, plain, ok := cutAttr(w.m, v)
	if !ok {
		return nil, false
	}
	w.repl = append(w.repl[:0], w.m.publicXML...)
	if plain {
		w.repl = append(w.repl, rest...) // valid in an attribute as it was
	} else {
		w.repl = appendAttr(w.repl, decoded)
	}
	return w.repl, true
}

// isXMLNS reports whether an attribute whose name starts with name and is
// n bytes long is a namespace declaration (xmlns, xmlns:*), whose value is
// never rewritten.
func isXMLNS(name []byte, n int) bool {
	return (n == len("xmlns") && string(name) == "xmlns") ||
		(n >= len("xmlns:") && len(name) >= len("xmlns:") && string(name[:len("xmlns:")]) == "xmlns:")
}

// cutAttr reports whether the raw attribute value v (as it stands between
// its quotes) decodes to a URL the Mapper maps, and returns what follows
// the partner base: rest, a part of v valid in an attribute value as it
// is (plain), or decoded, to be escaped again. XMLWriter and the JSON
// narrative (JSONWriter) both map attribute values with it, so that the
// XML and JSON forms of a resource come back alike.
func cutAttr(m *Mapper, v []byte) (rest []byte, decoded string, plain, ok bool) {
	if len(v) < m.minLen {
		return nil, "", false, false
	}
	if c := v[0]; c != 'h' && c != 'H' && c != '&' {
		return nil, "", false, false
	}
	if plainAttr(v) {
		// Decoded, v is itself: whether it maps is known before the
		// (longer) check that it is UTF-8.
		rest, ok := cutFast(m, v)
		if !ok || !utf8.Valid(v) {
			return nil, "", false, false
		}
		return rest, "", true, true
	}
	if missBeforeRef(m, v) {
		return nil, "", false, false
	}
	s, ok := decodeAttr(v)
	if !ok {
		return nil, "", false, false
	}
	decoded, ok = cut(m, s)
	return nil, decoded, false, ok
}

// missBeforeRef reports whether the part of v before its first reference,
// white space or '<' (which decoding leaves as it is) already holds the
// scheme and authority of a URL that is not under the partner base: then
// v does not map, and is not decoded (which would allocate), as a
// narrative's link elsewhere with "&amp;" in its query would be.
func missBeforeRef(m *Mapper, v []byte) bool {
	k := 0
	for k < len(v) && !attrSpecial[v[k]] {
		k++
	}
	pre := v[:k]
	if len(pre) < m.prefixLen {
		return false
	}
	if !hasPrefixFold(pre, m.scheme) || string(pre[len(m.scheme):m.prefixLen]) != "://" {
		return true
	}
	auth := pre[m.prefixLen:]
	for i, c := range auth {
		if c == '/' || c == '?' || c == '#' {
			return !hostMatches(m, auth[:i])
		}
	}
	return false
}

// plainAttr reports whether the raw attribute value v has no reference,
// no white space that normalization changes and no '<'.
func plainAttr(v []byte) bool {
	for _, c := range v {
		if attrSpecial[c] {
			return false
		}
	}
	return true
}

var attrSpecial = [256]bool{'&': true, '\t': true, '\n': true, '\r': true, '<': true}

// decodeAttr resolves the predefined entities and character references
// of a raw attribute value and normalizes white space characters to
// spaces as an XML parser does. ok is false for anything else (another
// entity, a malformed reference, '<', invalid UTF-8): such a value is
// left alone.
func decodeAttr(v []byte) (string, bool) {
	if !utf8.Valid(v) || bytes.IndexByte(v, '<') >= 0 {
		return "", false
	}
	if bytes.IndexByte(v, '&') < 0 && bytes.IndexAny(v, "\t\n\r") < 0 {
		return string(v), true
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '\t', '\n', '\r':
			sb.WriteByte(' ')
			continue
		case '&':
		default:
			sb.WriteByte(c)
			continue
		}
		semi := bytes.IndexByte(v[i:], ';')
		if semi < 0 {
			return "", false
		}
		ref := string(v[i+1 : i+semi])
		i += semi
		switch ref {
		case "amp":
			sb.WriteByte('&')
		case "lt":
			sb.WriteByte('<')
		case "gt":
			sb.WriteByte('>')
		case "quot":
			sb.WriteByte('"')
		case "apos":
			sb.WriteByte('\'')
		default:
			r, ok := charRef(ref)
			if !ok {
				return "", false
			}
			sb.WriteRune(r)
		}
	}
	return sb.String(), true
}

// charRef decodes "#NN" or "#xHH" to a character XML allows.
func charRef(ref string) (rune, bool) {
	num, ok := strings.CutPrefix(ref, "#")
	if !ok || num == "" {
		return 0, false
	}
	base := 10
	if h, ok := strings.CutPrefix(num, "x"); ok {
		num, base = h, 16
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(num, base, 32)
	if err != nil {
		return 0, false
	}
	r := rune(n)
	isXMLChar := r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	return r, isXMLChar
}

// appendAttr appends s escaped for an attribute value in either quote: markup
// characters and both quotes as entities, tab, newline and carriage
// return as character references (so that they survive normalization).
func appendAttr(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '\t':
			dst = append(dst, "&#9;"...)
		case '\n':
			dst = append(dst, "&#10;"...)
		case '\r':
			dst = append(dst, "&#13;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
