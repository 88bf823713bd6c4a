package proxy

import (
	stdjson "encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// pagingPartner serves a searchset of 4 pages under /r4/tenant-guid, in
// JSON or XML (_format=xml), with self, first, previous, next and last
// links, HAPI style (base?_getpages=...) and with encoded query values.
// It records the raw request URIs it saw.
type pagingPartner struct {
	mu   sync.Mutex
	seen []string
}

const pagingBase = "https://fhir.partner.example/r4/tenant-guid"

func (pp *pagingPartner) link(page int, xmlFmt bool) string {
	q := "_getpages=abc%2Bdef%3D%3D&_getpagesoffset=" + strconv.Itoa(page*2) + "&name=J%C3%B6rg%20M&code=http%3A%2F%2Floinc.org%7C1234-5"
	if xmlFmt {
		q += "&_format=xml"
	}
	return pagingBase + "?" + q
}

func (pp *pagingPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pp.mu.Lock()
	pp.seen = append(pp.seen, r.URL.RequestURI())
	pp.mu.Unlock()
	q := r.URL.Query()
	page := 0
	if v := q.Get("_getpagesoffset"); v != "" {
		n, _ := strconv.Atoi(v)
		page = n / 2
	}
	xmlFmt := q.Get("_format") == "xml"
	links := [][2]string{{"self", pp.link(page, xmlFmt)}, {"first", pp.link(0, xmlFmt)}, {"last", pp.link(3, xmlFmt)}}
	if page > 0 {
		links = append(links, [2]string{"previous", pp.link(page-1, xmlFmt)})
	}
	if page < 3 {
		links = append(links, [2]string{"next", pp.link(page+1, xmlFmt)})
	}
	if xmlFmt {
		w.Header().Set("Content-Type", "application/fhir+xml;charset=UTF-8")
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/>`)
		for _, l := range links {
			fmt.Fprintf(&b, `<link><relation value="%s"/><url value="%s"/></link>`, l[0], strings.ReplaceAll(l[1], "&", "&amp;"))
		}
		fmt.Fprintf(&b, `<entry><fullUrl value="%s/Patient/p%d"/></entry></Bundle>`, pagingBase, page)
		io.WriteString(w, b.String())
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json;charset=UTF-8")
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"searchset","link":[`)
	for i, l := range links {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"relation":%q,"url":%q}`, l[0], l[1])
	}
	fmt.Fprintf(&b, `],"entry":[{"fullUrl":"%s/Patient/p%d"}]}`, pagingBase, page)
	io.WriteString(w, b.String())
}

type pageLinks map[string]string

func parseLinksJSON(t *testing.T, body string) pageLinks {
	t.Helper()
	var b struct {
		Link []struct{ Relation, URL string }
	}
	if err := jsonUnmarshal([]byte(body), &b); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	out := pageLinks{}
	for _, l := range b.Link {
		out[l.Relation] = l.URL
	}
	return out
}

func parseLinksXML(t *testing.T, body string) pageLinks {
	t.Helper()
	var b struct {
		Link []struct {
			Relation struct {
				Value string `xml:"value,attr"`
			} `xml:"relation"`
			URL struct {
				Value string `xml:"value,attr"`
			} `xml:"url"`
		} `xml:"link"`
	}
	if err := xml.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("not XML: %v: %s", err, body)
	}
	out := pageLinks{}
	for _, l := range b.Link {
		out[l.Relation.Value] = l.URL.Value
	}
	return out
}

func TestPagingRoundTrip(t *testing.T) {
	for _, xmlFmt := range []bool{false, true} {
		t.Run(fmt.Sprintf("xml=%v", xmlFmt), func(t *testing.T) {
			pp := &pagingPartner{}
			w := newFwdWorld(t, nil, pp)
			tn := publicTenant(t, "1.2.3", pagingBase)
			target := "http://gw.local/fhir/1.2.3/Patient?name=J%C3%B6rg%20M"
			if xmlFmt {
				target += "&_format=xml"
			}
			const public = "http://gw.local/fhir/1.2.3"
			for page := 0; page < 4; page++ {
				rr := w.doFor(tn, http.MethodGet, target, nil, nil)
				if rr.Code != 200 {
					t.Fatalf("page %d: %d %s", page, rr.Code, rr.Body)
				}
				body := rr.Body.String()
				if strings.Contains(body, "partner.example") {
					t.Errorf("page %d: partner URL left: %s", page, body)
				}
				var links pageLinks
				if xmlFmt {
					links = parseLinksXML(t, body)
				} else {
					links = parseLinksJSON(t, body)
				}
				for rel, u := range links {
					if !strings.HasPrefix(u, public+"?") {
						t.Errorf("page %d: %s = %q", page, rel, u)
					}
				}
				if page > 0 {
					// the request the partner saw for this page is exactly its own link
					pp.mu.Lock()
					got := pp.seen[len(pp.seen)-1]
					pp.mu.Unlock()
					want := strings.TrimPrefix(pp.link(page, xmlFmt), "https://fhir.partner.example")
					if got != want {
						t.Errorf("page %d: partner saw %q, want %q", page, got, want)
					}
				}
				next, ok := links["next"]
				if page == 3 {
					if ok {
						t.Errorf("next on last page")
					}
					break
				}
				if !ok {
					t.Fatalf("page %d: no next: %s", page, body)
				}
				target = next
			}
		})
	}
}

func jsonUnmarshal(b []byte, v any) error { return jsonUnmarshalImpl(b, v) }

var jsonUnmarshalImpl = func(b []byte, v any) error { return stdjson.Unmarshal(b, v) }
