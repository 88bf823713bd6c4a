package directory

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// searchAll follows cursors from q until the last page, returning the
// OIDs found, the totals reported and the cursors seen.
func searchAll(t *testing.T, s Searcher, q Query) (oids []string, totals []int, cursors []string) {
	t.Helper()
	for page := 0; ; page++ {
		if page > 20 {
			t.Fatal("more than 20 pages: the cursor does not advance")
		}
		res, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("page %d: Search: %v", page+1, err)
		}
		for _, o := range res.Organizations {
			oids = append(oids, o.OID)
			if ep, ok := o.FHIREndpoint(); !ok || ep.Address != "https://fhir.example.test/"+o.OID {
				t.Errorf("organization %s: FHIR endpoint %+v, %v", o.OID, ep, ok)
			}
		}
		totals = append(totals, res.Total)
		if res.Next == "" {
			return oids, totals, cursors
		}
		cursors = append(cursors, res.Next)
		q = Query{Page: res.Next}
	}
}

func TestSearchPaging(t *testing.T) {
	active := true
	tests := []struct {
		name       string
		r4         bool
		client     func(fd *fakeDirectory) Searcher
		noTotal    bool
		n          int
		query      Query
		wantOIDs   []string
		wantTotals []int
		// check verifies one recorded request, returning a problem or "".
		check func(i int, r *http.Request) string
	}{
		{
			name:       "R4, key in header: 3 pages",
			r4:         true,
			n:          7,
			query:      Query{Name: "example", Count: 3},
			wantOIDs:   []string{"2.999.1.1", "2.999.1.2", "2.999.1.3", "2.999.1.4", "2.999.1.5", "2.999.1.6", "2.999.1.7"},
			wantTotals: []int{7, 7, 7},
			check: func(i int, r *http.Request) string {
				q := r.URL.Query()
				switch {
				case r.Header.Get("Authorization") != "api-key "+testKey, r.Header.Get("Accept") != "application/fhir+json":
					return "key or Accept header wrong"
				case q.Has("_apiKey"):
					return "key in the query too"
				case i == 0 && (r.URL.Path != "/fhir/Organization" || !sameQuery(q, url.Values{"name": {"example"}, "_count": {"3"}})):
					return "first request " + r.URL.String()
				case i > 0 && (r.URL.Path != "/fhir" || q.Get("_getpages") == "" || q.Get("_count") != "3"):
					return "later request " + r.URL.String()
				}
				return ""
			},
		},
		{
			name: "R4, key in query, active filter",
			r4:   true,
			client: func(fd *fakeDirectory) Searcher {
				return &R4Client{BaseURL: fd.URL + "/fhir/", APIKey: testKey, APIKeyIn: APIKeyInQuery, HTTPClient: fd.Client(), Retry: noSleep}
			},
			n:          9,
			query:      Query{Active: &active, Count: 2},
			wantOIDs:   []string{"2.999.1.1", "2.999.1.2", "2.999.1.4", "2.999.1.5", "2.999.1.7", "2.999.1.8"},
			wantTotals: []int{6, 6, 6},
			check: func(i int, r *http.Request) string {
				q := r.URL.Query()
				switch {
				case r.Header.Get("Authorization") != "", q.Get("_apiKey") != testKey:
					return "key not in the query only: " + r.URL.RawQuery
				case i == 0 && !sameQuery(q, url.Values{"active": {"true"}, "_count": {"2"}, "_apiKey": {testKey}}):
					return "first request " + r.URL.RawQuery
				}
				return ""
			},
		},
		{
			name:       "STU3: 3 pages by offset",
			n:          7,
			query:      Query{Name: "Example Org", ID: "", Count: 3},
			wantOIDs:   []string{"2.999.1.1", "2.999.1.2", "2.999.1.3", "2.999.1.4", "2.999.1.5", "2.999.1.6", "2.999.1.7"},
			wantTotals: []int{7, 7, 7},
			check: func(i int, r *http.Request) string {
				want := url.Values{"name": {"Example Org"}, "_count": {"3"}, "_format": {"xml"}, "apikey": {testKey}}
				if i > 0 {
					want.Set("_start", fmt.Sprint(3*i))
				}
				switch {
				case r.URL.Path != "/fhir-stu3/1.0.1/Organization":
					return "path " + r.URL.Path
				case r.Header.Get("Accept") != "application/fhir+xml", r.Header.Get("Authorization") != "":
					return "headers wrong"
				case !sameQuery(r.URL.Query(), want):
					return fmt.Sprintf("request %d query %s", i, r.URL.RawQuery)
				}
				return ""
			},
		},
		{
			name:       "STU3 without totals: full pages mean more",
			noTotal:    true,
			n:          6,
			query:      Query{Count: 3},
			wantOIDs:   []string{"2.999.1.1", "2.999.1.2", "2.999.1.3", "2.999.1.4", "2.999.1.5", "2.999.1.6"},
			wantTotals: []int{-1, -1, -1},
		},
		{
			name:       "STU3 by OID, urn form, inactive",
			n:          4,
			query:      Query{ID: "urn:oid:2.999.1.3"},
			wantOIDs:   []string{"2.999.1.3"},
			wantTotals: []int{1},
			check: func(i int, r *http.Request) string {
				if r.URL.Query().Get("_id") != "2.999.1.3" || r.URL.Query().Get("_count") != "50" {
					return "query " + r.URL.RawQuery
				}
				return ""
			},
		},
		{
			name:       "R4, one page",
			r4:         true,
			n:          2,
			query:      Query{},
			wantOIDs:   []string{"2.999.1.1", "2.999.1.2"},
			wantTotals: []int{2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := newFakeDirectory(t, tt.r4, fakeOrgs(tt.n))
			fd.noTotal = tt.noTotal
			s := fd.client()
			if tt.client != nil {
				s = tt.client(fd)
			}
			oids, totals, cursors := searchAll(t, s, tt.query)
			if !reflect.DeepEqual(oids, tt.wantOIDs) {
				t.Errorf("OIDs %v, want %v", oids, tt.wantOIDs)
			}
			if !reflect.DeepEqual(totals, tt.wantTotals) {
				t.Errorf("totals %v, want %v", totals, tt.wantTotals)
			}
			reqs := fd.recorded()
			if len(reqs) != len(tt.wantTotals) {
				t.Errorf("%d requests for %d pages", len(reqs), len(tt.wantTotals))
			}
			for i, r := range reqs {
				if tt.check != nil {
					if p := tt.check(i, r); p != "" {
						t.Errorf("request %d: %s", i, p)
					}
				}
			}
			for _, c := range cursors {
				raw, err := base64.RawURLEncoding.DecodeString(c)
				if err != nil {
					t.Errorf("cursor %q is not base64url: %v", c, err)
				}
				assertNoKeyIn(t, "cursor", c, string(raw))
			}
		})
	}
}

