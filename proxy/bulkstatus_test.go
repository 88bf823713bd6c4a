package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cqgate/cqgate/internal/audit"
)

// statusRequest is what a status endpoint saw of one request.
type statusRequest struct {
	Method, Host, Path, RawQuery, Auth, Prefer, APIKey string
}

// statusPartner is a partner whose kick-off answers 202 with
// Content-Location status (and Location, when location is set), and a
// status endpoint at every other path it is mounted on: the first GET
// answers 202 in progress (naming itself again in Content-Location, as
// the raw partner URL it is), the next a manifest with a file under the
// FHIR base and one on storage; DELETE cancels.
type statusPartner struct {
	status, location string
	mu               sync.Mutex
	polls            int
	seen             []statusRequest
}

func (p *statusPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/r4/Patient/$export" {
		w.Header().Set("Content-Location", p.status)
		if p.location != "" {
			w.Header().Set("Location", p.location)
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, statusRequest{r.Method, r.URL.Host, r.URL.Path, r.URL.RawQuery,
		r.Header.Get("Authorization"), r.Header.Get("Prefer"), r.Header.Get("X-Api-Key")})
	p.polls++
	polls := p.polls
	p.mu.Unlock()
	switch {
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	case polls == 1:
		w.Header().Set("X-Progress", "half way")
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Content-Location", "https://"+r.URL.Host+r.URL.RequestURI())
		w.WriteHeader(http.StatusAccepted)
	default:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"transactionTime": "2026-12-06T00:00:00Z", "request": partnerBase + "/Patient/$export", "requiresAccessToken": true,
			"output": []map[string]any{
				{"type": "Patient", "url": partnerBase + "/bulkfiles/job7/Patient.ndjson"},
				{"type": "Observation", "url": "https://storage.partner.example/bucket/Observation.ndjson?sig=s3cr3t"},
			},
			"error": []map[string]any{},
		})
	}
}

func (p *statusPartner) requests() []statusRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]statusRequest(nil), p.seen...)
}

// noPartnerURL fails the test when a header of h names the partner's
// hosts.
func noPartnerURL(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, "partner.example") || strings.Contains(v, "other-party.example") {
				t.Errorf("%s: %s %q leads around cqgate", what, k, v)
			}
		}
	}
}

