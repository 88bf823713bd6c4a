package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cqgate/cqgate/internal/upstream"
)

// HeaderCernerOverride is the request header that makes Cerner's
// /metadata list its Carequality token and register URLs as the plain
// oauth-uris "token" and "register" (Request.CernerOverride).
const HeaderCernerOverride = "Cerner-Override-OAuth-URIs"

// docKind is one of the documents discovery reads.
type docKind uint8

const (
	docMetadata docKind = iota // {base}/metadata
	docUDAP                    // {base}/.well-known/udap
	docSMART                   // {base}/.well-known/smart-configuration
)

func (k docKind) String() string {
	switch k {
	case docMetadata:
		return "CapabilityStatement"
	case docUDAP:
		return "UDAP metadata"
	case docSMART:
		return "smart-configuration"
	}
	return "document"
}

// document is a fetched and parsed document, as cached: 96 bytes, its
// oauth-uris one string (the four URLs back to back, each a separate
// allocation before; a separate tokenURIs struct cost 64 bytes more).
type document struct {
	url       string
	fetchedAt time.Time
	// One of smart, udap and uris is set for a read document, by kind
	// (uris when hasURIs; a CapabilityStatement without oauth-uris has
	// none). uris holds the URLs tokenURIs gives, ending at urisEnds.
	smart    *smartConfiguration
	udap     *udapMetadata
	uris     string
	urisEnds [3]uint32
	// notSupported is the HTTP status with which a .well-known document
	// said the server does not speak that protocol (404 and the like), 0
	// when the document was read.
	notSupported uint16
	kind         docKind
	hasURIs      bool
}

// tokenURIs returns the CapabilityStatement's oauth-uris, sharing the
// document's string, and false when it has none (or doc is another
// kind).
func (doc *document) tokenURIs() (tokenURIs, bool) {
	if !doc.hasURIs {
		return tokenURIs{}, false
	}
	s, e := doc.uris, doc.urisEnds
	return tokenURIs{Token: s[:e[0]], CarequalityToken: s[e[0]:e[1]], CarequalityRegister: s[e[1]:e[2]], Register: s[e[2]:]}, true
}

// setURIs keeps u's URLs in doc, in one string.
func (doc *document) setURIs(u *OAuthURIs) {
	if u == nil {
		return
	}
	var b strings.Builder
	b.Grow(len(u.Token) + len(u.CarequalityToken) + len(u.CarequalityRegister) + len(u.Register))
	for i, s := range []string{u.Token, u.CarequalityToken, u.CarequalityRegister} {
		b.WriteString(s)
		doc.urisEnds[i] = uint32(b.Len())
	}
	b.WriteString(u.Register)
	doc.uris, doc.hasURIs = b.String(), true
}

// notSupportedStatus reports whether status, answered for a .well-known
// document, means "this server does not speak that protocol" rather than
// a failure: 404 and 410 as the UDAP IG and RFC 8615 intend, 403, 405 and
// 501 as gateways answer unknown paths, and for UDAP 204 (no metadata for
// the community).
func notSupportedStatus(kind docKind, status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return kind != docMetadata
	case http.StatusNoContent:
		return kind == docUDAP
	}
	return false
}

// docKey is a document's cache key: its URL, and for the
// CapabilityStatement whether the Cerner override header was sent.
func docKey(kind docKind, u string, override bool) string {
	if kind == docMetadata && override {
		return u + "\x00" + HeaderCernerOverride
	}
	return u
}

// document returns the document of kind at u, from the document cache
// when it was fetched less than maxAge ago, else fetched (once for all
// concurrent callers). Failures are not cached; "not supported" answers
// are.
func (d *Discoverer) document(ctx context.Context, kind docKind, u string, override bool, maxAge time.Duration) (*document, error) {
	doc, _, err := d.docs.GetMaxAge(ctx, docKey(kind, u, override), maxAge, func(fctx context.Context) (*document, error) {
		return d.fetchDocument(fctx, kind, u, override)
	})
	var de *Error
	if err != nil && !errors.As(err, &de) {
		// Only ctx's end: every fetch failure is an *Error already.
		return nil, &Error{URL: u, Err: err}
	}
	return doc, err
}

// fetchDocument GETs and parses one document. Every failure is an
// *Error naming the URL.
func (d *Discoverer) fetchDocument(ctx context.Context, kind docKind, u string, override bool) (*document, error) {
	header := http.Header{"Accept": {"application/json"}}
	if kind == docMetadata {
		// Cerner answers other media types with 406 Not Acceptable.
		header.Set("Accept", "application/fhir+json")
		if override {
			header.Set(HeaderCernerOverride, "on")
		}
	}
	resp, err := upstream.Get(ctx, d.hc, u, header, d.maxBody)
	switch {
	case resp == nil:
		return nil, &Error{URL: u, Err: err}
	case err != nil:
		return nil, &Error{URL: u, StatusCode: resp.StatusCode, Err: err}
	case notSupportedStatus(kind, resp.StatusCode):
		return &document{kind: kind, url: u, fetchedAt: d.now(), notSupported: uint16(resp.StatusCode)}, nil
	case !resp.OK():
		return nil, &Error{URL: u, StatusCode: resp.StatusCode, Err: upstream.DescribeStatus(resp.StatusCode, resp.Body)}
	case resp.Truncated:
		return nil, &Error{URL: u, StatusCode: resp.StatusCode, Err: fmt.Errorf("response body exceeds %d bytes", d.maxBody)}
	}
	doc := &document{kind: kind, url: u}
	switch kind {
	case docMetadata:
		var uris *OAuthURIs
		uris, err = parseCapabilityStatement(resp.Body)
		doc.setURIs(uris)
	case docUDAP:
		doc.udap, err = parseUDAPMetadata(resp.Body)
	case docSMART:
		doc.smart, err = parseSMARTConfiguration(resp.Body)
	}
	if err != nil {
		return nil, &Error{URL: u, StatusCode: resp.StatusCode, Err: fmt.Errorf("parse %s: %w", kind, err)}
	}
	doc.fetchedAt = d.now()
	return doc, nil
}

// tokenURIs are the oauth-uris a cached CapabilityStatement keeps: those
// evaluate reads. Authorize, revoke, manage and introspect are used and
// reported nowhere, so thousands of cached documents do not hold them.
type tokenURIs struct {
	Token, CarequalityToken, CarequalityRegister, Register string
}