// assertNoKeyIn fails if the test key shows up in any of texts.
func assertNoKeyIn(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, f := range []string{testKey, url.QueryEscape(testKey), url.PathEscape(testKey)} {
			if strings.Contains(s, f) {
				t.Errorf("API key leaked in %s: %q", what, s)
			}
		}
	}
}

func TestSearchQueryValidation(t *testing.T) {
	for _, r4 := range []bool{true, false} {
		fd := newFakeDirectory(t, r4, fakeOrgs(3))
		s := fd.client()
		t.Run(fmt.Sprintf("r4=%v", r4), func(t *testing.T) {
			bad := []struct {
				q      Query
				wantIs error
			}{
				{Query{ID: "1.2.x"}, ErrInvalidOID},
				{Query{ID: "urn:oid: 1.2.3"}, ErrInvalidOID},
				{Query{Name: strings.Repeat("n", 257)}, ErrInvalidQuery},
				{Query{Name: "acme\r\nX-Injected: 1"}, ErrInvalidQuery},
				{Query{Name: "bad \xff utf-8"}, ErrInvalidQuery},
			}
			for _, b := range bad {
				_, err := s.Search(context.Background(), b.q)
				if !errors.Is(err, b.wantIs) || !strings.HasPrefix(err.Error(), "directory: ") {
					t.Errorf("Search(%+v) error %v, want %v", b.q, err, b.wantIs)
				}
			}
			if n := len(fd.recorded()); n != 0 {
				t.Errorf("%d requests for invalid queries, want 0", n)
			}
			for _, c := range []struct {
				count int
				want  string
			}{{0, "50"}, {-5, "50"}, {1, "1"}, {1000, "1000"}, {5000, "1000"}} {
				if _, err := s.Search(context.Background(), Query{Name: "  Example  ", Count: c.count}); err != nil {
					t.Fatal(err)
				}
				reqs := fd.recorded()
				q := reqs[len(reqs)-1].URL.Query()
				if q.Get("_count") != c.want || q.Get("name") != "Example" {
					t.Errorf("Count %d: sent %s, want _count=%s and the name trimmed", c.count, reqs[len(reqs)-1].URL.RawQuery, c.want)
				}
			}
		})
	}
}

