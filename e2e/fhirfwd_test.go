package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/internal/fositetest"
)

const (
	fwdOID     = "2.999.14.1"
	hostileOID = "2.999.14.66"
)

// storageServer is a bucket behind signed URLs: it counts every request
// that carries an Authorization header (there must be none).
type storageServer struct {
	*httptest.Server
	withAuth atomic.Int64
	requests atomic.Int64
}

func newStorage(t *testing.T, body string) *storageServer {
	s := &storageServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			s.withAuth.Add(1)
			http.Error(w, "storage refuses Authorization", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		http.ServeContent(w, r, "f.ndjson", time.Time{}, strings.NewReader(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// bulkPartner is a FHIR server whose every URL is absolute, protected
// by the fosite world's tokens, with a bulk export that takes polls
// seconds apart and files on a storage origin.
type bulkPartner struct {
	*httptest.Server
	auth    *fositetest.Server
	storage *storageServer
	polls   int
	mu      sync.Mutex
	tokens  map[string]bool // every token that was accepted
	refused int
	// manifestURLs, when set, replaces the manifest's output (a hostile
	// partner).
	manifestURLs []string
	fileAuth     []string // Authorization of every file request
	// statusURL, when set, is the status URL the kick-off names instead
	// of {base}/bulkstatus/job1 (it is served at /jobs/job1, outside the
	// FHIR base); cancels counts the DELETEs it got.
	statusURL string
	cancels   atomic.Int64
}

func (p *bulkPartner) base() string { return p.URL + "/r4" }

func newBulkPartner(t *testing.T, auth *fositetest.Server, storage *storageServer, polls int) *bulkPartner {
	p := &bulkPartner{auth: auth, storage: storage, polls: polls, tokens: map[string]bool{}}
	var polled atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/Observation", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("_format") == "xml" {
			w.Header().Set("Content-Type", "application/fhir+xml")
			fmt.Fprintf(w, `<Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="%s/Observation?patient=1&amp;_offset=2"/></link>`+
				`<entry><fullUrl value="%s/Observation/o1"/></entry></Bundle>`, p.base(), p.base())
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"%s/Observation?patient=1"},`+
			`{"relation":"next","url":"%s/Observation?patient=1&_offset=2"}],"entry":[{"fullUrl":"%s/Observation/o1"}]}`, p.base(), p.base(), p.base())
	})
	mux.HandleFunc("POST /r4/Patient", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", p.base()+"/Patient/p9/_history/1")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"resourceType":"Patient","id":"p9"}`)
	})
	mux.HandleFunc("GET /r4/Patient/$export", func(w http.ResponseWriter, r *http.Request) {
		status := p.base() + "/bulkstatus/job1"
		if p.statusURL != "" {
			status = p.statusURL
		}
		w.Header().Set("Content-Location", status)
		w.WriteHeader(http.StatusAccepted)
	})
	cancel := func(w http.ResponseWriter, r *http.Request) {
		p.cancels.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}
	mux.HandleFunc("DELETE /r4/bulkstatus/job1", cancel)
	mux.HandleFunc("DELETE /jobs/job1", cancel)
	poll := func(w http.ResponseWriter, r *http.Request) {
		if n := polled.Add(1); int(n) <= p.polls {
			w.Header().Set("X-Progress", fmt.Sprintf("poll %d", n))
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		urls := p.manifestURLs
		if urls == nil {
			urls = []string{p.base() + "/bulkfiles/Patient.ndjson", p.storage.URL + "/bucket/Observation.ndjson?sig=s3cr3t"}
		}
		var out []map[string]any
		for _, u := range urls {
			out = append(out, map[string]any{"type": "Patient", "url": u})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"transactionTime": "2026-12-06T00:00:00Z", "request": p.base() + "/Patient/$export",
			"requiresAccessToken": true, "output": out, "error": []any{}})
	}
	mux.HandleFunc("GET /r4/bulkstatus/job1", poll)
	mux.HandleFunc("GET /jobs/job1", poll)
	mux.HandleFunc("GET /r4/bulkfiles/{name}", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.fileAuth = append(p.fileAuth, r.Header.Get("Authorization"))
		p.mu.Unlock()
		http.Redirect(w, r, p.storage.URL+"/bucket/"+r.PathValue("name")+"?sig=s3cr3t", http.StatusTemporaryRedirect)
	})
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if err := auth.ValidateRequest(r); err != nil {
			if strings.HasPrefix(r.URL.Path, "/r4/bulkfiles/") {
				p.mu.Lock()
				p.fileAuth = append(p.fileAuth, r.Header.Get("Authorization"))
				p.mu.Unlock()
			}
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		p.tokens[tok] = true
		p.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *bulkPartner) counts() (tokens, refused int, fileAuth []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tokens), p.refused, append([]string(nil), p.fileAuth...)
}

