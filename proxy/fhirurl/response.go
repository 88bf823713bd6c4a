package fhirurl

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
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
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return None
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
		return JSON
	case "application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir":
		return XML
	}
	return None
}

// AcceptEncoding is the Accept-Encoding a proxy should send upstream when
// it rewrites responses: the only content codings Body can undo. (Go's
// http.Transport sends exactly this, and decodes the response itself,
// when the request carries no Accept-Encoding of its own.)
const AcceptEncoding = "gzip"

// Rewriter rewrites partner URLs in responses for one organization:
// headers and bodies. It is immutable and safe for concurrent use.
type Rewriter struct {
	m     *Mapper
	limit int
}

// NewRewriter returns a Rewriter from partnerBase to publicBase (see
// NewMapper).
func NewRewriter(partnerBase, publicBase string) (*Rewriter, error) {
	m, err := NewMapper(partnerBase, publicBase)
	if err != nil {
		return nil, err
	}
	return &Rewriter{m: m, limit: DefaultMaxToken}, nil
}

// Mapper returns the Rewriter's Mapper.
func (rw *Rewriter) Mapper() *Mapper { return rw.m }

// urlHeaders are the response headers that carry a URL of the partner.
var urlHeaders = []string{"Location", "Content-Location"}

// Header rewrites Location and Content-Location values that point under
// the partner base (absolute URLs and absolute paths, see
// Mapper.MapHeader). Other values are left as they are.
func (rw *Rewriter) Header(h http.Header) {
	for _, k := range urlHeaders {
		vs := h[k]
		for i, v := range vs {
			if out, ok := rw.m.MapHeader(v); ok {
				vs[i] = out
			}
		}
	}
}

// Errors of Body. Neither is fatal: the response is left as it is.
var (
	// ErrEncoding: the body has a Content-Encoding other than gzip or
	// identity, so it could not be rewritten. Send AcceptEncoding
	// upstream to avoid it.
	ErrEncoding = errors.New("fhirurl: body not rewritten: unsupported Content-Encoding")
)

// Body prepares resp for a caller, as an httputil.ReverseProxy
// ModifyResponse would: it rewrites the URL headers (Header), and, when
// the body's Content-Type is JSON or XML (FormatOf), replaces resp.Body
// with a stream that rewrites it as it is read. It reports the format
// the body is rewritten in (None when it is left alone).
//
// When the body is rewritten:
//   - Content-Length is removed (resp.ContentLength = -1): the length
//     changes, and is not known until the end. Digest headers
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
// Body never reads from resp.Body itself: the first read of the new body
// does, so headers can leave before the partner sent its body.
func (rw *Rewriter) Body(resp *http.Response) (Format, error) {
	rw.Header(resp.Header)
	if resp.StatusCode == http.StatusNotModified {
		weakenETag(resp.Header)
		return None, nil
	}
	f := FormatOf(resp.Header.Get("Content-Type"))
	if f == None || resp.StatusCode == http.StatusPartialContent {
		return None, nil
	}
	coding := strings.ToLower(strings.TrimSpace(strings.Join(resp.Header.Values("Content-Encoding"), ",")))
	gz := false
	switch coding {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return None, fmt.Errorf("%w %q", ErrEncoding, coding)
	}
	h := resp.Header
	for _, k := range []string{"Content-Length", "Content-MD5", "Digest", "Content-Digest", "Repr-Digest", "Content-Encoding"} {
		h.Del(k)
	}
	resp.ContentLength = -1
	resp.Uncompressed = gz || resp.Uncompressed
	weakenETag(h)
	noBody := resp.Request != nil && resp.Request.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.Body == nil || resp.Body == http.NoBody
	if noBody {
		return f, nil
	}
	resp.Body = rw.NewReader(resp.Body, f, gz)
	return f, nil
}

// weakenETag turns a strong ETag into a weak one.
func weakenETag(h http.Header) {
	if e := h.Get("ETag"); strings.HasPrefix(e, `"`) {
		h.Set("ETag", "W/"+e)
	}
}

// NewReader returns a ReadCloser that reads src, decoding gzip first if
// gz, and yields it rewritten as format f. Closing it closes src.
func (rw *Rewriter) NewReader(src io.ReadCloser, f Format, gz bool) io.ReadCloser {
	r := &reader{src: src, gz: gz, chunk: make([]byte, readChunk)}
	switch f {
	case JSON:
		r.w = NewJSONWriter(&r.out, rw.m, rw.limit)
	case XML:
		r.w = NewXMLWriter(&r.out, rw.m, rw.limit)
	default:
		r.w = nopWriteCloser{&r.out}
	}
	return r
}

// readChunk is how much is read from the partner at a time.
const readChunk = 32 << 10

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// reader pulls src through a rewriting writer into out, one chunk at a
// time: out never holds much more than a chunk plus one held token.
type reader struct {
	src   io.ReadCloser
	gz    bool
	in    io.Reader // src, or a gzip reader on it once the first Read came
	w     io.WriteCloser
	out   bytes.Buffer
	chunk []byte
	err   error // the error to return once out is drained
}

func (r *reader) Read(p []byte) (int, error) {
	for r.out.Len() == 0 && r.err == nil {
		r.fill()
	}
	if r.out.Len() > 0 {
		return r.out.Read(p)
	}
	return 0, r.err
}

func (r *reader) fill() {
	if r.in == nil {
		r.in = r.src
		if r.gz {
			zr, err := gzip.NewReader(r.src)
			if err != nil {
				r.err = fmt.Errorf("fhirurl: gzip body: %w", err)
				return
			}
			r.in = zr
		}
	}
	n, err := r.in.Read(r.chunk)
	if n > 0 {
		if _, werr := r.w.Write(r.chunk[:n]); werr != nil {
			r.err = werr
			return
		}
	}
	switch {
	case err == io.EOF:
		if cerr := r.w.Close(); cerr != nil {
			r.err = cerr
			return
		}
		r.err = io.EOF
	case err != nil:
		r.err = err
	}
}

func (r *reader) Close() error {
	if r.err == nil {
		r.err = errors.New("fhirurl: read after close")
	}
	return r.src.Close()
}
