package fhirurl

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Format is a body format the rewriters understand.
type Format int

const (
	// None: the body is not rewritten.
	None Format = iota
	// JSON: application/fhir+json, application/json (and the DSTU2
	// spelling application/json+fhir).
	JSON
	// XML: application/fhir+xml, application/xml, text/xml (and
	// application/xml+fhir).
	XML
)

func (f Format) String() string {
	switch f {
	case JSON:
		return "json"
	case XML:
		return "xml"
	}
	return "none"
}

// FormatOf returns the format of a Content-Type value. NDJSON
// (application/fhir+ndjson, application/ndjson: bulk export files) is
// None: those resources carry relative references and their bytes are
// passed through untouched, Range requests included.
func FormatOf(contentType string) Format {
	mt := MediaType(contentType)
	for _, k := range jsonTypes {
		if strings.EqualFold(mt, k) {
			return JSON
		}
	}
	for _, k := range xmlTypes {
		if strings.EqualFold(mt, k) {
			return XML
		}
	}
	return None
}

var (
	jsonTypes = []string{"application/fhir+json", "application/json", "application/json+fhir"}
	xmlTypes  = []string{"application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir"}
)

// MediaType returns the media type of a Content-Type value (before any
// parameter), without allocating; compare it without case.
func MediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// AcceptEncoding is the Accept-Encoding a proxy should send upstream when
// it rewrites responses: the only content codings Body can undo. (Go's
// http.Transport sends exactly this, and decodes the response itself,
// when the request carries no Accept-Encoding of its own.)
const AcceptEncoding = "gzip"

// Rewriter rewrites partner URLs in responses for one organization:
// headers and bodies. It is immutable and safe for concurrent use.
type Rewriter struct {
	m     Mapper // by value: a Rewriter is one object and its strings
	limit int
}

// NewRewriter returns a Rewriter from partnerBase to publicBase (see
// NewMapper).
func NewRewriter(partnerBase, publicBase string) (*Rewriter, error) {
	rw := &Rewriter{limit: DefaultMaxToken}
	if err := rw.m.init(partnerBase, publicBase); err != nil {
		return nil, err
	}
	return rw, nil
}

// Mapper returns the Rewriter's Mapper.
func (rw *Rewriter) Mapper() *Mapper { return &rw.m }

// urlHeaders are the response headers that carry a URL of the partner.
var urlHeaders = []string{"Location", "Content-Location"}

// Header rewrites Location and Content-Location values that point under
// the partner base (absolute URLs and absolute paths, see
// Mapper.MapHeader), and the target of each link of a Link header (RFC
// 8288: <target>; rel="next", ...) the same way. Other values are left
// as they are.
func (rw *Rewriter) Header(h http.Header) {
	for _, k := range urlHeaders {
		vs := h[k]
		for i, v := range vs {
			if out, ok := rw.m.MapHeader(v); ok {
				vs[i] = out
			}
		}
	}
	for i, v := range h["Link"] {
		h["Link"][i] = rw.m.mapLinks(v)
	}
}

// mapLinks maps the targets of a Link header value (RFC 8288 §3: each
// link is "<" URI-Reference ">" then parameters; a quoted parameter may
// hold "<" or ">", and is passed over).
func (m *Mapper) mapLinks(v string) string {
	var b strings.Builder
	rest, changed := v, false
	for {
		i := strings.IndexAny(rest, "<\"")
		if i < 0 {
			break
		}
		if rest[i] == '"' { // a quoted string: up to its closing quote
			j := i + 1
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(rest))
			b.WriteString(rest[:j])
			rest = rest[j:]
			continue
		}
		end := strings.IndexByte(rest[i+1:], '>')
		if end < 0 {
			break
		}
		target := rest[i+1 : i+1+end]
		b.WriteString(rest[:i+1])
		if out, ok := m.MapHeader(target); ok {
			b.WriteString(out)
			changed = true
		} else {
			b.WriteString(target)
		}
		rest = rest[i+1+end:]
	}
	if !changed {
		return v
	}
	b.WriteString(rest)
	return b.String()
}