// TestStatusOutsideTheBaseIsSealed: a kick-off's 202 naming a status
// URL outside the FHIR base hands the caller a sealed status link; the
// link reaches the partner's exact status URL, with the caller's FHIR
// headers (not its own credentials) and cqgate's token when the status
// URL is the FHIR base's party only; its in-progress 202 names no
// partner URL, its manifest's files are mapped and sealed, DELETE
// cancels.
func TestStatusOutsideTheBaseIsSealed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status, host, path, query string
		token                           bool
	}{
		{"the partner's host, outside the base", "https://fhir.partner.example/bulkstatus/job7?x=1", "fhir.partner.example", "/bulkstatus/job7", "x=1", true},
		{"an absolute path outside the base", "/bulkstatus/job7", "fhir.partner.example", "/bulkstatus/job7", "", true},
		{"another host of the same party", "https://status.partner.example/jobs/7", "status.partner.example", "/jobs/7", "", true},
		{"another party's host", "https://jobs.other-party.example/jobs/7#frag", "jobs.other-party.example", "/jobs/7", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partner := &statusPartner{status: tc.status}
			w := newFwdWorld(t, nil, partner)
			w.net.hosts[tc.host] = partner
			w.net.hosts["storage.partner.example"] = ndjson("x\n")
			const gw = "http://gw.local/fhir/1.2.3"

			rec := &audit.Record{}
			rr := w.do(http.MethodGet, gw+"/Patient/$export", http.Header{"Prefer": {"respond-async"}}, rec)
			link := rr.Header().Get("Content-Location")
			if rr.Code != http.StatusAccepted || !strings.HasPrefix(link, gw+"/"+DownloadSegment+"/") {
				t.Fatalf("kick-off: %d, Content-Location %q; want a sealed status link", rr.Code, link)
			}
			noPartnerURL(t, "kick-off", rr.Header())
			if u, _ := url.Parse(link); rec.Bulk == nil || rec.Bulk.Event != audit.BulkKickoff || rec.Bulk.StatusPath != u.EscapedPath() {
				t.Errorf("kick-off audit: %+v", rec.Bulk)
			}

			caller := http.Header{"Prefer": {"handling=strict"}, "X-Api-Key": {"caller-key"}}
			rec = &audit.Record{}
			rr = w.do(http.MethodGet, link, caller, rec)
			if rr.Code != http.StatusAccepted || rr.Header().Get("X-Progress") != "half way" || rr.Header().Get("Retry-After") != "5" {
				t.Errorf("in progress: %d, X-Progress %q, Retry-After %q", rr.Code, rr.Header().Get("X-Progress"), rr.Header().Get("Retry-After"))
			}
			noPartnerURL(t, "in progress", rr.Header())
			if cl := rr.Header().Get("Content-Location"); !strings.HasPrefix(cl, gw+"/"+DownloadSegment+"/") {
				t.Errorf("in progress: Content-Location %q is not a status link", cl)
			}
			if rec.Bulk != nil {
				t.Errorf("in-progress audit: %+v, want none (as a poll under the base)", rec.Bulk)
			}

			rec = &audit.Record{}
			rr = w.do(http.MethodGet, link, caller, rec)
			var m struct{ Output []struct{ URL string } }
			if err := json.Unmarshal(rr.Body.Bytes(), &m); rr.Code != http.StatusOK || err != nil || len(m.Output) != 2 {
				t.Fatalf("manifest: %d %v %s", rr.Code, err, rr.Body)
			}
			if strings.Contains(rr.Body.String(), "partner.example") || strings.Contains(rr.Body.String(), "s3cr3t") {
				t.Errorf("the manifest shows partner URLs: %s", rr.Body)
			}
			if m.Output[0].URL != gw+"/bulkfiles/job7/Patient.ndjson" || !strings.HasPrefix(m.Output[1].URL, gw+"/"+DownloadSegment+"/") {
				t.Errorf("manifest output %+v", m.Output)
			}
			if rec.Bulk == nil || rec.Bulk.Event != audit.BulkComplete || rec.Bulk.Files != 2 {
				t.Errorf("completion audit: %+v", rec.Bulk)
			}
			if rr := w.do(http.MethodGet, m.Output[1].URL, nil, nil); rr.Code != http.StatusOK || rr.Body.String() != "x\n" {
				t.Errorf("the manifest's sealed file: %d %s", rr.Code, rr.Body)
			}

			rr = w.do(http.MethodDelete, link, caller, nil)
			if rr.Code != http.StatusAccepted {
				t.Errorf("cancel: %d %s", rr.Code, rr.Body)
			}

			seen := partner.requests()
			if len(seen) != 3 {
				t.Fatalf("the status endpoint saw %d requests, want 3: %+v", len(seen), seen)
			}
			for i, s := range seen {
				want := statusRequest{http.MethodGet, tc.host, tc.path, tc.query, "", "handling=strict", ""}
				if i == 2 {
					want.Method = http.MethodDelete
				}
				if tc.token {
					want.Auth = "Bearer tok-1"
				}
				if s != want {
					t.Errorf("request %d: %+v, want %+v", i, s, want)
				}
			}
		})
	}
}

