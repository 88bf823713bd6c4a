package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// R4 JSON shapes of a search result.
type (
	bundle struct {
		ResourceType string        `json:"resourceType"`
		ID           string        `json:"id"`
		Meta         meta          `json:"meta"`
		Type         string        `json:"type"`
		Total        int           `json:"total"`
		Link         []bundleLink  `json:"link"`
		Entry        []bundleEntry `json:"entry,omitempty"`
	}

	bundleLink struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}

	bundleEntry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   entrySearch     `json:"search"`
	}

	entrySearch struct {
		Mode string `json:"mode"`
	}
)

// handleFHIR serves read ({FHIRBase}/{type}/{id}) and search
// ({FHIRBase}/{type}?...) for Patient and Observation. Like Cerner it
// wants a bearer token it issued and an explicit JSON Accept header.
func (s *Sandbox) handleFHIR(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, r, http.MethodGet)
		return
	}
	if !acceptsJSON(r, explicit) {
		writeNotAcceptable(w, explicit)
		return
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	switch {
	case typ == "Patient" && id != "":
		if p, ok := s.data.patientByID[id]; ok {
			writeBody(w, http.StatusOK, mediaFHIRJSON, p.raw)
			return
		}
	case typ == "Observation" && id != "":
		if o, ok := s.data.obsByID[id]; ok {
			writeBody(w, http.StatusOK, mediaFHIRJSON, o.raw)
			return
		}
	case typ == "Patient":
		s.searchPatients(w, r)
		return
	case typ == "Observation":
		s.searchObservations(w, r)
		return
	default:
		writeOutcome(w, http.StatusNotFound, issueNotSupported, "resource type "+typ+" is not supported by the sandbox")
		return
	}
	writeOutcome(w, http.StatusNotFound, issueNotFound, typ+"/"+id+" was not found")
}

// authorized checks the bearer token and answers 401 if it is missing,
// unknown or expired.
func (s *Sandbox) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	var msg string
	switch {
	case !strings.EqualFold(scheme, "Bearer") || token == "":
		msg = "a bearer access token is required"
	default:
		if _, ok := s.state.lookup(token, time.Now()); ok {
			return true
		}
		msg = "the access token is unknown or expired"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token", error_description="`+msg+`"`)
	writeOutcome(w, http.StatusUnauthorized, issueLogin, msg)
	return false
}

// searchPatients answers Patient?name=…&_id=…: name matches a substring of
// a family or given name, ignoring case. Repeated parameters must all
// match; comma separated values are alternatives.
func (s *Sandbox) searchPatients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	names, nameOK := orValues(q, "name")
	ids, idOK := orValues(q, "_id")
	if !nameOK || !idOK {
		writeOutcome(w, http.StatusBadRequest, issueInvalid, "search parameters name and _id need a value")
		return
	}
	if len(names) == 0 && len(ids) == 0 {
		writeOutcome(w, http.StatusBadRequest, issueRequired, "Patient search needs name or _id")
		return
	}
	var entries []bundleEntry
	for _, p := range s.data.patients {
		if matchAll(ids, func(v string) bool { return v == p.id }) &&
			matchAll(names, func(v string) bool { return p.matchesName(strings.ToLower(v)) }) {
			entries = append(entries, s.entry("Patient", p.id, p.raw))
		}
	}
	s.writeSearchset(w, r, "Patient", url.Values{"name": q["name"], "_id": q["_id"]}, entries)
}

// searchObservations answers Observation?patient=<id> and
// Observation?subject=Patient/<id>.
func (s *Sandbox) searchObservations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	patients, patientOK := orValues(q, "patient")
	subjects, subjectOK := orValues(q, "subject")
	if !patientOK || !subjectOK {
		writeOutcome(w, http.StatusBadRequest, issueInvalid, "search parameters patient and subject need a value")
		return
	}
	if len(patients) == 0 && len(subjects) == 0 {
		writeOutcome(w, http.StatusBadRequest, issueRequired, "Observation search needs patient or subject")
		return
	}
	var entries []bundleEntry
	for _, o := range s.data.observations {
		isSubject := func(ref string) bool { return patientRefID(ref) == o.patientID }
		if matchAll(patients, isSubject) && matchAll(subjects, isSubject) {
			entries = append(entries, s.entry("Observation", o.id, o.raw))
		}
	}
	s.writeSearchset(w, r, "Observation", url.Values{"patient": q["patient"], "subject": q["subject"]}, entries)
}