// Errors of Body. Neither is fatal: the response is left as it is.
var (
	// ErrEncoding: the body has a Content-Encoding other than gzip or
	// identity, so it could not be rewritten. Send AcceptEncoding
	// upstream to avoid it.
	ErrEncoding = errors.New("fhirurl: body not rewritten: unsupported Content-Encoding")
)

// Body prepares resp for a caller, as a reverse proxy's response hook
// (proxy.Proxy.modifyResponse) would: it rewrites the URL headers (Header), and, when
// the body's Content-Type is JSON or XML (FormatOf), replaces resp.Body
// with a stream that rewrites it as it is read. It reports the format
// the body is rewritten in (None when it is left alone).
//
// When the body is rewritten:
//   - Content-Length is removed (resp.ContentLength = -1): the length
//     changes, and is not known until the end (except for a small body,
//     below, which gets its new exact length). Digest headers
//     (Content-MD5, Digest, Content-Digest, Repr-Digest) are removed too.
//   - A gzip Content-Encoding is decoded and the rewritten body is sent
//     with identity coding: Content-Encoding is removed (Vary is kept).
//     Re-compressing would cost more CPU than the rewrite itself; the
//     caller sits next to cqgate. Any other coding (br, deflate, zstd, a
//     list) is left alone and Body returns ErrEncoding.
//   - A strong ETag becomes weak (W/"…"): the bytes may differ from the
//     partner's, and whether they do is known only at the end of the
//     stream, after the headers left. A FHIR server's version ETag is
//     weak already and is kept. Last-Modified is kept: the resource did
//     not change.
//
// 206 Partial Content is never rewritten (a byte range of a document
// cannot be parsed), and neither is a response without a body (HEAD,
// 204, 304; a strong ETag on a 304 is still weakened to match the 200).
// A body of at most SmallBody bytes with a known length and no coding
// is rewritten whole, at once: it keeps an exact Content-Length (and
// costs the proxy no flushing of a body of unknown length). Any other
// body is not read here: the first read of the new body reads it, so
// headers can leave before the partner sent its body.
func (rw *Rewriter) Body(resp *http.Response) (Format, error) {
	rw.Header(resp.Header)
	if resp.StatusCode == http.StatusNotModified {
		weakenETag(resp.Header)
		return None, nil
	}
	// Canonical names, looked up and deleted as they are: no
	// canonicalizing on every response.
	f := FormatOf(first(resp.Header["Content-Type"]))
	if f == None || resp.StatusCode == http.StatusPartialContent {
		return None, nil
	}
	coding := strings.ToLower(strings.TrimSpace(strings.Join(resp.Header["Content-Encoding"], ",")))
	gz := false
	switch coding {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return None, fmt.Errorf("%w %q", ErrEncoding, coding)
	}
	h := resp.Header
	small := !gz && resp.ContentLength >= 0 && resp.ContentLength <= SmallBody
	announced := h["Content-Length"] // kept when the length does not change
	for _, k := range changedHeaders {
		delete(h, k)
	}
	length := resp.ContentLength
	resp.ContentLength = -1
	resp.Uncompressed = gz || resp.Uncompressed
	weakenETag(h)
	noBody := resp.Request != nil && resp.Request.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.Body == nil || resp.Body == http.NoBody
	if noBody {
		return f, nil
	}
	if !small || length == 0 {
		resp.Body = rw.NewReader(resp.Body, f, gz)
		return f, nil
	}
	r := rw.newReader(resp.Body, f, false)
	whole := smallPool.Get().(*smallBody)
	whole.buf, whole.err = r.rewriteAll(int(length))
	_ = r.release()
	whole.rd.Reset(*whole.buf)
	if whole.err == nil {
		n := len(*whole.buf)
		resp.ContentLength = int64(n)
		if len(announced) == 1 && isDecimal(announced[0], n) {
			// Nothing was rewritten (or the lengths match): the
			// partner's own value is exact.
			h["Content-Length"] = announced
		} else {
			h["Content-Length"] = []string{strconv.Itoa(n)}
		}
	}
	resp.Body = &smallHandle{b: whole}
	return f, nil
}