// TestStatusLinkRefusals: a status link takes GET and DELETE, a file
// link GET and HEAD; each refuses the other's methods (405, with Allow)
// and neither opens under another organization (404). Nothing refused
// reaches the partner.
func TestStatusLinkRefusals(t *testing.T) {
	t.Parallel()
	partner := &statusPartner{}
	w := newFwdWorld(t, nil, partner)
	w.net.hosts["storage.partner.example"] = partner
	status, err := w.px.links.Seal("1.2.3", Link{URL: "https://fhir.partner.example/bulkstatus/job7", Status: true})
	if err != nil {
		t.Fatal(err)
	}
	file, err := w.px.links.Seal("1.2.3", Link{URL: "https://storage.partner.example/bucket/a.ndjson", RequiresToken: true})
	if err != nil {
		t.Fatal(err)
	}
	other := publicTenant(t, "1.2.4", "https://fhir.partner.example/r4-other")
	for _, tc := range []struct {
		name, method, link string
		oid                string
		want               int
		allow              string
	}{
		{"POST on a status link", http.MethodPost, status, "1.2.3", http.StatusMethodNotAllowed, "GET, DELETE"},
		{"PUT on a status link", http.MethodPut, status, "1.2.3", http.StatusMethodNotAllowed, "GET, DELETE"},
		{"a status link taken for a file (HEAD)", http.MethodHead, status, "1.2.3", http.StatusMethodNotAllowed, "GET, DELETE"},
		{"a file link taken for a status link (DELETE)", http.MethodDelete, file, "1.2.3", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"a status link under another organization", http.MethodGet, status, "1.2.4", http.StatusNotFound, ""},
		{"a status link under another organization, DELETE", http.MethodDelete, status, "1.2.4", http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := w.ten
			if tc.oid != tn.OID {
				tn = other
			}
			rr := w.doFor(tn, tc.method, "http://gw.local/fhir/"+tc.oid+"/"+DownloadSegment+"/"+tc.link, nil, nil)
			if rr.Code != tc.want || rr.Header().Get("Allow") != tc.allow {
				t.Errorf("%d, Allow %q; want %d, Allow %q: %s", rr.Code, rr.Header().Get("Allow"), tc.want, tc.allow, rr.Body)
			}
			if tc.method != http.MethodHead && !strings.Contains(rr.Body.String(), "OperationOutcome") {
				t.Errorf("not an OperationOutcome: %s", rr.Body)
			}
		})
	}
	if seen := partner.requests(); len(seen) != 0 {
		t.Errorf("refused requests reached the partner: %+v", seen)
	}
}

// TestUnusableStatusURLIsDropped: a kick-off's status URL cqgate cannot
// fetch (not http(s), with user information, refused by the egress
// guard) is removed from the 202, which still reaches the caller (the
// job was started), and logged by its origin alone.
func TestUnusableStatusURLIsDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status, logged string
	}{
		{"not http(s)", "ftp://fhir.partner.example/bulkstatus/job7?sig=s3cr3t", "ftp://fhir.partner.example"},
		{"user information", "https://admin:s3cr3t@fhir.partner.example/bulkstatus/job7", "https://fhir.partner.example"},
		{"plain http", "http://status.partner.example/bulkstatus/job7?sig=s3cr3t", "http://status.partner.example"},
		{"an internal address", "https://169.254.169.254/bulkstatus/job7?sig=s3cr3t", "https://169.254.169.254"},
		{"not a URL", "https://fhir.partner.example/bulk status/\x7f?sig=s3cr3t", "cannot be parsed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partner := &statusPartner{status: tc.status, location: partnerBase + "/Patient/$export-job"}
			w := newFwdWorld(t, nil, partner)
			rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Patient/$export", http.Header{"Prefer": {"respond-async"}}, nil)
			if rr.Code != http.StatusAccepted {
				t.Fatalf("kick-off: %d %s; want the 202", rr.Code, rr.Body)
			}
			if _, ok := rr.Header()["Content-Location"]; ok {
				t.Errorf("Content-Location %q handed to the caller", rr.Header().Get("Content-Location"))
			}
			if loc := rr.Header().Get("Location"); loc != "http://gw.local/fhir/1.2.3/Patient/$export-job" {
				t.Errorf("Location %q: the usable header was not kept mapped", loc)
			}
			logs := w.logs.String()
			if !strings.Contains(logs, "status URL") || !strings.Contains(logs, tc.logged) {
				t.Errorf("the log does not name the dropped status URL by %q:\n%s", tc.logged, logs)
			}
			for _, leak := range []string{"s3cr3t", "bulkstatus", "job7"} {
				if strings.Contains(logs, leak) {
					t.Errorf("the log shows %q:\n%s", leak, logs)
				}
			}
			if seen := partner.requests(); len(seen) != 0 {
				t.Errorf("the status URL was fetched: %+v", seen)
			}
		})
	}
}