// entry is a search match.
func (s *Sandbox) entry(typ, id string, raw json.RawMessage) bundleEntry {
	return bundleEntry{
		FullURL:  s.FHIRBase + "/" + typ + "/" + id,
		Resource: raw,
		Search:   entrySearch{Mode: "match"},
	}
}

// Paging limits: _count above maxCount is lowered to it, as servers may.
const maxCount = 100

// page is the slice of the matches a search answers with: _count
// entries from _offset on. _offset is the sandbox's own paging
// parameter, like Cerner's opaque pageContext, found in next/previous
// links; a search without _count answers everything on one page.
type page struct {
	count, offset int
	paged         bool
}

// parsePage reads _count and _offset. ok is false (and an
// OperationOutcome was written) when they are not non-negative integers.
func parsePage(w http.ResponseWriter, q url.Values) (page, bool) {
	var p page
	for _, k := range []string{"_count", "_offset"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeOutcome(w, http.StatusBadRequest, issueInvalid, "search parameter "+k+" must be a non-negative integer")
			return page{}, false
		}
		if k == "_count" {
			p.count, p.paged = min(n, maxCount), true
		} else {
			p.offset = n
		}
	}
	return p, true
}

// writeSearchset answers a search with a searchset Bundle of one page of
// entries: total counts every match; link carries self and, when paged,
// first, previous and next as absolute URLs on the sandbox base that
// repeat the parameters used (nil values are left out).
func (s *Sandbox) writeSearchset(w http.ResponseWriter, r *http.Request, typ string, used url.Values, entries []bundleEntry) {
	pg, ok := parsePage(w, r.URL.Query())
	if !ok {
		return
	}
	total := len(entries)
	pageURL := func(offset int) string {
		v := url.Values{}
		for k, vs := range used {
			if vs != nil {
				v[k] = vs
			}
		}
		if pg.paged {
			v.Set("_count", strconv.Itoa(pg.count))
			if offset > 0 {
				v.Set("_offset", strconv.Itoa(offset))
			}
		}
		return s.FHIRBase + "/" + typ + "?" + v.Encode()
	}
	links := []bundleLink{{Relation: "self", URL: pageURL(pg.offset)}}
	if pg.paged {
		entries = entries[min(pg.offset, total):min(pg.offset+pg.count, total)]
		links = append(links, bundleLink{Relation: "first", URL: pageURL(0)})
		if pg.offset > 0 && pg.count > 0 {
			links = append(links, bundleLink{Relation: "previous", URL: pageURL(max(pg.offset-pg.count, 0))})
		}
		if pg.count > 0 && pg.offset+pg.count < total {
			links = append(links, bundleLink{Relation: "next", URL: pageURL(pg.offset + pg.count)})
		}
	}
	writeJSON(w, http.StatusOK, mediaFHIRJSON, bundle{
		ResourceType: "Bundle",
		ID:           requestID(w),
		Meta:         meta{LastUpdated: time.Now().UTC().Format(time.RFC3339)},
		Type:         "searchset",
		Total:        total,
		Link:         links,
		Entry:        entries,
	})
}

// orValues splits each occurrence of parameter name into its comma
// separated alternatives. ok is false if an occurrence has no value.
func orValues(q url.Values, name string) (groups [][]string, ok bool) {
	for _, v := range q[name] {
		var alts []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				alts = append(alts, a)
			}
		}
		if len(alts) == 0 {
			return nil, false
		}
		groups = append(groups, alts)
	}
	return groups, true
}

// matchAll reports whether every group has an alternative that matches.
func matchAll(groups [][]string, match func(string) bool) bool {
	for _, alts := range groups {
		found := false
		for _, a := range alts {
			if match(a) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// patientRefID returns the id of a patient reference: "Patient/<id>", an
// absolute URL ending in it, or a bare id.
func patientRefID(ref string) string {
	if i := strings.LastIndex(ref, "Patient/"); i >= 0 {
		return ref[i+len("Patient/"):]
	}
	return ref
}