// isDecimal reports whether s is n in decimal, as strconv.Itoa writes it
// (no sign, no leading zeros), without allocating.
func isDecimal(s string, n int) bool {
	var buf [20]byte
	return string(strconv.AppendInt(buf[:0], int64(n), 10)) == s
}

// SmallBody is the largest body (by its Content-Length) Body rewrites
// whole instead of as a stream.
const SmallBody = 64 << 10

// changedHeaders are the headers a rewritten body loses (in canonical
// form, so that deleting them allocates nothing).
var changedHeaders = []string{"Content-Length", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Content-Encoding"}

// smallBody is a whole rewritten body, pooled; its bytes come from the
// buffer pool, sized to the body.
type smallBody struct {
	buf *[]byte
	rd  bytes.Reader
	err error // the read error, returned once the bytes are read
}

var smallPool = sync.Pool{New: func() any { return new(smallBody) }}

// smallHandle reads a smallBody and hands it back to the pool on Close;
// after that it reads nothing.
type smallHandle struct{ b *smallBody }

func (h *smallHandle) Read(p []byte) (int, error) {
	if h.b == nil {
		return 0, errClosed
	}
	n, err := h.b.rd.Read(p)
	if err == io.EOF && h.b.err != nil {
		err = h.b.err
	}
	return n, err
}

func (h *smallHandle) Close() error {
	if b := h.b; b != nil {
		h.b = nil
		b.err = nil
		b.rd.Reset(nil)
		putBuf(b.buf)
		b.buf = nil
		smallPool.Put(b)
	}
	return nil
}

// Peek returns what is left to read of a body Body rewrote whole (a
// small body with a known length), without reading it; ok is false for
// any other body, and for one whose read from the partner failed. The
// bytes are the body's own: valid until it is closed, not to be changed.
func Peek(body io.Reader) (rest []byte, ok bool) {
	h, isSmall := body.(*smallHandle)
	if !isSmall || h.b == nil || h.b.err != nil {
		return nil, false
	}
	b := *h.b.buf
	return b[len(b)-h.b.rd.Len():], true
}

// weakenETag turns a strong ETag into a weak one.
func weakenETag(h http.Header) {
	if e := first(h["Etag"]); strings.HasPrefix(e, `"`) { // "Etag": ETag canonicalized
		h["Etag"] = []string{"W/" + e}
	}
}

// first is a header's first value (Header.Get's, for a canonical name).
func first(values []string) string {
	if len(values) > 0 {
		return values[0]
	}
	return ""
}

// NewReader returns a ReadCloser that reads src, decoding gzip first if
// gz, and yields it rewritten as format f. Closing it closes src; it
// must not be read after Close. Its buffers are pooled and sized to what
// the body turns out to be: a small body never holds a large chunk.
func (rw *Rewriter) NewReader(src io.ReadCloser, f Format, gz bool) io.ReadCloser {
	return &pooledReader{r: rw.newReader(src, f, gz)}
}

// newReader takes a reader from the pool, set up for src.
func (rw *Rewriter) newReader(src io.ReadCloser, f Format, gz bool) *reader {
	r := readerPool.Get().(*reader)
	r.src, r.gz, r.in, r.err, r.off, r.pend, r.eof = src, gz, nil, nil, 0, nil, false
	r.next = firstChunk
	switch f {
	case JSON:
		r.jw.reset(nil, &rw.m, rw.limit)
		r.w, r.s = &r.jw, &r.jw.sink
	case XML:
		r.xw.reset(nil, &rw.m, rw.limit)
		r.w, r.s = &r.xw, &r.xw.sink
	default:
		r.pw.sink = sink{}
		r.w, r.s = &r.pw, &r.pw.sink
	}
	return r
}

// The chunks read from the partner: the first is small, and each read
// that fills its chunk doubles the next, up to readChunk. A body of a few
// KiB costs a few KiB; a large one is read 32 KiB at a time.
const (
	firstChunk = 2 << 10
	readChunk  = 32 << 10
)

// minRoom is the least room left in p that a Read which has output
// already fills with more: output comes a string at a time, and one that
// outgrows p is copied aside.
const minRoom = 512

var readerPool = sync.Pool{New: func() any { return new(reader) }}

// passWriter is the writer of a body not rewritten: it only copies.
type passWriter struct{ sink }

func (w *passWriter) Write(p []byte) (int, error) { w.put(p); return len(p), nil }
func (w *passWriter) Close() error                { return nil }

// pooledReader hands its reader back to the pool on Close, after which it
// reads nothing: a late Read cannot see another response's bytes.
type pooledReader struct{ r *reader }

func (p *pooledReader) Read(b []byte) (int, error) {
	if p.r == nil {
		return 0, errClosed
	}
	return p.r.Read(b)
}

func (p *pooledReader) Close() error {
	r := p.r
	if r == nil {
		return nil
	}
	p.r = nil
	return r.release()
}

// release closes src, hands the buffers back and puts r back in the
// pool; r must not be used after.
func (r *reader) release() error {
	err := r.src.Close()
	r.src, r.in, r.w, r.err, r.pend = nil, nil, nil, nil, nil
	if r.s != nil {
		putBuf(r.takeOut())
		r.s = nil
	}
	putBuf(r.chunk)
	r.chunk = nil
	r.jw.reset(nil, nil, 0)
	r.xw.reset(nil, nil, 0)
	r.jw.out, r.xw.out, r.pw.out = nil, nil, nil
	// A long string token held once does not stay with the pooled
	// reader for the small bodies after it.
	r.jw.buf, r.jw.heldOrig, r.jw.heldWS, r.jw.repl, r.jw.dec = smallOnly(r.jw.buf), smallOnly(r.jw.heldOrig), smallOnly(r.jw.heldWS), smallOnly(r.jw.repl), smallOnly(r.jw.dec)
	r.xw.buf, r.xw.repl = smallOnly(r.xw.buf), smallOnly(r.xw.repl)
	readerPool.Put(r)
	return err
}

// smallOnly returns b, or nil when it has grown past what a pooled
// reader keeps.
func smallOnly(b []byte) []byte {
	if cap(b) > 1<<10 {
		return nil
	}
	return b
}

var errClosed = errors.New("fhirurl: read after close")

// reader pulls src through a rewriting writer, one chunk at a time, and
// hands out what the writer put in its output buffer: the output never
// holds much more than a chunk plus one held token.
type reader struct {
	src    io.ReadCloser
	gz     bool
	in     io.Reader // src, or a gzip reader on it once the first Read came
	zr     *gzip.Reader
	w      io.WriteCloser
	s      *sink // w's output
	jw     JSONWriter
	xw     XMLWriter
	pw     passWriter
	chunk  *[]byte  // from the buffer pool
	next   int      // the size of the next chunk
	outBuf *[]byte  // the pooled buffer s.out lives in
	off    int      // s.out[:off] was read (s.out is outBuf's, except inside Read)
	pend   []byte   // the part of the chunk not rewritten yet
	eof    bool     // the input ended after pend
	probe  [64]byte // rewriteAll: reads the end of a body that filled its buffer
	err    error    // the error to return once the output is drained
}

// setOut makes the pooled buffer b the writer's output buffer.
func (r *reader) setOut(b *[]byte) {
	r.outBuf = b
	r.s.out = (*b)[:0]
}

// takeOut takes the output buffer (grown or not, with what it holds)
// from the writer.
func (r *reader) takeOut() *[]byte {
	b := r.outBuf
	if b != nil {
		*b = r.s.out
	}
	r.s.out, r.outBuf = nil, nil
	return b
}

func (r *reader) Read(p []byte) (int, error) {
	n := 0
	filled := false
	for {
		// Output left from before comes first.
		if r.off < len(r.s.out) {
			k := copy(p[n:], r.s.out[r.off:])
			r.off += k
			n += k
			if r.off == len(r.s.out) {
				r.s.out, r.off = r.s.out[:0], 0
			}
		}
		if n == len(p) {
			return n, nil
		}
		if len(r.pend) == 0 {
			// Reading more may block: a Read reads at most once, and
			// not when it has a fair part of p to give. A short tail
			// of the last chunk (URLs made it longer than p) waits for
			// the next chunk, so that a caller writing each Read does
			// not write it alone.
			if n > 0 && (filled || n >= len(p)/4 || r.err != nil) {
				return n, nil
			}
			if r.err != nil {
				return 0, r.err
			}
			r.fill()
			filled = true
			continue
		}
		// Rewrite input already read straight into p, about as much as
		// p has room for: p is filled without a copy, and without a
		// short remainder for the next Read (a caller that writes each
		// Read, like a proxy flushing a body of unknown length, then
		// makes one write per chunk, not two).
		room := len(p) - n
		if n > 0 && room < minRoom {
			return n, nil // a token or two could not fit
		}
		k := min(len(r.pend), max(room-room/8, 1))
		own := r.s.out // empty
		r.s.out = p[n:n:len(p)]
		_, _ = r.w.Write(r.pend[:k]) // no dst: cannot fail
		r.pend = r.pend[k:]
		if len(r.pend) == 0 && r.eof {
			r.finish()
		}
		out := r.s.out
		if cap(out) == room {
			n += len(out)
			r.s.out = own
			continue
		}
		// The output outgrew p: what does not fit waits in own.
		c := copy(p[n:], out)
		n += c
		r.s.out = append(own, out[c:]...)
	}
}

// fill reads the next chunk into r.pend.
func (r *reader) fill() {
	if r.in == nil {
		r.in = r.src
		if r.gz {
			var err error
			if r.zr == nil {
				r.zr, err = gzip.NewReader(r.src)
			} else {
				err = r.zr.Reset(r.src)
			}
			if err != nil {
				r.err = fmt.Errorf("fhirurl: gzip body: %w", err)
				return
			}
			r.in = r.zr
		}
	}
	if r.chunk == nil || cap(*r.chunk) < r.next {
		putBuf(r.chunk)
		r.chunk = getBuf(r.next)
	}
	if r.outBuf == nil {
		// Output goes straight into the caller's buffer; this one
		// only keeps what did not fit.
		r.setOut(getBuf(1 << 10))
	}
	chunk := (*r.chunk)[:cap(*r.chunk)]
	n, err := r.in.Read(chunk)
	if n == len(chunk) {
		r.next = min(2*r.next, readChunk)
	}
	r.pend = chunk[:n]
	switch {
	case err == io.EOF:
		r.eof = true
		if n == 0 {
			r.finish()
		}
	case err != nil:
		r.err = err
	}
}

// finish closes the writer at the end of the input.
func (r *reader) finish() {
	if err := r.w.Close(); err != nil {
		r.err = err
		return
	}
	r.err = io.EOF
}

// rewriteAll reads the whole body, announced as n bytes long, and returns
// it rewritten in a pooled buffer, with the read error if any (the bytes
// read before it are rewritten, as a stream's would be).
func (r *reader) rewriteAll(n int) (*[]byte, error) {
	in := getBuf(n)
	b := (*in)[:0]
	var rerr error
	for {
		var k int
		var err error
		if len(b) < cap(b) {
			k, err = r.src.Read(b[len(b):cap(b)])
			b = b[:len(b)+k]
		} else {
			// Full: the end should come now; a longer body than
			// announced grows the buffer.
			k, err = r.src.Read(r.probe[:])
			b = append(b, r.probe[:k]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	r.setOut(getBuf(len(b) + len(b)/16 + 64))
	_, _ = r.w.Write(b) // no dst: cannot fail
	if rerr == nil {
		_ = r.w.Close()
	}
	*in = b[:0]
	putBuf(in)
	return r.takeOut(), rerr
}