// TestStatusUnderTheBaseStaysMapped: a status URL under the FHIR base is
// mapped as before, not sealed; a relative one is kept, or with dot
// segments resolved and mapped.
func TestStatusUnderTheBaseStaysMapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ status, want string }{
		{partnerBase + "/bulkstatus/job7", "http://gw.local/fhir/1.2.3/bulkstatus/job7"},
		{"//fhir.partner.example/r4/bulkstatus/job7", "http://gw.local/fhir/1.2.3/bulkstatus/job7"},
		{"/r4/bulkstatus/job7", "http://gw.local/fhir/1.2.3/bulkstatus/job7"},
		{"bulkstatus/job7", "bulkstatus/job7"}, // relative: resolves against cqgate's mirror
		// With dot segments it is resolved against the partner's URL and
		// mapped, since on cqgate's side it could climb out of the route.
		{"../bulkstatus/job7", "http://gw.local/fhir/1.2.3/bulkstatus/job7"},
	} {
		w := newFwdWorld(t, nil, &statusPartner{status: tc.status})
		rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Patient/$export", nil, nil)
		if got := rr.Header().Get("Content-Location"); rr.Code != http.StatusAccepted || got != tc.want {
			t.Errorf("%q: %d, Content-Location %q, want %q", tc.status, rr.Code, got, tc.want)
		}
	}
}

// TestStatusLinkRedirects: a status link's request is a FHIR request: a
// redirect under the FHIR base is handed to the caller mapped, one
// elsewhere answered to a GET is followed without the token, and one
// answered to a DELETE outside the base is refused (502).
func TestStatusLinkRedirects(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jobs/under", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, partnerBase+"/bulkstatus/job7", http.StatusFound)
	})
	mux.HandleFunc("GET /jobs/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://fhir.partner.example/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("GET /elsewhere", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "a token followed the redirect", http.StatusBadRequest)
			return
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("DELETE /jobs/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://fhir.partner.example/elsewhere", http.StatusTemporaryRedirect)
	})
	w := newFwdWorld(t, nil, mux)
	const gw = "http://gw.local/fhir/1.2.3"
	link := func(path string) string {
		s, err := w.px.links.Seal("1.2.3", Link{URL: "https://fhir.partner.example" + path, Status: true})
		if err != nil {
			t.Fatal(err)
		}
		return gw + "/" + DownloadSegment + "/" + s
	}
	rr := w.do(http.MethodGet, link("/jobs/under"), nil, nil)
	if loc := rr.Header().Get("Location"); rr.Code != http.StatusFound || loc != gw+"/bulkstatus/job7" {
		t.Errorf("redirect under the base: %d, Location %q", rr.Code, loc)
	}
	rr = w.do(http.MethodGet, link("/jobs/away"), nil, nil)
	if rr.Code != http.StatusAccepted || rr.Header().Get("Retry-After") != "3" || rr.Header().Get("Location") != "" {
		t.Errorf("redirect elsewhere: %d, Location %q: %s", rr.Code, rr.Header().Get("Location"), rr.Body)
	}
	rr = w.do(http.MethodDelete, link("/jobs/away"), nil, nil)
	if rr.Code != http.StatusBadGateway || rr.Header().Get("Location") != "" {
		t.Errorf("DELETE redirected outside the base: %d, Location %q", rr.Code, rr.Header().Get("Location"))
	}
}

