package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/internal/egress"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/internal/outcome"
	"github.com/cqgate/cqgate/proxy/fhirurl"
)

const (
	// peekSize is how much of a JSON answer is read first to tell a
	// bulk manifest from a FHIR resource (more when its first keys do
	// not settle it).
	peekSize = 512
	// maxManifest is the largest bulk manifest rewritten; a larger one
	// is refused (502): its storage URLs could not be sealed. A server
	// with more files splits its manifest into pages (link[].url).
	maxManifest = 16 << 20
	// maxRedirects is how many redirects to another origin cqgate
	// follows for a caller.
	maxRedirects = 3
)

// prepareDownload opens a sealed link for rt, a file's or a status
// URL's (Link.Status), and decides whether cqgate's token goes with it:
// for a file only when the manifest said requiresAccessToken, for both
// only when the URL belongs to the same party as the FHIR base. A file
// link takes GET and HEAD, a status link GET (poll) and DELETE (cancel);
// the grant check (Config.CheckGrant) is not asked for either: neither
// is a FHIR REST interaction. It answers the caller itself and returns
// false when the request cannot go.
func (p *Proxy) prepareDownload(w http.ResponseWriter, r *http.Request, rt *route, sealed string) bool {
	t := rt.tenant
	l, err := p.links.Open(t.OID, sealed)
	if err != nil {
		outcome.WriteErrorFor(w, r, failure.Errorf(failure.NotFound, "%w", err))
		return false
	}
	if allow, ok := linkMethods(l, r.Method); !ok {
		w.Header().Set("Allow", allow)
		outcome.WriteErrorFor(w, r, failure.Errorf(failure.MethodNotAllowed, "proxy: a bulk %s link takes %s only", linkKind(l), strings.Replace(allow, ", ", " or ", 1)))
		return false
	}
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		outcome.WriteErrorFor(w, r, failure.Errorf(failure.UpstreamFailed, "proxy: the partner gave a bulk %s URL cqgate cannot fetch", linkKind(l)))
		return false
	}
	if err := egress.CheckURL(originOf(u), t.AllowPrivate); err != nil {
		p.errorHandler(w, r, rt, fmt.Errorf("proxy: bulk %s of %s: %w", linkKind(l), t.OID, err))
		return false
	}
	rt.download, rt.dl = &l, u
	if (l.Status || l.RequiresToken) && t.SameParty(u) {
		tok, err := p.token(r.Context(), t, rt)
		if err != nil {
			p.errorHandler(w, r, rt, err)
			return false
		}
		rt.token, rt.bearer = tok, tok.Authorization()
	}
	return true
}

// linkMethods says which methods a sealed link takes (Allow's value) and
// whether method is one of them.
func linkMethods(l Link, method string) (allow string, ok bool) {
	if l.Status {
		return "GET, DELETE", method == http.MethodGet || method == http.MethodDelete
	}
	return "GET, HEAD", method == http.MethodGet || method == http.MethodHead
}

// linkKind names a sealed link's kind in errors: "file" or "status".
func linkKind(l Link) string {
	if l.Status {
		return "status"
	}
	return "file"
}

// downloadHeaders are the caller's headers a bulk file request carries
// to a storage origin; nothing else of the caller's goes there.
var downloadHeaders = []string{"Accept", "Range", "If-Range", "If-None-Match", "If-Modified-Since", "Accept-Encoding"}

// downloadRequest makes out the request for a sealed link's file: its
// URL, and of the caller's request only downloadHeaders (no body).
func (rt *route) downloadRequest(in, out *http.Request) {
	rt.url = *rt.dl
	rt.url.Fragment, rt.url.RawFragment = "", ""
	out.Body, out.GetBody, out.ContentLength, out.TransferEncoding = nil, nil, 0, nil
	h := make(http.Header, len(downloadHeaders)+3)
	for _, k := range downloadHeaders {
		if v := in.Header[k]; len(v) > 0 {
			h[k] = v
		}
	}
	setAcceptEncoding(h)
	if rt.token != nil {
		h["Authorization"] = []string{"Bearer " + rt.token.AccessToken}
		h[RequestIDHeader] = []string{rt.requestID}
	}
	noDefaultUserAgent(h)
	out.Header = h
}

