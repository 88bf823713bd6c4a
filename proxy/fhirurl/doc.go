// Package fhirurl maps a partner's FHIR URLs to cqgate's own and rewrites
// them in responses as they stream through, so that every URL cqgate
// hands back leads back to cqgate: a search Bundle's link[].url and
// entry[].fullUrl, entry[].response.location, absolute references, the
// attribute values of a narrative's XHTML (Narrative.div: <a href>,
// <img src>, cite, any attribute but a namespace declaration), a bulk
// export manifest's output[].url, error[].url, deleted[].url and
// link[].url, the Location and Content-Location headers (absolute URLs,
// network-path and absolute-path references), and the targets of a Link
// header.
//
// A Mapper says what maps: an absolute URL whose scheme, host and port
// (compared without case, default ports normalized) are the partner
// base's and whose path continues the base path on a segment boundary,
// with no "." or ".." segment after it (also written %2e): removing dot
// segments would take "{base}/../x" out of the base, and its mapped form
// out of /fhir/{oid}/. Everything else, including URLs on other hosts,
// is left as it is.
//
// JSONWriter and XMLWriter are streaming rewriters: io.Writers that
// follow only the lexical structure (where JSON strings, XML tags and
// attribute values start and end), decode each candidate string
// (JSON escapes, XML entities), map it and write it back encoded. All
// other bytes pass through as they came; the output is byte for byte the
// input when nothing maps; valid input stays valid; invalid input is
// passed through, never refused. Memory is bounded by DefaultMaxToken:
// a string longer than that is passed through unexamined (URLs are
// short; long strings are attachments), and so is an attribute value.
//
// Narratives: in XML the XHTML is markup, and XMLWriter maps its
// attribute values like any other. In JSON it is one string, the value
// of a "div" key; JSONWriter reads that string (of any length, cut
// anywhere between Writes) as XHTML under its JSON escapes, with
// XMLWriter's lexer, and maps each attribute value as XMLWriter would
// (JSON and XML escapes undone, mapped, both written again), so the two
// forms of a resource come back alike. The rule is the key: a string
// that is the value of a "div" key (the only XHTML-typed element in
// FHIR; the key escaped or not) is XHTML, and no other string is, even
// one holding href="…"; a "div" value that is not a string is not
// special. The narrative's text, comments and anything else in it pass
// byte for byte, a URL in its text too (as in XML: text, not a link).
// The bound on an attribute value applies to it as JSON spells it,
// escapes included: a value within DefaultMaxToken in XML may exceed it
// in JSON and then pass unmapped. A narrative none of whose attribute
// values can map (no partner host after a "//", no character reference,
// only the \u escapes encoders write) passes without being read as XHTML.
//
// Rewriter puts it together for a reverse proxy's response hook (cqgate's
// proxy calls it from modifyResponse; with an httputil.ReverseProxy it
// would be ModifyResponse):
//
//	rw, err := fhirurl.NewRewriter(partnerBase, publicBase)
//	...
//	ModifyResponse: func(resp *http.Response) error {
//		_, err := rw.Body(resp) // headers fixed, body wrapped
//		// ErrEncoding: a coding not asked for; the body is not rewritten
//		// (cqgate refuses it: its partner URLs would reach the caller).
//		return err
//	}
//
// What is deliberately left alone: relative references (they resolve
// against the URL the caller used, which already names cqgate), NDJSON
// bodies (bulk data files), 206 partial bodies, and URLs whose path spells
// the base path with different percent-encoding. Canonical URLs that
// happen to lie under the tenant's base are rewritten like any other URL;
// through cqgate they still name the same resource.
package fhirurl