// TestManifestLinksLeadToCqgate: the link array of a manifest the server
// splits into pages (Bulk Data 2.0: link[].url, relation "next") hands
// the caller no partner URL. Under the FHIR base the rewriter maps it;
// elsewhere it is a sealed status link that reaches the exact next page,
// with the token for the base's party only; one cqgate cannot fetch
// loses its url.
func TestManifestLinksLeadToCqgate(t *testing.T) {
	t.Parallel()
	manifest := func(links ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var ls []map[string]any
			for _, l := range links {
				ls = append(ls, map[string]any{"relation": "next", "url": l})
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"transactionTime": "2026-12-06T00:00:00Z", "request": partnerBase + "/Patient/$export", "requiresAccessToken": true,
				"output": []map[string]any{{"type": "Patient", "url": partnerBase + "/bulkfiles/Patient.ndjson"}},
				"error":  []map[string]any{}, "link": ls,
			})
		}
	}
	partner := manifest(
		partnerBase+"/bulkstatus/1?page=2",                // under the base: mapped
		"https://fhir.partner.example/pages/1?page=3",     // the partner's host, outside the base
		"https://jobs.other-party.example/pages/1?page=4", // another party
		"ftp://fhir.partner.example/pages/1",              // cannot be fetched: dropped
	)
	w := newFwdWorld(t, nil, partner)
	var page http.HandlerFunc = func(rw http.ResponseWriter, r *http.Request) { manifest()(rw, r) }
	w.net.hosts["jobs.other-party.example"] = page
	const gw = "http://gw.local/fhir/1.2.3"

	rr := w.do(http.MethodGet, gw+"/bulkstatus/1", nil, nil)
	if rr.Code != http.StatusOK {
		t.Fatalf("status poll: %d %s", rr.Code, rr.Body)
	}
	if strings.Contains(rr.Body.String(), "partner.example/pages") || strings.Contains(rr.Body.String(), "other-party.example") {
		t.Fatalf("a manifest link leads around cqgate: %s", rr.Body)
	}
	var m struct {
		Link []struct{ Relation, URL string } `json:"link"`
	}
	if err := json.Unmarshal(rr.Body.Bytes(), &m); err != nil || len(m.Link) != 4 {
		t.Fatalf("manifest %s (%v): want its four links", rr.Body, err)
	}
	if m.Link[0].URL != gw+"/bulkstatus/1?page=2" {
		t.Errorf("link under the base = %q, want it mapped", m.Link[0].URL)
	}
	if m.Link[3].URL != "" || m.Link[3].Relation != "next" {
		t.Errorf("unusable link = %+v, want its url dropped and the rest kept", m.Link[3])
	}
	for i, want := range []struct {
		host, path string
		token      bool
	}{{"fhir.partner.example", "/pages/1", true}, {"jobs.other-party.example", "/pages/1", false}} {
		l := m.Link[i+1].URL
		if !strings.HasPrefix(l, gw+"/"+DownloadSegment+"/") {
			t.Fatalf("link %d = %q, want a sealed status link", i+1, l)
		}
		if rr := w.do(http.MethodGet, l, nil, nil); rr.Code != http.StatusOK {
			t.Fatalf("following link %d: %d %s", i+1, rr.Code, rr.Body)
		}
		seen := w.net.requests(want.host)
		if len(seen) == 0 {
			t.Fatalf("link %d reached nothing on %s", i+1, want.host)
		}
		last := seen[len(seen)-1]
		if last.Path != want.path || (last.Auth != "") != want.token {
			t.Errorf("link %d reached %s%s with Authorization %q; want %s, token %v", i+1, last.Host, last.Path, last.Auth, want.path, want.token)
		}
	}
}

// followedFrom is what a client requests when it follows ref from the
// page it fetched at base (RFC 3986 §5.2: dot segments removed).
func followedFrom(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatalf("parse %q: %v", ref, err)
	}
	return b.ResolveReference(r).String()
}

