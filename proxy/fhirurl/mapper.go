package fhirurl

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Mapper maps absolute URLs under a partner's FHIR base to the same
// resource under cqgate's public base for that organization. It is
// immutable and safe for concurrent use. Its strings share one backing
// array (see init), so a Mapper is one pointer-holding object and one
// pointer-free one, whatever the number of organizations kept.
type Mapper struct {
	scheme      string // "http" or "https", lower case
	host        string // lower case, default port removed
	hostname    string // host without port, lower case
	port        int    // effective port
	defaultPort int    // the scheme's default port
	path        string // partner base path without trailing "/", may be ""
	public      string // public base without trailing "/"
	prefixLen   int    // len(scheme + "://")
	minLen      int    // shortest string that can match
	publicJSON  string // public, escaped for a JSON string
	publicXML   string // public, escaped for an XML attribute value
	exact       string // scheme://host/path as normalized: the usual spelling
}

// NewMapper returns a Mapper from partnerBase (e.g.
// "https://fhir.partner.example/r4/tenant-guid") to publicBase (e.g.
// "https://cqgate.internal/fhir/2.16.840.1"). Both must be absolute http
// or https URLs without user info, query or fragment.
func NewMapper(partnerBase, publicBase string) (*Mapper, error) {
	m := new(Mapper)
	if err := m.init(partnerBase, publicBase); err != nil {
		return nil, err
	}
	return m, nil
}

// init sets m up as NewMapper describes. All of m's strings are parts of
// one string built here, exact then public and its two escaped forms, so
// that m keeps no part of its arguments and a Rewriter holding m by value
// is two allocations in all.
func (m *Mapper) init(partnerBase, publicBase string) error {
	p, err := parseBase("partner base", partnerBase)
	if err != nil {
		return err
	}
	q, err := parseBase("public base", publicBase)
	if err != nil {
		return err
	}
	public := q.Scheme + "://" + q.Host + q.Path
	publicJSON := appendJSONContent(nil, public)
	publicXML := appendAttr(nil, public)
	var b strings.Builder
	b.Grow(len(p.Scheme) + len("://") + len(p.Host) + len(p.Path) + len(public) + len(publicJSON) + len(publicXML))
	b.WriteString(p.Scheme)
	b.WriteString("://")
	b.WriteString(p.Host)
	b.WriteString(p.Path)
	b.WriteString(public)
	b.Write(publicJSON)
	b.Write(publicXML)
	all := b.String()

	m.prefixLen = len(p.Scheme) + len("://")
	m.minLen = m.prefixLen + len(p.Host)
	end := m.minLen + len(p.Path)
	m.scheme = all[:len(p.Scheme)]
	m.host = all[m.prefixLen:m.minLen]
	m.path = all[m.minLen:end]
	m.exact = all[:end]
	all = all[end:]
	m.public, all = all[:len(public)], all[len(public):]
	m.publicJSON, m.publicXML = all[:len(publicJSON)], all[len(publicJSON):]
	var hostname string
	hostname, m.port, m.defaultPort = splitHost(m.scheme, m.host)
	m.hostname = m.host[:len(hostname)]
	return nil
}

// parseBase checks and normalizes a base URL: scheme and host in lower
// case, default port removed, no trailing "/".
func parseBase(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fhirurl: %s: %w", what, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, fmt.Errorf("fhirurl: %s %q is not an http or https URL", what, raw)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("fhirurl: %s %q has no host", what, raw)
	case u.User != nil:
		return nil, fmt.Errorf("fhirurl: %s %q carries user info", what, raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("fhirurl: %s %q has a query or fragment", what, raw)
	}
	host, ok := normalizeHost(scheme, u.Host)
	if !ok {
		return nil, fmt.Errorf("fhirurl: %s %q has an invalid port", what, raw)
	}
	path := u.EscapedPath()
	path = strings.TrimRight(path, "/")
	return &url.URL{Scheme: scheme, Host: host, Path: path}, nil
}

