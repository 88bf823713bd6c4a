package directory

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeOrg is one organization of a fake directory.
type fakeOrg struct {
	oid, name string
	active    bool
}

// fakeOrgs returns n organizations 2.999.1.1 ... 2.999.1.n; every third
// is inactive.
func fakeOrgs(n int) []fakeOrg {
	orgs := make([]fakeOrg, n)
	for i := range orgs {
		orgs[i] = fakeOrg{oid: "2.999.1." + strconv.Itoa(i+1), name: "Example Org " + strconv.Itoa(i+1), active: (i+1)%3 != 0}
	}
	return orgs
}

// fakeDirectory is an httptest directory server in either flavour that
// answers searches over orgs and records every request.
type fakeDirectory struct {
	*httptest.Server
	r4       bool
	basePath string
	orgs     []fakeOrg

	mu       sync.Mutex
	requests []*http.Request
	// nextLink, when set, rewrites the R4 next link the server would
	// send (its argument).
	nextLink func(next string) string
	// noTotal leaves Bundle.total out.
	noTotal bool
	// pages holds R4 paging state by token.
	pages map[string][]fakeOrg
}

func newFakeDirectory(t *testing.T, r4 bool, orgs []fakeOrg) *fakeDirectory {
	t.Helper()
	fd := &fakeDirectory{r4: r4, orgs: orgs, pages: make(map[string][]fakeOrg)}
	fd.basePath = "/fhir-stu3/1.0.1"
	if r4 {
		fd.basePath = "/fhir"
	}
	fd.Server = httptest.NewServer(http.HandlerFunc(fd.serve))
	t.Cleanup(fd.Close)
	return fd
}

// client returns a client of the server's flavour with the test key.
func (fd *fakeDirectory) client() Searcher {
	if fd.r4 {
		return &R4Client{BaseURL: fd.URL + fd.basePath, APIKey: testKey, HTTPClient: fd.Client(), Retry: noSleep}
	}
	return &STU3Client{BaseURL: fd.URL + fd.basePath, APIKey: testKey, HTTPClient: fd.Client(), Retry: noSleep}
}

func (fd *fakeDirectory) recorded() []*http.Request {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return append([]*http.Request(nil), fd.requests...)
}

func (fd *fakeDirectory) serve(w http.ResponseWriter, r *http.Request) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.requests = append(fd.requests, r.Clone(r.Context()))
	q := r.URL.Query()
	key := q.Get("apikey")
	if fd.r4 {
		key = strings.TrimPrefix(r.Header.Get("Authorization"), "api-key ")
		if k := q.Get("_apiKey"); k != "" {
			key = k
		}
	}
	if key != testKey {
		http.Error(w, "bad key", http.StatusForbidden)
		return
	}
	if fd.r4 {
		fd.serveR4(w, r, q)
	} else {
		fd.serveSTU3(w, r, q)
	}
}

// match filters orgs by the standard search parameters.
func (fd *fakeDirectory) match(q url.Values) []fakeOrg {
	var out []fakeOrg
	for _, o := range fd.orgs {
		if n := q.Get("name"); n != "" && !strings.HasPrefix(strings.ToLower(o.name), strings.ToLower(n)) {
			continue
		}
		if id := q.Get("_id"); id != "" && id != o.oid {
			continue
		}
		if a := q.Get("active"); a != "" && a != strconv.FormatBool(o.active) {
			continue
		}
		out = append(out, o)
	}
	return out
}

func (fd *fakeDirectory) serveR4(w http.ResponseWriter, r *http.Request, q url.Values) {
	count, _ := strconv.Atoi(q.Get("_count"))
	var (
		matches []fakeOrg
		offset  int
	)
	switch {
	case r.URL.Path == fd.basePath+"/Organization" && q.Get("_getpages") == "":
		matches = fd.match(q)
		token := fmt.Sprintf("tok%d", len(fd.pages))
		fd.pages[token] = matches
		q.Set("_getpages", token)
	case r.URL.Path == fd.basePath && q.Get("_getpages") != "":
		var ok bool
		if matches, ok = fd.pages[q.Get("_getpages")]; !ok {
			http.Error(w, "unknown page", http.StatusGone)
			return
		}
		offset, _ = strconv.Atoi(q.Get("_getpagesoffset"))
	default:
		http.Error(w, "no such search", http.StatusNotFound)
		return
	}
	if count <= 0 {
		count = 20
	}
	page := matches[min(offset, len(matches)):min(offset+count, len(matches))]
	type link struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	}
	bundle := map[string]any{"resourceType": "Bundle", "type": "searchset"}
	if !fd.noTotal {
		bundle["total"] = len(matches)
	}
	links := []link{{"self", "http://" + r.Host + r.URL.RequestURI()}}
	if offset+count < len(matches) {
		next := "http://" + r.Host + fd.basePath + "?_getpages=" + q.Get("_getpages") +
			"&_getpagesoffset=" + strconv.Itoa(offset+count) + "&_count=" + strconv.Itoa(count) + "&_bundletype=searchset"
		if fd.nextLink != nil {
			next = fd.nextLink(next)
		}
		links = append(links, link{"next", next})
	}
	bundle["link"] = links
	var entries []any
	for _, o := range page {
		entries = append(entries, map[string]any{
			"fullUrl":  "http://" + r.Host + fd.basePath + "/Organization/" + o.oid,
			"resource": json.RawMessage(fmt.Sprintf(`{"resourceType":"Organization","id":%q,"name":%q,"active":%t,"contained":[{"resourceType":"Endpoint","id":"f","extension":[{"url":%q,"valueString":"4.0.1"}],"connectionType":{"code":"hl7-fhir-rest"},"status":"active","address":"https://fhir.example.test/%s"}]}`, o.oid, o.name, o.active, extR4Version, o.oid)),
			"search":   map[string]string{"mode": "match"},
		})
	}
	bundle["entry"] = entries
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(bundle)
}

func (fd *fakeDirectory) serveSTU3(w http.ResponseWriter, r *http.Request, q url.Values) {
	if r.URL.Path != fd.basePath+"/Organization" || q.Get("_format") != "xml" {
		http.Error(w, "no such search", http.StatusNotFound)
		return
	}
	matches := fd.match(q)
	count, _ := strconv.Atoi(q.Get("_count"))
	start, _ := strconv.Atoi(q.Get("_start"))
	if count <= 0 {
		count = 20
	}
	page := matches[min(start, len(matches)):min(start+count, len(matches))]
	var b strings.Builder
	b.WriteString(`<Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/>`)
	if !fd.noTotal {
		fmt.Fprintf(&b, `<total value="%d"/>`, len(matches))
	}
	for _, o := range page {
		fmt.Fprintf(&b, `<entry><resource><Organization><contained><Endpoint><id value="f"/><extension url=%q><extension url="Transaction"><valueString value="FHIR REST"/></extension><extension url="Version"><valueString value="STU3"/></extension></extension><address value="https://fhir.example.test/%s"/></Endpoint></contained><identifier><system value="urn:ietf:rfc:3986"/><value value="urn:oid:%s"/></identifier><active value="%t"/><name value="%s"/></Organization></resource><search><mode value="match"/></search></entry>`,
			extSTU3MainSPHD3, o.oid, o.oid, o.active, xmlEscape(o.name))
	}
	b.WriteString(`</Bundle>`)
	w.Header().Set("Content-Type", "application/fhir+xml")
	_, _ = w.Write([]byte(b.String()))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