func TestFHIRForwardingLinksLeadBackToCqgate(t *testing.T) {
	var partner *bulkPartner
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		partner = newBulkPartner(t, w.auth, newStorage(t, "{}\n"), 0)
		c.Organizations[fwdOID] = config.Organization{Name: "Links", FHIRBase: partner.base(), TokenURL: w.auth.TokenURL, AllowPrivateAddresses: true,
			Scope: "system/Observation.read system/Patient.read"}
		// The world's client may only read; the create below is about
		// its Location header, not about scopes.
		c.Tokens.EnforceGrantedScope = false
	}})
	gw := w.gateway.URL + "/fhir/" + fwdOID

	resp, body := w.do(http.MethodGet, "/fhir/"+fwdOID+"/Observation?patient=1", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"url":"`+gw+`/Observation?patient=1&_offset=2"`) ||
		!strings.Contains(string(body), `"fullUrl":"`+gw+`/Observation/o1"`) || strings.Contains(string(body), partner.URL) {
		t.Errorf("JSON searchset: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(http.MethodGet, "/fhir/"+fwdOID+"/Observation?patient=1&_format=xml", nil, map[string]string{"Accept": "application/fhir+xml"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<url value="`+gw+`/Observation?patient=1&amp;_offset=2"/>`) ||
		strings.Contains(string(body), partner.URL) {
		t.Errorf("XML searchset: %d %s", resp.StatusCode, body)
	}
	// Following next works through cqgate without the caller holding a token.
	resp, _ = w.do(http.MethodGet, strings.TrimPrefix(gw, w.gateway.URL)+"/Observation?patient=1&_offset=2", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("next page: %d", resp.StatusCode)
	}
	resp, _ = w.do(http.MethodPost, "/fhir/"+fwdOID+"/Patient", []byte(`{"resourceType":"Patient"}`), map[string]string{"Content-Type": "application/fhir+json"})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusCreated || loc != gw+"/Patient/p9/_history/1" {
		t.Errorf("create: %d, Location %q", resp.StatusCode, loc)
	}
	w.assertNoSecrets()
}