// splitHost splits a normalized host[:port] into the host name and the
// effective port.
func splitHost(scheme, host string) (string, int, int) {
	def := 80
	if scheme == "https" {
		def = 443
	}
	name, port := host, def
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		name = host[:i]
		port, _ = strconv.Atoi(host[i+1:])
	}
	return name, port, def
}

// normalizeHost lower-cases host[:port] and drops the scheme's default
// port. ok is false when the port is not all digits.
func normalizeHost(scheme, hostport string) (string, bool) {
	hostport = strings.ToLower(hostport)
	host, port := hostport, ""
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		host, port = hostport[:i], hostport[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	port = strings.TrimLeft(port, "0")
	switch {
	case port == "" && strings.HasSuffix(hostport, ":"):
		// "host:" means the default port.
	case port == "" && hostport != host:
		return "", false // "host:0"
	case port == "":
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	}
	if port == "" {
		return host, true
	}
	return host + ":" + port, true
}

// Map returns s under the public base if s is an absolute URL under the
// partner base: same scheme (any case), same host (any case) and port
// (the default port written or not), and a path that equals the base path
// or continues it after a "/"; the rest of the path, the query and the
// fragment are kept as they are. Anything else (other hosts, relative
// references, user info, a path that only shares a prefix such as
// "/r4/tenant-guid2") gives ("", false). Paths are compared as written:
// a percent-encoded spelling of the base path does not match.
func (m *Mapper) Map(s string) (string, bool) {
	rest, ok := cut(m, s)
	if !ok {
		return "", false
	}
	return m.public + rest, true
}

// Matches reports whether Map would map s.
func (m *Mapper) Matches(s string) bool {
	_, ok := cut(m, s)
	return ok
}

// cut returns what follows the partner base in s. It allocates nothing.
func cut[S ~string | ~[]byte](m *Mapper, s S) (S, bool) {
	if len(s) < m.minLen || !hasPrefixFold(s, m.scheme) || string(s[len(m.scheme):m.prefixLen]) != "://" {
		return s[:0], false
	}
	s = s[m.prefixLen:]
	end := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	if !hostMatches(m, s[:end]) {
		return s[:0], false
	}
	rest := s[end:]
	if len(rest) < len(m.path) || string(rest[:len(m.path)]) != m.path {
		return s[:0], false
	}
	rest = rest[len(m.path):]
	if len(rest) > 0 && rest[0] != '/' && rest[0] != '?' && rest[0] != '#' {
		return s[:0], false
	}
	if hasDotSegment(rest) {
		return s[:0], false
	}
	return rest, true
}

// hasDotSegment reports whether the path at the start of rest (up to a
// query or fragment) has a "." or ".." segment, also percent-encoded
// (%2e), segments ending at '/' or at '\\' (which WHATWG URL clients read
// as '/'): removing dot segments (RFC 3986 section 5.2.4), as curl and
// browsers do, would take "{base}/../x" out of the base, and its mapped
// form out of /fhir/{oid}/ (to another organization's route, or past
// cqgate's public path prefix). Such a URL is not under the base, and is
// not mapped.
func hasDotSegment[S ~string | ~[]byte](rest S) bool {
	seg := 0
	for i := 0; i <= len(rest); i++ {
		if i < len(rest) && rest[i] != '/' && rest[i] != '\\' && rest[i] != '?' && rest[i] != '#' {
			continue
		}
		if isDots(rest[seg:i]) {
			return true
		}
		if i == len(rest) || rest[i] != '/' && rest[i] != '\\' {
			return false
		}
		seg = i + 1
	}
	return false
}

// ClientSlashes returns v as a WHATWG URL client (browsers, Node's URL
// and fetch) reads an http(s) URL or reference: every '\\' before the
// query or fragment a '/'. A header value written "\\\\host/..." or
// "..\\x" leads such a client where its slashes would; cqgate maps and
// checks it in that form. v itself when it has no backslash there.
func ClientSlashes(v string) string {
	end := len(v)
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		end = i
	}
	if strings.IndexByte(v[:end], '\\') < 0 {
		return v
	}
	return strings.ReplaceAll(v[:end], `\`, "/") + v[end:]
}

// HasDotSegment reports whether the path at the start of p (up to a
// query or fragment) has a "." or ".." segment, also percent-encoded:
// a reference that, resolved, may climb out of where it seems to lead.
func HasDotSegment(p string) bool { return hasDotSegment(p) }

// isDots reports whether seg is "." or "..", each dot possibly written
// %2e or %2E.
func isDots[S ~string | ~[]byte](seg S) bool {
	n := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case seg[i] == '%' && i+3 <= len(seg) && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		n++
	}
	return n == 1 || n == 2
}

// cutFast is cut, quicker for a URL that spells the partner base as
// normalized (lower case, default port left out), as partners write
// their own URLs: one comparison instead of a walk through the parts.
// Any other spelling is left to cut.
func cutFast(m *Mapper, s []byte) ([]byte, bool) {
	if len(s) >= len(m.exact) && string(s[:len(m.exact)]) == m.exact {
		rest := s[len(m.exact):]
		if len(rest) == 0 || rest[0] == '/' || rest[0] == '?' || rest[0] == '#' {
			if hasDotSegment(rest) {
				return s[:0], false
			}
			return rest, true
		}
	}
	return cut(m, s)
}

// hostMatches reports whether authority (host[:port], no user info) names
// the partner's host and port.
func hostMatches[S ~string | ~[]byte](m *Mapper, authority S) bool {
	host, port := authority, authority[:0]
	for i := len(authority) - 1; i >= 0; i-- {
		if c := authority[i]; c == ':' {
			host, port = authority[:i], authority[i+1:]
			break
		} else if c < '0' || c > '9' {
			break
		}
	}
	if len(host) != len(m.hostname) || !hasPrefixFold(host, m.hostname) {
		return false
	}
	if len(port) == 0 {
		return m.port == m.defaultPort
	}
	n := 0
	for i := 0; i < len(port); i++ {
		if n = n*10 + int(port[i]-'0'); n > 65535 {
			return false
		}
	}
	return n == m.port
}

// hasPrefixFold reports whether s starts with prefix, which is in lower
// case, ignoring ASCII case.
func hasPrefixFold[S ~string | ~[]byte](s S, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// MapHeader maps the value of a Location or Content-Location header: an
// absolute URL as Map does, a network-path reference
// ("//fhir.partner.example/r4/tenant-guid/Patient/1", RFC 3986 section
// 4.2) as the absolute URL it is in the partner base's scheme, and an
// absolute-path reference ("/r4/tenant-guid/Patient/1/_history/2"): the
// caller would resolve the last two against cqgate's URL, the first to
// the partner's host. Relative references without a leading "/"
// ("Patient/1/_history/2") resolve against the request URL, which
// already names cqgate, and are left alone.
func (m *Mapper) MapHeader(v string) (string, bool) {
	v = ClientSlashes(v)
	if out, ok := m.Map(v); ok {
		return out, true
	}
	if strings.HasPrefix(v, "//") {
		return m.Map(m.scheme + ":" + v)
	}
	if !strings.HasPrefix(v, "/") {
		return "", false
	}
	rest, ok := strings.CutPrefix(v, m.path)
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?' && rest[0] != '#') || hasDotSegment(rest) {
		return "", false
	}
	return m.public + rest, true
}

// Under reports whether v is the public base or a URL under it that
// stays under it when its dot segments are removed (no "." or ".."
// segment after the base): a URL cqgate may hand back as leading to the
// organization's own route.
func (m *Mapper) Under(v string) bool {
	rest, ok := strings.CutPrefix(v, m.public)
	return ok && (rest == "" || rest[0] == '/' || rest[0] == '?' || rest[0] == '#') && !hasDotSegment(rest)
}

// PartnerBase returns the normalized partner base.
func (m *Mapper) PartnerBase() string { return m.exact }

// PublicBase returns the normalized public base.
func (m *Mapper) PublicBase() string { return m.public }