// rewriteResponse maps the partner's URLs in resp (see fhirurl.Rewriter),
// gives callers that did not ask for gzip an identity body, rewrites bulk
// manifests and records bulk events for the audit.
func (p *Proxy) rewriteResponse(resp *http.Response, rt *route) error {
	f := fhirurl.None
	if rt.rw != nil {
		var err error
		if f, err = rt.rw.Body(resp); err != nil && errors.Is(err, fhirurl.ErrEncoding) {
			// cqgate asks for gzip only; a FHIR body in another coding
			// could not be rewritten, and would hand the caller the
			// partner's URLs.
			return failure.Errorf(failure.UpstreamFailed,
				"proxy: the FHIR server of %s answered in a Content-Encoding cqgate did not ask for and cannot rewrite: %w", rt.tenant.OID, err)
		}
	}
	if f == fhirurl.None && !rt.callerGzip {
		identity(resp)
	}
	get := resp.Request.Method == http.MethodGet
	switch {
	case f == fhirurl.JSON && get && resp.StatusCode == http.StatusOK && rt.rw != nil:
		if err := p.manifest(resp, rt); err != nil {
			return err
		}
	case resp.StatusCode == http.StatusAccepted:
		if err := p.sealStatus(resp, rt); err != nil {
			return err
		}
		if isKickoff(rt.path) && rt.audit != nil {
			rt.audit.Bulk = &audit.Bulk{Event: audit.BulkKickoff, StatusPath: statusPath(resp.Header.Get("Content-Location"))}
		}
	}
	file := rt.download != nil && !rt.download.Status
	if rt.audit != nil && get && (file || isNDJSON(resp.Header.Get("Content-Type"))) &&
		(resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
		bk := &audit.Bulk{Event: audit.BulkDownload}
		if file {
			bk.FileType = rt.download.Type
		}
		rt.audit.Bulk = bk
		resp.Body = &countingBody{ReadCloser: resp.Body, bulk: bk}
	}
	return nil
}

// identity undoes a gzip Content-Encoding of a body that is not
// rewritten, for a caller that did not ask for gzip (cqgate asked the
// partner for it). Partial content is left alone.
func identity(resp *http.Response) {
	coding := strings.ToLower(strings.TrimSpace(strings.Join(resp.Header.Values("Content-Encoding"), ",")))
	if (coding != "gzip" && coding != "x-gzip") || resp.StatusCode == http.StatusPartialContent {
		return
	}
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Md5", "Digest", "Content-Digest", "Accept-Ranges"} {
		resp.Header.Del(k)
	}
	resp.ContentLength = -1
	resp.Uncompressed = true
	if e := resp.Header.Get("ETag"); strings.HasPrefix(e, `"`) {
		resp.Header.Set("ETag", "W/"+e)
	}
	if resp.Body == nil || resp.Body == http.NoBody || resp.Request.Method == http.MethodHead {
		return
	}
	resp.Body = &gunzipBody{src: resp.Body}
}