// TestBulkExportOutlivesTokens runs a bulk export through cqgate whose
// polls take longer than a token lives, with one file redirected to a
// storage origin and one on it directly: every request is answered, the
// tokens are replaced as they expire, and storage never sees an
// Authorization header.
func TestBulkExportOutlivesTokens(t *testing.T) {
	const lifetime = 2 * time.Second
	var partner *bulkPartner
	var storage *storageServer
	patients := `{"resourceType":"Patient","id":"p1"}` + "\n"
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		storage = newStorage(t, patients)
		partner = newBulkPartner(t, w.auth, storage, 4)
		c.Organizations[fwdOID] = config.Organization{Name: "Bulk", FHIRBase: partner.base(), TokenURL: w.auth.TokenURL, AllowPrivateAddresses: true}
		c.Tokens.RefreshMargin = 500 * time.Millisecond
		c.Tokens.RefreshAhead = 0
		c.Tokens.MinInterval = 10 * time.Millisecond
	}})
	w.auth.SetLifetime(lifetime)
	gw := w.gateway.URL + "/fhir/" + fwdOID
	issuedBefore := w.auth.Issued()

	resp, _ := w.do(http.MethodGet, "/fhir/"+fwdOID+"/Patient/$export", nil, map[string]string{"Prefer": "respond-async"})
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || status != gw+"/bulkstatus/job1" {
		t.Fatalf("kick-off: %d, Content-Location %q", resp.StatusCode, status)
	}
	start := time.Now()
	var manifest struct {
		Output []struct{ URL string }
	}
	for i := 0; ; i++ {
		resp, body := w.do(http.MethodGet, strings.TrimPrefix(status, w.gateway.URL), nil, nil)
		if resp.StatusCode == http.StatusAccepted {
			if resp.Header.Get("X-Progress") == "" || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("poll %d: X-Progress %q, Retry-After %q", i, resp.Header.Get("X-Progress"), resp.Header.Get("Retry-After"))
			}
			time.Sleep(time.Second)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("poll %d: %d %s", i, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &manifest); err != nil || len(manifest.Output) != 2 {
			t.Fatalf("manifest: %v %s", err, body)
		}
		if strings.Contains(string(body), storage.URL) || strings.Contains(string(body), partner.URL) || strings.Contains(string(body), "s3cr3t") {
			t.Errorf("the manifest shows a partner or storage URL: %s", body)
		}
		break
	}
	if d := time.Since(start); d < lifetime {
		t.Fatalf("the export took %v, not longer than a token's %v lifetime", d, lifetime)
	}
	for _, o := range manifest.Output {
		if !strings.HasPrefix(o.URL, gw+"/") {
			t.Fatalf("file URL %q does not lead to cqgate", o.URL)
		}
		resp, body := w.do(http.MethodGet, strings.TrimPrefix(o.URL, w.gateway.URL), nil, nil)
		if resp.StatusCode != http.StatusOK || string(body) != patients {
			t.Errorf("download %s: %d %q", o.URL, resp.StatusCode, body)
		}
		resp, body = w.do(http.MethodGet, strings.TrimPrefix(o.URL, w.gateway.URL), nil, map[string]string{"Range": "bytes=0-4"})
		if resp.StatusCode != http.StatusPartialContent || string(body) != patients[:5] {
			t.Errorf("ranged download %s: %d %q", o.URL, resp.StatusCode, body)
		}
	}
	resp, _ = w.do(http.MethodDelete, strings.TrimPrefix(status, w.gateway.URL), nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("cancel: %d", resp.StatusCode)
	}

	tokens, refused, fileAuth := partner.counts()
	if issued := w.auth.Issued() - issuedBefore; issued < 2 || tokens < 2 {
		t.Errorf("%d tokens issued, %d used during the export; want the first replaced as it expired", issued, tokens)
	}
	if refused != 0 {
		t.Errorf("the partner refused %d requests (expired tokens sent)", refused)
	}
	for _, a := range fileAuth {
		if a == "" {
			t.Error("a file request under the FHIR base went without the token")
		}
	}
	if n := storage.withAuth.Load(); n != 0 || storage.requests.Load() != 4 {
		t.Errorf("storage: %d of %d requests carried Authorization", n, storage.requests.Load())
	}
	logs := w.logs.String()
	for _, leak := range []string{"s3cr3t", storage.URL} {
		if strings.Contains(logs, leak) {
			t.Errorf("logs show %q", leak)
		}
	}
	w.assertNoSecrets()
}