// TestStatusURLStaysInTheRoute: a kick-off's 202 whose Content-Location
// climbs out of the FHIR base (dot segments in an absolute path or a
// relative reference, written with '/' or with '\\', which WHATWG clients
// read as '/') never hands the caller a status URL that, followed as
// clients follow it (curl, browsers, urllib3, Node's URL), leads out of
// /fhir/{oid}/: to the partner's host or another organization's route on
// cqgate, where its polls and DELETE would go.
func TestStatusURLStaysInTheRoute(t *testing.T) {
	t.Parallel()
	const kickoff = "http://gw.local/fhir/1.2.3/Patient/$export"
	const route = "http://gw.local/fhir/1.2.3/"
	for _, tc := range []struct{ name, status string }{
		{"absolute path", "/r4/../1.2.4/Patient/1"},
		{"relative reference", "../../1.2.4/Patient/1"},
		// WHATWG clients (browsers, Node's URL and fetch) read '\\' as '/'.
		{"network path with backslashes", `\\fhir.partner.example/r4/bulkstatus/job7`},
		{"dot segments with backslashes", `..\..\1.2.4/Patient/1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partner := &statusPartner{status: tc.status}
			w := newFwdWorld(t, nil, partner)
			rr := w.do(http.MethodGet, kickoff, http.Header{"Prefer": {"respond-async"}}, nil)
			if rr.Code != http.StatusAccepted {
				t.Fatalf("kick-off: %d %s", rr.Code, rr.Body)
			}
			cl := rr.Header().Get("Content-Location")
			if cl == "" {
				return // removed: fine
			}
			if got := whatwgFollowedFrom(t, kickoff, cl); !strings.HasPrefix(got, route) {
				t.Errorf("Content-Location %q, which a bulk client polls (and DELETEs) as %q: outside %s", cl, got, route)
			}
		})
	}
}

// TestManifestNeverPassesUnsealed: an answer whose keys make it a
// manifest never reaches the caller with its storage URLs. One with a
// UTF-8 byte order mark (clients read it), or without output (a
// serializer that leaves out empty arrays), is sealed as any manifest;
// one cqgate cannot read (nested past encoding/json's limit) or rewrite
// (past 16 MiB) is a 502.
func TestManifestNeverPassesUnsealed(t *testing.T) {
	t.Parallel()
	const manifest = `{"transactionTime":"2026-12-06T00:00:00Z","request":"https://fhir.partner.example/r4/$export",` +
		`"requiresAccessToken":true,"output":[{"type":"Patient","url":"https://storage.partner.example/bucket/Patient.ndjson?sig=s3cr3t"}],` +
		`"error":[]%s}`
	deep := `,"extension":{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"byte order mark", "\xEF\xBB\xBF" + strings.Replace(manifest, "%s", "", 1), http.StatusOK},
		{"deeply nested extension", strings.Replace(manifest, "%s", deep, 1), http.StatusBadGateway},
		// Padded past maxManifest (16 MiB): "passes with only its
		// partner-base URLs mapped".
		{"padded past 16 MiB", strings.Replace(manifest, "%s", `,"extension":{"pad":"`+strings.Repeat("x", 16<<20)+`"}`, 1), http.StatusBadGateway},
		// An export that produced no resources, from a serializer that
		// leaves empty arrays out (HAPI's BulkExportResponseJson was
		// @JsonInclude(NON_DEFAULT)): its error file goes out unsealed.
		{"empty output left out", `{"transactionTime":"2026-12-06T00:00:00Z","requiresAccessToken":true,` +
			`"error":[{"type":"OperationOutcome","url":"https://storage.partner.example/bucket/err.ndjson?sig=s3cr3t"}]}`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.body)
			})
			w := newFwdWorld(t, nil, partner)
			rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/bulkstatus/job7", nil, nil)
			if rr.Code != tc.want {
				t.Fatalf("poll: %d %.300s, want %d", rr.Code, rr.Body, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(rr.Body.String(), DownloadSegment) {
				t.Errorf("no sealed link in the manifest: %.300s", rr.Body)
			}
			if b := rr.Body.String(); strings.Contains(b, "storage.partner.example") || strings.Contains(b, "s3cr3t") {
				t.Errorf("the manifest hands the caller the storage URL: %.300s", b)
			}
		})
	}
}

// whatwgFollowedFrom is what a WHATWG URL client (browsers, Node's URL and
// fetch, Deno) requests when it follows ref from base: for http(s) a '\'
// is read as '/' (URL Standard, "special" schemes), then RFC 3986
// resolution as followedFrom.
func whatwgFollowedFrom(t *testing.T, base, ref string) string {
	t.Helper()
	return followedFrom(t, base, strings.ReplaceAll(ref, `\`, "/"))
}

// TestUndecidedManifestIsReadWhole: a manifest whose top-level keys
// leave the check open past its first 64 KiB (a large "extension" first,
// as a server that sorts its keys and leaves out empty arrays writes it),
// or that comes after much white space, is read whole and sealed, never
// passed with its storage URLs.
func TestUndecidedManifestIsReadWhole(t *testing.T) {
	t.Parallel()
	const rest = `"output":[{"type":"Patient","url":"https://storage.partner.example/bucket/Patient.ndjson?sig=s3cr3t"}],` +
		`"request":"https://fhir.partner.example/r4/$export","requiresAccessToken":true,"transactionTime":"2026-12-06T00:00:00Z"}`
	for _, tc := range []struct{ name, body string }{
		{"a large extension first", `{"extension":{"pad":"` + strings.Repeat("x", 70<<10) + `"},` + rest},
		{"leading white space", strings.Repeat("\n", 300) + `{` + rest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.body)
			})
			w := newFwdWorld(t, nil, partner)
			rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/bulkstatus/job7", nil, nil)
			if rr.Code != http.StatusOK || !strings.Contains(rr.Body.String(), DownloadSegment) {
				t.Errorf("%d: want the manifest with its file sealed", rr.Code)
			}
			if b := rr.Body.String(); strings.Contains(b, "storage.partner.example") || strings.Contains(b, "s3cr3t") {
				t.Errorf("%d: the manifest hands the caller the storage URL and its signature: ...%s", rr.Code, strings.TrimSpace(b[max(0, len(b)-300):]))
			}
		})
	}
}