// cursorOf encodes a raw cursor payload as the clients do.
func cursorOf(payload string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(payload))
}

func TestSearchRefusesTamperedCursors(t *testing.T) {
	r4 := []string{
		"r4://evil.test/fhir?_getpages=x",
		"r4:https://evil.test/fhir/Organization",
		"r4:http://127.0.0.1:1/fhir/Organization",
		"r4:/fhir/Patient?name=x",
		"r4:/fhir/Organization/1.2.3",
		"r4:/fhir/../admin",
		"r4:/fhir/Organization/..",
		"r4:/fhir/Organization%2F..%2Fadmin",
		"r4:/other/Organization",
		"r4:fhir/Organization",
		"r4:/fhir/Organization?_apiKey=attacker",
		"r4:/fhir/Organization?APIKEY=attacker",
		"r4:/fhir/Organization?_format=xml",
		"r4:/fhir/Organization?_count=5000",
		"r4:/fhir/Organization?_count=0",
		"r4:/fhir/Organization?_count=x",
		"r4:/fhir/Organization?a=%zz",
		"r4:/fhir/Organization?a=1#fragment",
		"r4:/fhir/Organization?a=1\r\nHost: evil.test",
		"r4:/fhir/Organization?a=b c",
		"r4:/fhir/Organization?a=\x00",
		"r4:/fhir\\Organization",
		"r4:/fhir/Organization?\xff",
		"stu3:_start=3&_count=3",
		"R4:/fhir/Organization",
		"r4:",
	}
	stu3 := []string{
		"stu3:_start=3&_count=3&apikey=attacker",
		"stu3:_start=3&_count=3&_format=json",
		"stu3:_start=3&_count=3&_include=*",
		"stu3:_start=0&_count=3",
		"stu3:_start=-3&_count=3",
		"stu3:_start=x&_count=3",
		"stu3:_start=999999999999&_count=3",
		"stu3:_start=3",
		"stu3:_start=3&_count=5000",
		"stu3:_start=3&_count=3&_start=6",
		"stu3:_start=3&_count=3&_id=1.02",
		"stu3:_start=3&_count=3&_id=urn:oid:1.2.3",
		"stu3:_start=3&_count=3&name=%0Aevil",
		"stu3:_start=3&_count=3&name=+padded+",
		"stu3:_start=3&_count=3&active=yes",
		"stu3:_start=3&_count=3&a=%zz",
		"r4:/fhir-stu3/1.0.1/Organization?x=1",
		"stu3:",
	}
	run := func(t *testing.T, fd *fakeDirectory, payloads []string) {
		s := fd.client()
		cursors := []string{"not base64!", "c3R1MzpfY291bnQ9Mw==", strings.Repeat("A", maxCursorLen+1)}
		for _, p := range payloads {
			cursors = append(cursors, cursorOf(p))
		}
		for _, c := range cursors {
			res, err := s.Search(context.Background(), Query{Page: c, Name: "ignored"})
			if !errors.Is(err, ErrInvalidQuery) {
				raw, _ := base64.RawURLEncoding.DecodeString(c)
				t.Errorf("cursor %q: got %+v, %v; want ErrInvalidQuery", raw, res, err)
				continue
			}
			if !strings.HasPrefix(err.Error(), "directory: invalid search: ") || len(err.Error()) > 300 {
				t.Errorf("error %q: want the prefix and a bounded message", err)
			}
		}
		if n := len(fd.recorded()); n != 0 {
			t.Errorf("%d requests for tampered cursors, want 0", n)
		}
	}
	t.Run("R4", func(t *testing.T) { run(t, newFakeDirectory(t, true, fakeOrgs(3)), r4) })
	t.Run("STU3", func(t *testing.T) { run(t, newFakeDirectory(t, false, fakeOrgs(3)), stu3) })
}

