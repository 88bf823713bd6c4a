package sandbox

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Directory search paging bounds.
const (
	defaultSearchCount = 50
	maxSearchCount     = 1000
)

// R4 searchset Bundle shapes.
type (
	searchBundle struct {
		ResourceType string     `json:"resourceType"`
		Type         string     `json:"type"`
		Total        int        `json:"total"`
		Link         []dirLink  `json:"link"`
		Entry        []dirEntry `json:"entry,omitempty"`
	}

	dirLink struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}

	dirEntry struct {
		FullURL  string         `json:"fullUrl"`
		Resource organization   `json:"resource"`
		Search   dirEntrySearch `json:"search"`
	}

	dirEntrySearch struct {
		Mode string `json:"mode"`
	}
)

// handleOrganizationSearch serves GET {DirectoryURL}/Organization?name=
// &_id=&active=&_count=&_getpagesoffset= as the R4 directory does: a
// searchset Bundle with a total and a next link while more pages remain.
// name matches the start of the organization's name, case-insensitively
// (FHIR string search); _id the OID, bare or urn:oid:.
func (s *Sandbox) handleOrganizationSearch(w http.ResponseWriter, r *http.Request) {
	if !s.directoryRequestOK(w, r) {
		return
	}
	q := r.URL.Query()
	count, offset := defaultSearchCount, 0
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeOutcome(w, http.StatusBadRequest, issueInvalid, "_count must be a positive integer")
			return
		}
		count = min(n, maxSearchCount)
	}
	if v := q.Get("_getpagesoffset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeOutcome(w, http.StatusBadRequest, issueInvalid, "_getpagesoffset must be a non-negative integer")
			return
		}
		offset = n
	}
	var active *bool
	if v := q.Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeOutcome(w, http.StatusBadRequest, issueInvalid, "active must be true or false")
			return
		}
		active = &b
	}

	var matches []organization
	for _, org := range []organization{s.organization()} {
		if name := q.Get("name"); name != "" && !strings.HasPrefix(strings.ToLower(org.Name), strings.ToLower(strings.TrimSpace(name))) {
			continue
		}
		if id := strings.TrimPrefix(q.Get("_id"), "urn:oid:"); id != "" && id != org.ID {
			continue
		}
		if active != nil && *active != org.Active {
			continue
		}
		matches = append(matches, org)
	}

	self := s.DirectoryURL + "/Organization?" + pageQuery(q, count, offset).Encode()
	b := searchBundle{ResourceType: "Bundle", Type: "searchset", Total: len(matches), Link: []dirLink{{Relation: "self", URL: self}}}
	if end := offset + count; end < len(matches) {
		b.Link = append(b.Link, dirLink{Relation: "next", URL: s.DirectoryURL + "/Organization?" + pageQuery(q, count, end).Encode()})
	}
	for i := offset; i < len(matches) && i < offset+count; i++ {
		b.Entry = append(b.Entry, dirEntry{
			FullURL: s.DirectoryURL + "/Organization/" + matches[i].ID, Resource: matches[i], Search: dirEntrySearch{Mode: "match"},
		})
	}
	writeJSON(w, http.StatusOK, mediaFHIRJSON, b)
}

// pageQuery is the search's query for one page, without the API key.
func pageQuery(q url.Values, count, offset int) url.Values {
	out := url.Values{}
	for _, k := range []string{"name", "_id", "active"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	out.Set("_count", strconv.Itoa(count))
	if offset > 0 {
		out.Set("_getpagesoffset", strconv.Itoa(offset))
	}
	return out
}
