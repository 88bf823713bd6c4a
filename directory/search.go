package directory

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cqgate/cqgate/internal/failure"
)

// ErrInvalidQuery is returned (wrapped) for a search the directory is not
// asked: a malformed name or a page cursor that is not one this client
// returned (tampered, truncated, or from the other flavour). A malformed
// ID wraps ErrInvalidOID instead.
var ErrInvalidQuery = failure.New(failure.Invalid, "directory: invalid search")

// Page sizes of a search.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

const (
	// maxNameLen bounds Query.Name in bytes.
	maxNameLen = 256
	// maxCursorLen bounds a page cursor's length.
	maxCursorLen = 8192
	// maxSTU3Start bounds the STU3 paging offset.
	maxSTU3Start = 100_000_000
)

// Query is a directory search for Organizations. Empty fields do not
// restrict the search.
type Query struct {
	// Name matches organization names (the directory's "name" search:
	// case-insensitive, starting with).
	Name string
	// ID is an OID, bare or "urn:oid:", searched as _id.
	ID string
	// Active, when set, restricts the search to active (or inactive)
	// organizations.
	Active *bool
	// Count is the page size: 0 or less means DefaultPageSize, more than
	// MaxPageSize means MaxPageSize.
	Count int
	// Page is the cursor a previous SearchResult returned in Next; it
	// asks for that next page and, as it carries the whole query, the
	// other fields are then ignored. Empty means the first page.
	Page string
}

// SearchResult is one page of a search.
type SearchResult struct {
	// Organizations are the page's matches in the directory's order.
	Organizations []*Organization
	// Total is the number of matches of the whole search, -1 when the
	// directory does not say.
	Total int
	// Next is the cursor for the next page (Query.Page), "" on the last
	// page. It is opaque and safe to hand to callers: it never holds
	// the API key.
	Next string
}

// Searcher searches a directory for Organizations.
type Searcher interface {
	Search(ctx context.Context, q Query) (*SearchResult, error)
}

// search is a Query checked and normalised: a canonical OID, a trimmed
// name, a clamped count.
type search struct {
	name   string
	id     string
	active *bool
	count  int
	start  int // STU3 paging offset
}

// check validates q (not its Page).
func (q Query) check() (search, error) {
	s := search{name: strings.TrimSpace(q.Name), active: q.Active, count: q.Count}
	if q.ID != "" {
		oid, err := ParseOID(q.ID)
		if err != nil {
			return search{}, err
		}
		s.id = oid
	}
	if err := checkName(s.name); err != nil {
		return search{}, err
	}
	switch {
	case s.count <= 0:
		s.count = DefaultPageSize
	case s.count > MaxPageSize:
		s.count = MaxPageSize
	}
	return s, nil
}

// checkName rejects names that are too long, not UTF-8 or hold control
// characters.
func checkName(name string) error {
	switch {
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: name is longer than %d bytes", ErrInvalidQuery, maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalidQuery)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: name %s holds control characters", ErrInvalidQuery, quoteInput(name))
	}
	return nil
}

// values returns the search parameters (without paging offset).
func (s search) values() url.Values {
	v := url.Values{"_count": {strconv.Itoa(s.count)}}
	if s.name != "" {
		v.Set("name", s.name)
	}
	if s.id != "" {
		v.Set("_id", s.id)
	}
	if s.active != nil {
		v.Set("active", strconv.FormatBool(*s.active))
	}
	return v
}

// Search GETs {BaseURL}/Organization?name=&_id=&active=&_count= (the key
// as for Organization) and parses the searchset Bundle. The next page is
// the Bundle's link with relation "next", followed only when it stays on
// the directory's scheme, host and base path: a next link elsewhere fails
// the search rather than send the key there. A malformed ID wraps
// ErrInvalidOID, a bad name or cursor ErrInvalidQuery, both before any
// request.
func (c *R4Client) Search(ctx context.Context, q Query) (*SearchResult, error) {
	base, err := parseBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	var u *url.URL
	if q.Page != "" {
		if u, err = decodeR4Cursor(base, q.Page); err != nil {
			return nil, err
		}
	} else {
		s, err := q.check()
		if err != nil {
			return nil, err
		}
		u = base.JoinPath("Organization")
		u.RawQuery = s.values().Encode()
	}
	k, err := c.placement(ctx)
	if err != nil {
		return nil, err
	}
	req := k.request(u, acceptJSON)
	t := c.transport()
	resp, err := t.get(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := t.usable(req, resp); err != nil {
		return nil, err
	}
	b, err := parseR4Bundle(resp.Body)
	if err != nil {
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("parse R4 bundle: %w", scrub(err, k.key))}
	}
	res := &SearchResult{Organizations: b.Organizations, Total: b.Total}
	if b.Next != "" {
		if res.Next, err = encodeR4Cursor(base, u, b.Next, k.key); err != nil {
			return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: scrub(err, k.key)}
		}
	}
	return res, nil
}

// Search GETs {BaseURL}/Organization?_format=xml&apikey=<key>&_id=&name=&active=&_count=
// (and _start=<offset> for later pages) and parses the searchset Bundle.
// Pages are counted by offset: there is a next page while the Bundle's
// total says so or, without a total, while pages come back full. Errors
// are as R4Client.Search's.
func (c *STU3Client) Search(ctx context.Context, q Query) (*SearchResult, error) {
	base, err := parseBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	var s search
	if q.Page != "" {
		s, err = decodeSTU3Cursor(q.Page)
	} else {
		s, err = q.check()
	}
	if err != nil {
		return nil, err
	}
	k, err := c.placement(ctx)
	if err != nil {
		return nil, err
	}
	u := base.JoinPath("Organization")
	v := s.values()
	v.Set("_format", "xml")
	if s.start > 0 {
		v.Set("_start", strconv.Itoa(s.start))
	}
	u.RawQuery = v.Encode()
	req := k.request(u, acceptXML)
	t := c.transport()
	resp, err := t.get(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := t.usable(req, resp); err != nil {
		return nil, err
	}
	b, err := parseSTU3BundleXML(resp.Body)
	if err != nil {
		return nil, &Error{URL: req.redactedURL, StatusCode: resp.StatusCode, Err: fmt.Errorf("parse STU3 bundle XML: %w", scrub(err, k.key))}
	}
	res := &SearchResult{Organizations: b.Organizations, Total: b.Total}
	n := len(b.Organizations)
	more := n >= s.count
	if b.Total >= 0 {
		more = s.start+n < b.Total
	}
	if n > 0 && more && s.start+n <= maxSTU3Start {
		next := s
		next.start = s.start + n
		res.Next = encodeSTU3Cursor(next)
	}
	return res, nil
}