// TestSearchAcceptsServerCursorsOnly checks that a real cursor still works
// after others were refused, and that the R4 cursor points at the
// directory's own host whatever host the cursor's link named.
func TestSearchCursorRoundTrip(t *testing.T) {
	fd := newFakeDirectory(t, true, fakeOrgs(5))
	s := fd.client()
	first, err := s.Search(context.Background(), Query{Count: 2})
	if err != nil || first.Next == "" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(first.Next)
	if !strings.HasPrefix(string(raw), "r4:/fhir?") || strings.Contains(string(raw), "127.0.0.1") {
		t.Errorf("cursor payload %q: want a path and query only", raw)
	}
	second, err := s.Search(context.Background(), Query{Page: first.Next})
	if err != nil || len(second.Organizations) != 2 || second.Organizations[0].OID != "2.999.1.3" {
		t.Fatalf("second page: %+v, %v", second, err)
	}
}

func TestR4SearchNextLinks(t *testing.T) {
	foreignHits := &atomic.Int64{}
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset"}`)
	}))
	defer foreign.Close()

	tests := []struct {
		name    string
		rewrite func(fd *fakeDirectory, next string) string
		// wantIn is a part of the error, "" for a followed link.
		wantIn string
	}{
		{name: "foreign host", rewrite: func(_ *fakeDirectory, next string) string {
			return foreign.URL + "/fhir?" + strings.SplitN(next, "?", 2)[1]
		}, wantIn: "leads to \"http://127.0.0.1:"},
		{name: "foreign host with a directory-looking name", rewrite: func(_ *fakeDirectory, next string) string {
			return "http://directory.example.evil/fhir?" + strings.SplitN(next, "?", 2)[1]
		}, wantIn: "not to the directory"},
		{name: "https instead of http", rewrite: func(_ *fakeDirectory, next string) string {
			return strings.Replace(next, "http://", "https://", 1)
		}, wantIn: "leads to \"https://127.0.0.1:"},
		{name: "user info", rewrite: func(_ *fakeDirectory, next string) string {
			return strings.Replace(next, "http://", "http://user:pw@", 1)
		}, wantIn: "not to the directory"},
		{name: "protocol-relative to another host", rewrite: func(_ *fakeDirectory, next string) string {
			return "//evil.test/fhir?" + strings.SplitN(next, "?", 2)[1]
		}, wantIn: "not to the directory"},
		{name: "another path", rewrite: func(_ *fakeDirectory, next string) string {
			return strings.Replace(next, "/fhir?", "/fhir/Patient?", 1)
		}, wantIn: "not the directory's Organization search"},
		{name: "a _format", rewrite: func(_ *fakeDirectory, next string) string { return next + "&_format=xml" }, wantIn: "_format"},
		{name: "the key under another name", rewrite: func(_ *fakeDirectory, next string) string {
			return next + "&token=" + url.QueryEscape(testKey)
		}, wantIn: "carries the API key"},
		{name: "not a URL", rewrite: func(_ *fakeDirectory, next string) string { return "http://[::1" }, wantIn: "not a URL"},
		{name: "relative link: followed", rewrite: func(_ *fakeDirectory, next string) string {
			return "/fhir?" + strings.SplitN(next, "?", 2)[1]
		}},
		{name: "the link as sent: followed", rewrite: func(fd *fakeDirectory, next string) string { return next }},
		{name: "echoed _apiKey is dropped: followed", rewrite: func(_ *fakeDirectory, next string) string {
			return next + "&_apiKey=" + url.QueryEscape(testKey)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := newFakeDirectory(t, true, fakeOrgs(4))
			fd.nextLink = func(next string) string { return tt.rewrite(fd, next) }
			res, err := fd.client().Search(context.Background(), Query{Count: 2})
			if tt.wantIn != "" {
				var de *Error
				if !errors.As(err, &de) || de.StatusCode != http.StatusOK || !strings.Contains(err.Error(), tt.wantIn) {
					t.Fatalf("got %+v, %v; want an *Error with %q", res, err, tt.wantIn)
				}
				assertNoSecret(t, err)
			} else {
				if err != nil || res.Next == "" {
					t.Fatalf("got %+v, %v; want a next page", res, err)
				}
				raw, _ := base64.RawURLEncoding.DecodeString(res.Next)
				assertNoKeyIn(t, "cursor", string(raw))
				second, err := fd.client().Search(context.Background(), Query{Page: res.Next})
				if err != nil || len(second.Organizations) != 2 || second.Organizations[0].OID != "2.999.1.3" {
					t.Fatalf("second page: %+v, %v", second, err)
				}
			}
			if n := foreignHits.Load(); n != 0 {
				t.Errorf("the foreign host got %d requests", n)
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name         string
		r4           bool
		handler      http.HandlerFunc
		wantStatus   int
		wantIn       string
		wantRequests int64
	}{
		{name: "R4 403 is not retried", r4: true, handler: statusHandler(403, "key "+testKey+" not allowed"), wantStatus: 403, wantIn: "Forbidden", wantRequests: 1},
		{name: "STU3 403 is not retried", handler: statusHandler(403, "no"), wantStatus: 403, wantIn: "Forbidden", wantRequests: 1},
		{name: "R4 404 is a directory error, not not-found", r4: true, handler: statusHandler(404, ""), wantStatus: 404, wantIn: "Not Found", wantRequests: 1},
		{name: "R4 500 forever: 3 attempts", r4: true, handler: statusHandler(500, "boom"), wantStatus: 500, wantIn: "boom", wantRequests: 3},
		{name: "STU3 503: 3 attempts", handler: statusHandler(503, ""), wantStatus: 503, wantRequests: 3},
		{name: "R4 not a bundle", r4: true, handler: statusHandler(200, `{"resourceType":"Organization","id":"1.2.3"}`), wantStatus: 200, wantIn: "parse R4 bundle: resourceType", wantRequests: 1},
		{name: "STU3 not XML", handler: statusHandler(200, `<html>`+testKey), wantStatus: 200, wantIn: "parse STU3 bundle XML", wantRequests: 1},
		{name: "R4 too large", r4: true, handler: statusHandler(200, `{"resourceType":"Bundle"}`+strings.Repeat(" ", 4096)), wantStatus: 200, wantIn: "exceeds 1024 bytes", wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				tt.handler(w, r)
			}))
			defer srv.Close()
			var s Searcher = &STU3Client{BaseURL: srv.URL, APIKey: testKey, HTTPClient: srv.Client(), MaxBodyBytes: 1024, Retry: noSleep}
			if tt.r4 {
				s = &R4Client{BaseURL: srv.URL, APIKey: testKey, APIKeyIn: APIKeyInQuery, HTTPClient: srv.Client(), MaxBodyBytes: 1024, Retry: noSleep}
			}
			res, err := s.Search(context.Background(), Query{Name: "x"})
			var de *Error
			if !errors.As(err, &de) || de.StatusCode != tt.wantStatus || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("got %+v, %v; want *Error %d with %q", res, err, tt.wantStatus, tt.wantIn)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("error %v wraps ErrNotFound", err)
			}
			if got := n.Load(); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
			assertNoSecret(t, err)
		})
	}
}

func statusHandler(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func TestResolverSearch(t *testing.T) {
	fd := newFakeDirectory(t, true, fakeOrgs(3))
	r := NewResolver(ResolverConfig{Fetcher: fd.client().(Fetcher)})
	res, err := r.Search(context.Background(), Query{Name: "Example Org 2"})
	if err != nil || len(res.Organizations) != 1 || res.Organizations[0].OID != "2.999.1.2" {
		t.Fatalf("Search = %+v, %v", res, err)
	}
	if _, err := NewResolver(ResolverConfig{}).Search(context.Background(), Query{}); err == nil || !strings.HasPrefix(err.Error(), "directory: ") {
		t.Errorf("without a directory: %v, want an error", err)
	}
}