// TestBulkStatusOutsideTheBase: a partner whose kick-off names a status
// URL outside its FHIR base (another path on its host): the caller gets
// a sealed status link, never the partner's URL, and polls, downloads
// and cancels through cqgate, each status request with a valid token.
func TestBulkStatusOutsideTheBase(t *testing.T) {
	var partner *bulkPartner
	var storage *storageServer
	patients := `{"resourceType":"Patient","id":"p1"}` + "\n"
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		storage = newStorage(t, patients)
		partner = newBulkPartner(t, w.auth, storage, 1)
		partner.statusURL = partner.URL + "/jobs/job1"
		c.Organizations[fwdOID] = config.Organization{Name: "Bulk", FHIRBase: partner.base(), TokenURL: w.auth.TokenURL, AllowPrivateAddresses: true}
	}})
	gw := w.gateway.URL + "/fhir/" + fwdOID
	leads := func(what string, resp *http.Response, body []byte) {
		t.Helper()
		for k, vs := range resp.Header {
			for _, v := range vs {
				if strings.Contains(v, partner.URL) || strings.Contains(v, storage.URL) {
					t.Errorf("%s: %s %q leads around cqgate", what, k, v)
				}
			}
		}
		if strings.Contains(string(body), partner.URL) || strings.Contains(string(body), storage.URL) || strings.Contains(string(body), "s3cr3t") {
			t.Errorf("%s: the body shows a partner or storage URL: %s", what, body)
		}
	}

	resp, body := w.do(http.MethodGet, "/fhir/"+fwdOID+"/Patient/$export", nil, map[string]string{"Prefer": "respond-async"})
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(status, gw+"/$cqgate-download/") {
		t.Fatalf("kick-off: %d, Content-Location %q; want a sealed status link", resp.StatusCode, status)
	}
	leads("kick-off", resp, body)
	link := strings.TrimPrefix(status, w.gateway.URL)

	resp, body = w.do(http.MethodGet, link, nil, nil)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Progress") == "" {
		t.Fatalf("poll in progress: %d, X-Progress %q: %s", resp.StatusCode, resp.Header.Get("X-Progress"), body)
	}
	resp, body = w.do(http.MethodGet, link, nil, nil)
	var manifest struct{ Output []struct{ URL string } }
	if err := json.Unmarshal(body, &manifest); resp.StatusCode != http.StatusOK || err != nil || len(manifest.Output) != 2 {
		t.Fatalf("manifest: %d %v %s", resp.StatusCode, err, body)
	}
	leads("manifest", resp, body)
	for _, o := range manifest.Output {
		if !strings.HasPrefix(o.URL, gw+"/") {
			t.Fatalf("file URL %q does not lead to cqgate", o.URL)
		}
		if resp, body := w.do(http.MethodGet, strings.TrimPrefix(o.URL, w.gateway.URL), nil, nil); resp.StatusCode != http.StatusOK || string(body) != patients {
			t.Errorf("download %s: %d %q", o.URL, resp.StatusCode, body)
		}
	}
	resp, _ = w.do(http.MethodDelete, link, nil, nil)
	if resp.StatusCode != http.StatusAccepted || partner.cancels.Load() != 1 {
		t.Errorf("cancel: %d, the partner saw %d cancels", resp.StatusCode, partner.cancels.Load())
	}
	if resp, _ := w.do(http.MethodPost, link, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST on the status link: %d, want 405", resp.StatusCode)
	}
	if _, refused, _ := partner.counts(); refused != 0 {
		t.Errorf("the partner refused %d requests (a status request without the token)", refused)
	}
	w.assertNoSecrets()
}

// TestHostilePartnerManifest: a partner whose manifest points at another
// partner's FHIR server gets the file fetched without any token, so
// cqgate never hands one partner's token to another's server.
func TestHostilePartnerManifest(t *testing.T) {
	var victim, hostile *bulkPartner
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		victim = newBulkPartner(t, w.auth, newStorage(t, "{}\n"), 0)
		hostile = newBulkPartner(t, w.auth, newStorage(t, "{}\n"), 0)
		hostile.manifestURLs = []string{victim.base() + "/bulkfiles/Patient.ndjson"}
		c.Organizations[fwdOID] = config.Organization{Name: "Victim", FHIRBase: victim.base(), TokenURL: w.auth.TokenURL, AllowPrivateAddresses: true}
		c.Organizations[hostileOID] = config.Organization{Name: "Hostile", FHIRBase: hostile.base(), TokenURL: w.auth.TokenURL, AllowPrivateAddresses: true}
	}})
	resp, body := w.do(http.MethodGet, "/fhir/"+hostileOID+"/bulkstatus/job1", nil, nil)
	var m struct{ Output []struct{ URL string } }
	if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != http.StatusOK || len(m.Output) != 1 {
		t.Fatalf("manifest: %d %v %s", resp.StatusCode, err, body)
	}
	if strings.Contains(string(body), victim.URL) {
		t.Errorf("the manifest shows the other partner's URL: %s", body)
	}
	resp, _ = w.do(http.MethodGet, strings.TrimPrefix(m.Output[0].URL, w.gateway.URL), nil, nil)
	_, _, fileAuth := victim.counts()
	if len(fileAuth) != 1 || fileAuth[0] != "" {
		t.Errorf("the other partner's server saw Authorization %q (answer %d)", fileAuth, resp.StatusCode)
	}
	// A link made for the hostile partner does not open under the victim.
	victimPath := strings.Replace(strings.TrimPrefix(m.Output[0].URL, w.gateway.URL), hostileOID, fwdOID, 1)
	if resp, _ := w.do(http.MethodGet, victimPath, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a hostile partner's link under the victim's OID: %d", resp.StatusCode)
	}
	if _, _, fileAuth := victim.counts(); len(fileAuth) != 1 {
		t.Errorf("the victim got %d file requests, want 1", len(fileAuth))
	}
	// Internal addresses in a manifest: proxy.TestBulkExportThroughTheProxy
	// (a partner not allowed private addresses; these test servers are on
	// loopback, so they are).
}