// gunzipBody decodes gzip on its first Read, so that headers leave first.
type gunzipBody struct {
	src io.ReadCloser
	zr  *gzip.Reader
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err != nil {
			return 0, fmt.Errorf("proxy: gzip body: %w", err)
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

func (g *gunzipBody) Close() error { return g.src.Close() }

// isKickoff reports whether a FHIR path is a bulk export kick-off:
// [base]/$export, [base]/Patient/$export, [base]/Group/{id}/$export.
func isKickoff(fhirPath string) bool {
	i := strings.LastIndexByte(fhirPath, '/')
	return fhirPath[i+1:] == "$export" || fhirPath[i+1:] == "%24export"
}

func statusPath(contentLocation string) string {
	u, err := url.Parse(contentLocation)
	if err != nil {
		return ""
	}
	return u.EscapedPath()
}

func isNDJSON(contentType string) bool {
	mt := fhirurl.MediaType(contentType)
	return strings.EqualFold(mt, "application/fhir+ndjson") || strings.EqualFold(mt, "application/ndjson") ||
		strings.EqualFold(mt, "application/x-ndjson")
}

// countingBody counts the bytes of a downloaded file for its audit
// record and notes its resource type from the first line when the
// manifest's was not at hand.
type countingBody struct {
	io.ReadCloser
	bulk    *audit.Bulk
	sniffed bool
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 && !c.sniffed {
		c.sniffed = true
		if c.bulk.FileType == "" {
			c.bulk.FileType = sniffType(p[:n])
		}
	}
	c.bulk.Bytes += int64(n)
	return n, err
}

// sniffType returns the value of the first "resourceType" in b when it
// is a plain resource type name (letters only), else "".
func sniffType(b []byte) string {
	const key = `"resourceType"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(b[i+len(key):], " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " \t")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	for j := 0; j < len(rest) && j < 64; j++ {
		c := rest[j]
		if c == '"' {
			return string(rest[:j])
		}
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return ""
		}
	}
	return ""
}

// manifest looks at a 200 JSON answer (already passing through the URL
// rewriter) and, when it is a bulk export manifest (keyScan: its
// top-level keys, in whatever order they come), reads it whole and turns
// each output, error and deleted file URL that the rewriter did not map
// into a sealed cqgate download link. Anything else passes on as it is,
// read no further than its keys settled it.
func (p *Proxy) manifest(resp *http.Response, rt *route) error {
	var (
		scan     keyScan
		head     []byte
		complete bool
	)
	if whole, ok := fhirurl.Peek(resp.Body); ok {
		// A small answer, rewritten whole already: looked at where it
		// is, and left unread unless it may be a manifest.
		if scan.feed(whole) == notAManifest {
			return nil
		}
		// It is read whole below (a copy: the body's bytes are pooled
		// and go back when it is closed).
		head, complete = whole, true
	} else {
		var v manifestVerdict
		var err error
		head, v, complete, err = readHead(resp.Body, &scan, make([]byte, 0, peekSize))
		if err != nil {
			return rt.upstreamError(resp.Request.URL, err)
		}
		if v == notAManifest {
			// The common case, a FHIR resource: on with its head.
			rt.pre = prefixBody{head: head, rest: resp.Body, done: complete}
			resp.Body = &rt.pre
			return nil
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(4096, len(head))))
	buf.Write(head)
	if !complete {
		m, err := io.Copy(buf, io.LimitReader(resp.Body, maxManifest-int64(len(head))))
		if err != nil {
			return rt.upstreamError(resp.Request.URL, err)
		}
		if int64(len(head))+m == maxManifest {
			// Too large to be rewritten as a whole, and passed as it
			// came it would hand the caller its storage URLs.
			_ = resp.Body.Close()
			return failure.Errorf(failure.UpstreamFailed,
				"proxy: the bulk manifest of %s is larger than the %d MiB cqgate rewrites; a server with that many files splits its manifest into pages (link)",
				rt.tenant.OID, maxManifest>>20)
		}
	}
	_ = resp.Body.Close()
	out, files, sealedUntil, ok, err := p.rewriteManifest(buf.Bytes(), resp, rt)
	if err != nil {
		return err
	}
	if !ok {
		out = buf.Bytes()
	} else if rt.audit != nil {
		rt.audit.Bulk = &audit.Bulk{Event: audit.BulkComplete, Files: files}
	}
	if !sealedUntil.IsZero() {
		expireBy(resp.Header, sealedUntil)
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", fmt.Sprint(len(out)))
	return nil
}

// readHead reads a JSON answer into buf (appending, growing it) until
// scan settles whether it may be a manifest or the body ends (complete),
// and returns what it read; past maxUndecided bytes it returns
// undecided, and the caller reads the answer whole. The usual answer, a resource that
// opens with "resourceType" (or, keys sorted, with a key no manifest
// has), is neither waited for nor read beyond its first bytes.
func readHead(r io.Reader, scan *keyScan, buf []byte) (head []byte, v manifestVerdict, complete bool, err error) {
	for len(buf) < maxUndecided {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), peekSize), maxUndecided-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxUndecided)])
		v = scan.feed(buf[len(buf) : len(buf)+n])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, v, true, nil
		case err != nil:
			return buf, v, false, err
		case v != undecided:
			return buf, v, false, nil
		}
	}
	return buf, undecided, false, nil
}

// expireBy makes the answer's Expires (which the Bulk Data IG lets a
// server use to say how long its files stay available) no later than
// until, when the download links cqgate sealed in it stop working.
func expireBy(h http.Header, until time.Time) {
	if t, err := http.ParseTime(h.Get("Expires")); err == nil && !t.After(until) {
		return // the partner's files go first
	}
	h.Set("Expires", until.UTC().Format(http.TimeFormat))
}

// prefixBody yields head and then, unless done, the rest of rest.
type prefixBody struct {
	head []byte
	rest io.ReadCloser
	done bool
}

func (b *prefixBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	if b.done {
		return 0, io.EOF
	}
	return b.rest.Read(p)
}

func (b *prefixBody) Close() error { return b.rest.Close() }

// utf8BOM is the UTF-8 byte order mark.
var utf8BOM = []byte("\xEF\xBB\xBF")

// isManifest reports whether m, a JSON object without resourceType, is a
// bulk export manifest: it has transactionTime (which the IG requires),
// or an output, error or deleted array (a server that leaves out what
// is empty may send only error, or no output).
func isManifest(m map[string]json.RawMessage) bool {
	if _, ok := m["transactionTime"]; ok {
		return true
	}
	for _, k := range manifestFiles {
		if raw := bytes.TrimSpace(m[k]); len(raw) > 0 && raw[0] == '[' {
			return true
		}
	}
	return false
}

// manifestLinks returns a manifest's link array (raw) with each url
// leading to cqgate: mapped already when under the FHIR base, else a
// sealed status link, polled with the token as the status URL is
// (statusLink; an unusable one is dropped from its entry and logged). A
// link array that is not a list of objects becomes empty.
func (p *Proxy) manifestLinks(raw json.RawMessage, resp *http.Response, rt *route) (json.RawMessage, error) {
	var links []map[string]json.RawMessage
	if json.Unmarshal(raw, &links) != nil {
		return json.RawMessage("[]"), nil
	}
	for _, l := range links {
		var u string
		if json.Unmarshal(l["url"], &u) != nil {
			delete(l, "url")
			continue
		}
		out, keep, err := p.statusLink(u, "manifest link", resp.Request.URL, rt)
		switch {
		case err != nil:
			return nil, err
		case !keep:
			delete(l, "url")
		default:
			l["url"], _ = json.Marshal(out)
		}
	}
	return json.Marshal(links)
}

// manifestFiles are the manifest arrays whose entries carry file URLs.
var manifestFiles = []string{"output", "error", "deleted"}

// rewriteManifest seals every file URL of a manifest not already under
// cqgate's public base for the organization, and makes the manifest's
// own links (link[].url: the next page of a manifest the server splits,
// Bulk Data 2.0) lead to cqgate (manifestLinks); sealedUntil is when the
// sealed file links expire (zero when none was sealed). ok is false when
// b is not a manifest; resp is the answer it came in.
func (p *Proxy) rewriteManifest(b []byte, resp *http.Response, rt *route) (out []byte, files int, sealedUntil time.Time, ok bool, err error) {
	var m map[string]json.RawMessage
	// A byte order mark, which keyScan passes over as clients do, is
	// not JSON to encoding/json.
	if err := json.Unmarshal(bytes.TrimPrefix(bytes.TrimLeft(b, " \t\r\n"), utf8BOM), &m); err != nil {
		// Its keys (keyScan) say manifest: passed as it came, its
		// storage URLs would reach the caller unsealed.
		return nil, 0, time.Time{}, false, failure.Errorf(failure.UpstreamFailed,
			"proxy: the FHIR server of %s answered with what may be a bulk manifest (its top-level keys) but is not JSON cqgate can read (%v), so cqgate cannot seal its file URLs",
			rt.tenant.OID, err)
	}
	if _, resource := m["resourceType"]; resource || !isManifest(m) {
		return nil, 0, time.Time{}, false, nil
	}
	var requires bool
	_ = json.Unmarshal(m["requiresAccessToken"], &requires)
	public := rt.rw.Mapper().PublicBase()
	for _, key := range manifestFiles {
		raw, present := m[key]
		if !present {
			continue
		}
		var entries []map[string]json.RawMessage
		if json.Unmarshal(raw, &entries) != nil {
			// Not a list of files: nothing cqgate can hand out from it.
			m[key] = json.RawMessage("[]")
			continue
		}
		if key == "output" {
			files = len(entries)
		}
		for _, e := range entries {
			var raw, typ string
			if json.Unmarshal(e["url"], &raw) != nil {
				delete(e, "url")
				continue
			}
			_ = json.Unmarshal(e["type"], &typ)
			if strings.HasPrefix(raw, public+"/") {
				continue // under the partner base, mapped already
			}
			if sealedUntil.IsZero() {
				sealedUntil = p.links.expiry() // no later than Seal's own
			}
			sealed, err := p.links.Seal(rt.tenant.OID, Link{URL: raw, Type: typ, RequiresToken: requires})
			if err != nil {
				return nil, 0, time.Time{}, false, err
			}
			e["url"], _ = json.Marshal(public + "/" + DownloadSegment + "/" + sealed)
		}
		if m[key], err = json.Marshal(entries); err != nil {
			return nil, 0, time.Time{}, false, err
		}
	}
	if raw, present := m["link"]; present {
		if m["link"], err = p.manifestLinks(raw, resp, rt); err != nil {
			return nil, 0, time.Time{}, false, err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, 0, time.Time{}, false, err
	}
	return buf.Bytes(), files, sealedUntil, true, nil
}
