package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/audit"
	"github.com/cqgate/cqgate/proxy/fhirurl"
	"github.com/cqgate/cqgate/tenant"
)

const partnerBase = "https://fhir.partner.example/r4"

// hostNet is an in-memory network of named HTTPS hosts: the partner, a
// storage origin of the same party, another partner, and whatever a test
// adds. It records every request that reached a host, with its
// Authorization header.
type hostNet struct {
	mu    sync.Mutex
	hosts map[string]http.Handler
	seen  []hostRequest
}

type hostRequest struct {
	Host, Path, Auth, Range, AcceptEncoding string
}

func (n *hostNet) RoundTrip(r *http.Request) (*http.Response, error) {
	n.mu.Lock()
	h := n.hosts[r.URL.Host]
	if h != nil {
		n.seen = append(n.seen, hostRequest{r.URL.Host, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Range"), r.Header.Get("Accept-Encoding")})
	}
	n.mu.Unlock()
	if h == nil {
		return nil, errors.New("no such host " + r.URL.Host)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func (n *hostNet) requests(host string) []hostRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []hostRequest
	for _, s := range n.seen {
		if s.Host == host {
			out = append(out, s)
		}
	}
	return out
}

// publicTenant resolves oid to the partner base, as a partner on the
// internet is (no private addresses allowed).
func publicTenant(t *testing.T, oid, base string) *tenant.Tenant {
	t.Helper()
	d := &fakeDirectory{base: base}
	r := &tenant.Resolver{Directory: d, Discovery: d, Orgs: map[string]tenant.Settings{oid: {}}}
	tn, err := r.Resolve(context.Background(), oid)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

type fwdWorld struct {
	t     *testing.T
	net   *hostNet
	px    *Proxy
	creds *fakeCredentials
	ten   *tenant.Tenant
	logs  *bytes.Buffer // what the proxy logged
}

func newFwdWorld(t *testing.T, pb *PublicBase, partner http.Handler) *fwdWorld {
	t.Helper()
	n := &hostNet{hosts: map[string]http.Handler{"fhir.partner.example": partner}}
	log := logrus.New()
	logs := new(bytes.Buffer)
	log.SetOutput(logs)
	creds := &fakeCredentials{}
	return &fwdWorld{t: t, net: n, creds: creds, ten: publicTenant(t, "1.2.3", partnerBase), logs: logs,
		px: New(Config{Transport: n, Credentials: creds, Logger: log, PublicBase: pb})}
}

// do sends a request for target (a URL on cqgate) through Forward.
func (w *fwdWorld) do(method, target string, hdr http.Header, rec *audit.Record) *httptest.ResponseRecorder {
	w.t.Helper()
	return w.doFor(w.ten, method, target, hdr, rec)
}

func (w *fwdWorld) doFor(tn *tenant.Tenant, method, target string, hdr http.Header, rec *audit.Record) *httptest.ResponseRecorder {
	w.t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "192.0.2.10:5555"
	for k, v := range hdr {
		r.Header[k] = v
	}
	if rec != nil {
		r = r.WithContext(audit.NewContext(r.Context(), rec))
	}
	u, _ := url.Parse(target)
	rest := strings.TrimPrefix(u.EscapedPath(), "/fhir/"+tn.OID)
	fhirPath, err := ParsePath(rest)
	if err != nil {
		w.t.Fatalf("ParsePath(%q): %v", rest, err)
	}
	rr := httptest.NewRecorder()
	w.px.Forward(rr, r, tn, fhirPath)
	return rr
}

const searchset = `{"resourceType":"Bundle","type":"searchset","total":3,
 "link":[{"relation":"self","url":"https://fhir.partner.example/r4/Observation?patient=1&_count=2"},
         {"relation":"next","url":"https://FHIR.partner.example:443/r4/Observation?patient=1&_count=2&_offset=2"}],
 "entry":[{"fullUrl":"https://fhir.partner.example/r4/Observation/a","resource":{"resourceType":"Observation","id":"a",
   "subject":{"reference":"Patient/1"},"note":[{"text":"see https://elsewhere.example/r4/x"}]}}]}`

const searchsetXML = `<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/>` +
	`<link><relation value="next"/><url value="https://fhir.partner.example/r4/Observation?patient=1&amp;_offset=2"/></link>` +
	`<entry><fullUrl value="https://fhir.partner.example/r4/Observation/a"/></entry></Bundle>`

func partnerFHIR() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/Observation", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("_format") == "xml" {
			w.Header().Set("Content-Type", "application/fhir+xml")
			io.WriteString(w, searchsetXML)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("ETag", `"strong-1"`)
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && r.URL.Query().Get("gz") == "1" {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, searchset)
			zw.Close()
			return
		}
		io.WriteString(w, searchset)
	})
	mux.HandleFunc("POST /r4/Patient", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://fhir.partner.example/r4/Patient/new/_history/1")
		w.Header().Set("Content-Location", "/r4/Patient/new/_history/1")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"resourceType":"Patient","id":"new"}`)
	})
	return mux
}

func nextLink(t *testing.T, body []byte) (next string, full string) {
	t.Helper()
	var b struct {
		Link  []struct{ Relation, URL string }
		Entry []struct {
			FullURL string `json:"fullUrl"`
		}
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if len(b.Entry) > 0 {
		full = b.Entry[0].FullURL
	}
	return next, full
}

func TestPublicBaseOfRewrittenLinks(t *testing.T) {
	t.Parallel()
	public, _ := fhirurl.ParsePublicURL("https://cqgate.internal/")
	trusted := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	tests := []struct {
		name   string
		pb     *PublicBase
		target string
		hdr    http.Header
		want   string // public base for the organization; "" for a 400
	}{
		{"request's own host", nil, "http://gw.local:8080/fhir/1.2.3/Observation?patient=1", nil, "http://gw.local:8080/fhir/1.2.3"},
		{"public_url wins over everything", &PublicBase{URL: public, Trusted: trusted}, "http://gw.local:8080/fhir/1.2.3/Observation?patient=1",
			http.Header{"X-Forwarded-Host": {"evil.example"}}, "https://cqgate.internal/fhir/1.2.3"},
		{"forwarded headers from a trusted proxy", &PublicBase{Trusted: trusted}, "http://10.0.0.5/fhir/1.2.3/Observation",
			http.Header{"X-Forwarded-Host": {"api.example.org, inner.example"}, "X-Forwarded-Proto": {"https"}}, "https://api.example.org/fhir/1.2.3"},
		{"forwarded headers from anyone else are ignored", &PublicBase{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			"http://gw.local/fhir/1.2.3/Observation", http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}}, "http://gw.local/fhir/1.2.3"},
		{"hostile forwarded host from a trusted proxy", &PublicBase{Trusted: trusted}, "http://gw.local/fhir/1.2.3/Observation",
			http.Header{"X-Forwarded-Host": {"evil.example/x?"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFwdWorld(t, tc.pb, partnerFHIR())
			rr := w.do(http.MethodGet, tc.target, tc.hdr, nil)
			if tc.want == "" {
				if rr.Code != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", rr.Code)
				}
				if n := len(w.net.requests("fhir.partner.example")); n != 0 {
					t.Errorf("the partner got %d requests", n)
				}
				return
			}
			next, full := nextLink(t, rr.Body.Bytes())
			if want := tc.want + "/Observation?patient=1&_count=2&_offset=2"; next != want {
				t.Errorf("next = %q, want %q", next, want)
			}
			if want := tc.want + "/Observation/a"; full != want {
				t.Errorf("fullUrl = %q, want %q", full, want)
			}
			if !strings.Contains(rr.Body.String(), "https://elsewhere.example/r4/x") {
				t.Errorf("a URL elsewhere was changed: %s", rr.Body)
			}
		})
	}
}

func TestHostileHostHeaders(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"evil.example/path", "user@evil.example", "a b", "evil.example:80:80", "[::1", "evil.example:port", "%65vil.example", ""} {
		if fhirurl.ValidHost(host) {
			t.Errorf("ValidHost(%q) = true", host)
		}
	}
	for _, host := range []string{"cqgate.internal", "cqgate.internal:8443", "127.0.0.1:8080", "[::1]:8080", "[2001:db8::1]", "my_host.local"} {
		if !fhirurl.ValidHost(host) {
			t.Errorf("ValidHost(%q) = false", host)
		}
	}
	w := newFwdWorld(t, nil, partnerFHIR())
	r := httptest.NewRequest(http.MethodGet, "http://x/fhir/1.2.3/Observation", nil)
	r.Host = "evil.example/steal?"
	rr := httptest.NewRecorder()
	w.px.Forward(rr, r, w.ten, "/Observation")
	if rr.Code != http.StatusBadRequest || !strings.Contains(rr.Body.String(), "server.public_url") {
		t.Errorf("status %d, %s", rr.Code, rr.Body)
	}
	if n := len(w.net.requests("fhir.partner.example")); n != 0 {
		t.Errorf("the partner got %d requests", n)
	}
}

func TestRewritesXMLAndGzipAndCreate(t *testing.T) {
	t.Parallel()
	w := newFwdWorld(t, nil, partnerFHIR())

	rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Observation?patient=1&_format=xml", nil, nil)
	if body := rr.Body.String(); !strings.Contains(body, `<url value="http://gw.local/fhir/1.2.3/Observation?patient=1&amp;_offset=2"/>`) ||
		!strings.Contains(body, `<fullUrl value="http://gw.local/fhir/1.2.3/Observation/a"/>`) || strings.Contains(body, "partner.example") {
		t.Errorf("XML not rewritten: %s", body)
	}

	// The partner gzips; a caller that asked for br gets the rewritten
	// body in identity coding, and the partner was asked for gzip.
	rr = w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Observation?patient=1&gz=1", http.Header{"Accept-Encoding": {"br"}}, nil)
	if ce := rr.Header().Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding %q to the caller", ce)
	}
	if next, _ := nextLink(t, rr.Body.Bytes()); !strings.HasPrefix(next, "http://gw.local/fhir/1.2.3/") {
		t.Errorf("next = %q", next)
	}
	if et := rr.Header().Get("ETag"); et != `W/"strong-1"` {
		t.Errorf("ETag %q, want the weak form", et)
	}
	reqs := w.net.requests("fhir.partner.example")
	if ae := reqs[len(reqs)-1].AcceptEncoding; ae != "gzip" {
		t.Errorf("Accept-Encoding upstream %q, want gzip", ae)
	}

	rr = w.do(http.MethodPost, "http://gw.local/fhir/1.2.3/Patient", nil, nil)
	if rr.Code != http.StatusCreated || rr.Header().Get("Location") != "http://gw.local/fhir/1.2.3/Patient/new/_history/1" ||
		rr.Header().Get("Content-Location") != "http://gw.local/fhir/1.2.3/Patient/new/_history/1" {
		t.Errorf("create: %d, Location %q, Content-Location %q", rr.Code, rr.Header().Get("Location"), rr.Header().Get("Content-Location"))
	}
}

// bulkPartner answers a kick-off, a manifest naming files on four
// origins, and files; a file under the base redirects to storage.
func bulkPartner(requires bool) http.Handler { return bulkPartnerSized(requires, false) }

// bulkPartnerSized is bulkPartner, its manifest sent with a
// Content-Length when knownLength (rewritten whole, then looked at where
// it is: fhirurl.Peek) rather than streamed.
func bulkPartnerSized(requires, knownLength bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/Patient/$export", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", partnerBase+"/bulkstatus/job1?secret-ish=1")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /r4/bulkstatus/job1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var body bytes.Buffer
		defer func() {
			if knownLength {
				w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
			}
			w.Write(body.Bytes())
		}()
		json.NewEncoder(&body).Encode(map[string]any{
			"transactionTime": "2026-12-06T00:00:00Z", "request": partnerBase + "/Patient/$export", "requiresAccessToken": requires,
			"output": []map[string]any{
				{"type": "Patient", "url": partnerBase + "/bulkfiles/job1/Patient.ndjson", "count": 2},
				{"type": "Observation", "url": "https://storage.partner.example/bucket/Observation.ndjson?sig=s3cr3t"},
				{"type": "Encounter", "url": "https://fhir.other-partner.example/r4/files/Encounter.ndjson"},
				{"type": "Condition", "url": "https://169.254.169.254/latest/meta-data/"},
			},
			"error":   []map[string]any{{"type": "OperationOutcome", "url": "https://storage.partner.example/bucket/errors.ndjson"}},
			"deleted": []map[string]any{},
		})
	})
	mux.HandleFunc("GET /r4/bulkfiles/job1/Patient.ndjson", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://blobs.example.net/obj/Patient.ndjson?sig=abc", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("GET /r4/bulkfiles/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://blobs.example.net/loop", http.StatusFound)
	})
	mux.HandleFunc("GET /r4/bulkfiles/internal", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://10.1.2.3/obj", http.StatusFound)
	})
	mux.HandleFunc("GET /r4/bulkfiles/same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, partnerBase+"/bulkfiles/job1/Patient.ndjson", http.StatusFound)
	})
	return mux
}

func ndjson(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" && strings.HasPrefix(r.URL.Path, "/obj") {
			http.Error(w, "storage refuses Authorization", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/loop" {
			http.Redirect(w, r, "https://blobs.example.net/loop", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		http.ServeContent(w, r, "f.ndjson", timeZero, strings.NewReader(body))
	})
}

var timeZero = time.Time{}

// A manifest is told by its keys wherever they are: a server that sorts
// its keys writes "deleted" and "error" first, and two presigned URLs in
// "error" push "output" and "transactionTime" past the first 512 bytes.
// Its storage URLs are sealed all the same, streamed or of known length.
func TestBulkManifestKeysLate(t *testing.T) {
	t.Parallel()
	sig := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=" + strings.Repeat("ab", 32)
	for _, knownLength := range []bool{false, true} {
		t.Run("knownLength="+strconv.FormatBool(knownLength), func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /r4/bulkstatus/job1", func(w http.ResponseWriter, r *http.Request) {
				b, _ := json.Marshal(map[string]any{ // keys sorted
					"transactionTime": "2026-12-06T00:00:00Z", "request": partnerBase + "/Patient/$export", "requiresAccessToken": false,
					"output": []map[string]any{{"type": "Patient", "url": "https://storage.partner.example/bucket/Patient.ndjson?" + sig}},
					"error": []map[string]any{
						{"type": "OperationOutcome", "url": "https://storage.partner.example/bucket/errors-1.ndjson?" + sig},
						{"type": "OperationOutcome", "url": "https://storage.partner.example/bucket/errors-2.ndjson?" + sig},
					},
					"deleted": []map[string]any{},
				})
				if i := bytes.Index(b, []byte(`"output"`)); i < peekSize {
					t.Fatalf("output at %d: the test needs it past the first %d bytes", i, peekSize)
				}
				w.Header().Set("Content-Type", "application/json")
				if knownLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(b)))
				}
				w.Write(b)
			})
			w := newFwdWorld(t, nil, mux)
			rec := &audit.Record{}
			rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/bulkstatus/job1", nil, rec)
			if rr.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rr.Code, rr.Body)
			}
			if body := rr.Body.String(); strings.Contains(body, "storage.partner.example") || strings.Contains(body, "X-Amz-Signature") {
				t.Errorf("the manifest hands the caller storage URLs:\n%.400s", body)
			}
			var m struct{ Output, Error []struct{ URL string } }
			if err := json.Unmarshal(rr.Body.Bytes(), &m); err != nil || len(m.Output) != 1 || len(m.Error) != 2 {
				t.Fatalf("manifest %v: %s", err, rr.Body)
			}
			for _, f := range append(m.Output, m.Error...) {
				if !strings.HasPrefix(f.URL, "http://gw.local/fhir/1.2.3/"+DownloadSegment+"/") {
					t.Errorf("file URL %q is not a cqgate download link", f.URL)
				}
			}
			if rec.Bulk == nil || rec.Bulk.Event != audit.BulkComplete || rec.Bulk.Files != 1 {
				t.Errorf("audit: %+v", rec.Bulk)
			}
		})
	}
}

// A bulk file's storage, reached by a redirect, is named in errors by
// its origin alone: its path and signature never reach the caller, when
// the hop fails (502) and when the egress guard refuses it (403), nor the
// log.
func TestStorageFailuresNameOnlyTheOrigin(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r4/bulkfiles/down", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://blobs-down.example.net/private-bucket/job1/Patient.ndjson?sig=s3cr3t", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("GET /r4/bulkfiles/plain", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://blobs.example.net/private-bucket/job1/Patient.ndjson?sig=s3cr3t", http.StatusTemporaryRedirect)
	})
	w := newFwdWorld(t, nil, mux)
	for _, tt := range []struct {
		path   string
		status int
		origin string
	}{
		{"/bulkfiles/down", http.StatusBadGateway, "https://blobs-down.example.net"},
		{"/bulkfiles/plain", http.StatusForbidden, "http://blobs.example.net"},
	} {
		w.logs.Reset()
		rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3"+tt.path, nil, nil)
		if rr.Code != tt.status || !strings.Contains(rr.Body.String(), tt.origin) {
			t.Errorf("%s: %d %s; want %d naming %s", tt.path, rr.Code, rr.Body, tt.status, tt.origin)
		}
		for _, leak := range []string{"private-bucket", "s3cr3t"} {
			if strings.Contains(rr.Body.String(), leak) || strings.Contains(w.logs.String(), leak) {
				t.Errorf("%s: %q in the answer or the log: %s\n%s", tt.path, leak, rr.Body, w.logs.String())
			}
		}
	}
}

// No redirect the caller gets leads around cqgate: one under the FHIR
// base (a network-path reference too) is handed over mapped; a GET's
// redirect elsewhere on the partner's origin is followed without the
// token; a write's redirect outside the base is refused.
func TestRedirectsNeverLeadAroundTheGateway(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /r4/Patient", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://collector.evil.example/r4/Patient")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("PUT /r4/Patient/9", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", partnerBase+"/Patient/10")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
	mux.HandleFunc("GET /r4/Patient/1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://fhir.partner.example/login?next=/r4/Patient/1", http.StatusFound)
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "sign in")
	})
	mux.HandleFunc("GET /r4/Patient/2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "//fhir.partner.example/r4/Patient/3")
		w.WriteHeader(http.StatusFound)
	})
	w := newFwdWorld(t, nil, mux)
	const gw = "http://gw.local/fhir/1.2.3"

	rr := w.do(http.MethodGet, gw+"/Patient/2", nil, nil)
	if loc := rr.Header().Get("Location"); rr.Code != http.StatusFound || loc != gw+"/Patient/3" {
		t.Errorf("GET, network-path Location under the base: %d, Location %q", rr.Code, loc)
	}
	rr = w.do(http.MethodPut, gw+"/Patient/9", nil, nil)
	if loc := rr.Header().Get("Location"); rr.Code != http.StatusPermanentRedirect || loc != gw+"/Patient/10" {
		t.Errorf("PUT, Location under the base: %d, Location %q", rr.Code, loc)
	}
	rr = w.do(http.MethodPost, gw+"/Patient", nil, nil)
	if rr.Code != http.StatusBadGateway || rr.Header().Get("Location") != "" || !strings.Contains(rr.Body.String(), "OperationOutcome") {
		t.Errorf("POST, Location on another origin: %d, Location %q, %s", rr.Code, rr.Header().Get("Location"), rr.Body)
	}
	rr = w.do(http.MethodGet, gw+"/Patient/1", nil, nil)
	if rr.Code != http.StatusOK || rr.Header().Get("Location") != "" || rr.Body.String() != "sign in" {
		t.Errorf("GET, Location outside the base: %d, Location %q, %s", rr.Code, rr.Header().Get("Location"), rr.Body)
	}
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	for _, s := range w.net.seen {
		if s.Path == "/login" && s.Auth != "" {
			t.Errorf("the redirect outside the base got Authorization")
		}
	}
}

// A FHIR body in a coding cqgate did not ask for (it asks for gzip)
// cannot be rewritten: a 502, never the partner's URLs.
func TestUnaskedCodingIsRefused(t *testing.T) {
	t.Parallel()
	for _, coding := range []string{"deflate", "br", "gzip, gzip"} {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /r4/Observation", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Header().Set("Content-Encoding", coding)
			io.WriteString(w, `{"resourceType":"Bundle","link":[{"relation":"next","url":"`+partnerBase+`/Observation?page=2"}]}`)
		})
		w := newFwdWorld(t, nil, mux)
		rr := w.do(http.MethodGet, "http://gw.local/fhir/1.2.3/Observation", http.Header{"Accept-Encoding": {"deflate, br, gzip"}}, nil)
		if rr.Code != http.StatusBadGateway || strings.Contains(rr.Body.String(), "fhir.partner.example") || !strings.Contains(rr.Body.String(), "OperationOutcome") {
			t.Errorf("%s: %d %s", coding, rr.Code, rr.Body)
		}
	}
}

func TestBulkExportThroughTheProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		requires, knownLength bool
	}{{true, false}, {false, false}, {true, true}} {
		requires := tc.requires
		name := map[bool]string{true: "requiresAccessToken", false: "no token required"}[requires]
		if tc.knownLength {
			name += ", manifest of known length"
		}
		t.Run(name, func(t *testing.T) {
			w := newFwdWorld(t, nil, bulkPartnerSized(requires, tc.knownLength))
			patients := `{"resourceType":"Patient","id":"p1"}` + "\n" + `{"resourceType":"Patient","id":"p2"}` + "\n"
			w.net.hosts["blobs.example.net"] = ndjson(patients)
			w.net.hosts["storage.partner.example"] = ndjson(`{"resourceType":"Observation","id":"o1"}` + "\n")
			w.net.hosts["fhir.other-partner.example"] = ndjson(`{"resourceType":"Encounter","id":"e1"}` + "\n")
			w.net.hosts["169.254.169.254"] = ndjson("metadata")
			const gw = "http://gw.local/fhir/1.2.3"

			// Kick-off: the status URL leads back to cqgate; audited by path.
			rec := &audit.Record{}
			rr := w.do(http.MethodGet, gw+"/Patient/$export", http.Header{"Prefer": {"respond-async"}}, rec)
			if rr.Code != http.StatusAccepted || rr.Header().Get("Content-Location") != gw+"/bulkstatus/job1?secret-ish=1" {
				t.Fatalf("kick-off: %d, Content-Location %q", rr.Code, rr.Header().Get("Content-Location"))
			}
			if rec.Bulk == nil || rec.Bulk.Event != audit.BulkKickoff || rec.Bulk.StatusPath != "/fhir/1.2.3/bulkstatus/job1" {
				t.Errorf("kick-off audit: %+v", rec.Bulk)
			}

			// The manifest: every URL leads to cqgate.
			rec = &audit.Record{}
			rr = w.do(http.MethodGet, gw+"/bulkstatus/job1", nil, rec)
			var m struct {
				Request string
				Output  []struct{ Type, URL string }
				Error   []struct{ Type, URL string }
			}
			if err := json.Unmarshal(rr.Body.Bytes(), &m); err != nil || len(m.Output) != 4 || len(m.Error) != 1 {
				t.Fatalf("manifest: %v %s", err, rr.Body)
			}
			for _, leak := range []string{"partner.example", "169.254", "s3cr3t", "sig="} {
				if strings.Contains(rr.Body.String(), leak) {
					t.Errorf("the manifest shows %q: %s", leak, rr.Body)
				}
			}
			if m.Request != gw+"/Patient/$export" || m.Output[0].URL != gw+"/bulkfiles/job1/Patient.ndjson" {
				t.Errorf("request %q, output[0] %q", m.Request, m.Output[0].URL)
			}
			for _, o := range append(m.Output[1:], m.Error...) {
				if !strings.HasPrefix(o.URL, gw+"/"+DownloadSegment+"/") {
					t.Errorf("%s: %q is not a cqgate download link", o.Type, o.URL)
				}
			}
			if rec.Bulk == nil || rec.Bulk.Event != audit.BulkComplete || rec.Bulk.Files != 4 {
				t.Errorf("completion audit: %+v", rec.Bulk)
			}

			// Under the base, redirected to storage: followed without the
			// token, Range passed, the caller never sees the storage URL.
			rec = &audit.Record{}
			rr = w.do(http.MethodGet, m.Output[0].URL, http.Header{"Range": {"bytes=0-9"}}, rec)
			if rr.Code != http.StatusPartialContent || rr.Body.String() != patients[:10] || rr.Header().Get("Location") != "" {
				t.Errorf("redirected file: %d %q, Location %q", rr.Code, rr.Body, rr.Header().Get("Location"))
			}
			if rec.Bulk == nil || rec.Bulk.Event != audit.BulkDownload || rec.Bulk.Bytes != 10 {
				t.Errorf("download audit: %+v", rec.Bulk)
			}
			rec = &audit.Record{}
			rr = w.do(http.MethodGet, m.Output[0].URL, nil, rec)
			if rr.Code != http.StatusOK || rr.Body.String() != patients {
				t.Errorf("whole file: %d %q", rr.Code, rr.Body)
			}
			if rec.Bulk == nil || rec.Bulk.Bytes != int64(len(patients)) || rec.Bulk.FileType != "Patient" {
				t.Errorf("download audit: %+v", rec.Bulk)
			}
			for _, s := range w.net.requests("blobs.example.net") {
				if s.Auth != "" {
					t.Errorf("storage got Authorization %q", s.Auth)
				}
			}

			// Same party (registrable domain): the token only when required.
			rec = &audit.Record{}
			rr = w.do(http.MethodGet, m.Output[1].URL, nil, rec)
			if rr.Code != http.StatusOK || !strings.Contains(rr.Body.String(), `"o1"`) {
				t.Errorf("same-party file: %d %s", rr.Code, rr.Body)
			}
			if rec.Bulk == nil || rec.Bulk.FileType != "Observation" {
				t.Errorf("download audit: %+v", rec.Bulk)
			}
			st := w.net.requests("storage.partner.example")
			if len(st) != 1 || (st[0].Auth != "") == !requires || st[0].Path != "/bucket/Observation.ndjson" {
				t.Errorf("same-party storage saw %+v (requiresAccessToken %v)", st, requires)
			}

			// Another partner's origin: fetched, never with the token.
			rr = w.do(http.MethodGet, m.Output[2].URL, nil, nil)
			if rr.Code != http.StatusOK || !strings.Contains(rr.Body.String(), `"e1"`) {
				t.Errorf("other origin: %d %s", rr.Code, rr.Body)
			}
			for _, s := range w.net.requests("fhir.other-partner.example") {
				if s.Auth != "" {
					t.Errorf("another partner got Authorization %q", s.Auth)
				}
			}

			// An internal address: refused, never contacted.
			rr = w.do(http.MethodGet, m.Output[3].URL, nil, nil)
			if rr.Code != http.StatusForbidden {
				t.Errorf("internal address: %d %s", rr.Code, rr.Body)
			}
			if n := len(w.net.requests("169.254.169.254")); n != 0 {
				t.Errorf("the internal address got %d requests", n)
			}
		})
	}
}

func TestDownloadLinksCannotBeForged(t *testing.T) {
	t.Parallel()
	w := newFwdWorld(t, nil, bulkPartner(true))
	w.net.hosts["storage.partner.example"] = ndjson("x\n")
	sealed, err := w.px.links.Seal("1.2.3", Link{URL: "https://storage.partner.example/bucket/a.ndjson", RequiresToken: true})
	if err != nil {
		t.Fatal(err)
	}
	other := publicTenant(t, "1.2.4", "https://fhir.partner.example/r4-other")
	tampered := []byte(sealed)
	tampered[len(tampered)/2] ^= 1
	for name, tc := range map[string]struct {
		tn     *tenant.Tenant
		method string
		link   string
		want   int
	}{
		"the link works":                  {w.ten, http.MethodGet, sealed, http.StatusOK},
		"under another organization":      {other, http.MethodGet, sealed, http.StatusNotFound},
		"tampered":                        {w.ten, http.MethodGet, string(tampered), http.StatusNotFound},
		"made up":                         {w.ten, http.MethodGet, "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv", http.StatusNotFound},
		"a method other than GET or HEAD": {w.ten, http.MethodPost, sealed, http.StatusMethodNotAllowed},
	} {
		t.Run(name, func(t *testing.T) {
			rr := w.doFor(tc.tn, tc.method, "http://gw.local/fhir/"+tc.tn.OID+"/"+DownloadSegment+"/"+tc.link, nil, nil)
			if rr.Code != tc.want {
				t.Errorf("status %d, want %d: %s", rr.Code, tc.want, rr.Body)
			}
		})
	}
	if n := len(w.net.requests("storage.partner.example")); n != 1 {
		t.Errorf("storage got %d requests, want only the genuine one", n)
	}
	// Links made by another process (another random key) are void.
	other2, _ := NewLinks(nil)
	if _, err := other2.Open("1.2.3", sealed); !errors.Is(err, ErrBadLink) {
		t.Errorf("a link opened under another key: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	w := newFwdWorld(t, nil, bulkPartner(true))
	w.net.hosts["blobs.example.net"] = ndjson("x\n")
	w.net.hosts["10.1.2.3"] = ndjson("internal\n")
	const gw = "http://gw.local/fhir/1.2.3"
	rr := w.do(http.MethodGet, gw+"/bulkfiles/loop", nil, nil)
	if rr.Code != http.StatusBadGateway || !strings.Contains(rr.Body.String(), "redirects") {
		t.Errorf("redirect loop: %d %s", rr.Code, rr.Body)
	}
	if n := len(w.net.requests("blobs.example.net")); n != maxRedirects {
		t.Errorf("%d hops followed, want %d", n, maxRedirects)
	}
	rr = w.do(http.MethodGet, gw+"/bulkfiles/internal", nil, nil)
	if rr.Code != http.StatusForbidden || len(w.net.requests("10.1.2.3")) != 0 {
		t.Errorf("redirect to an internal address: %d %s", rr.Code, rr.Body)
	}
	// On the partner's own origin: the caller follows, through cqgate.
	rr = w.do(http.MethodGet, gw+"/bulkfiles/same", nil, nil)
	if rr.Code != http.StatusFound || rr.Header().Get("Location") != gw+"/bulkfiles/job1/Patient.ndjson" {
		t.Errorf("same-origin redirect: %d, Location %q", rr.Code, rr.Header().Get("Location"))
	}
	for _, s := range w.net.requests("blobs.example.net") {
		if s.Auth != "" {
			t.Errorf("storage got Authorization %q", s.Auth)
		}
	}
}

func TestLinksRoundTrip(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, LinkKeySize)
	a, err := NewLinks(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewLinks(key)
	in := Link{URL: "https://s.example/o?sig=1&x=%2F", Type: "Observation", RequiresToken: true}
	s, err := a.Seal("1.2.3", in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "s.example") || strings.ContainsAny(s, "/+=?") {
		t.Errorf("sealed link %q shows the URL or is not URL-safe", s)
	}
	got, err := b.Open("1.2.3", s)
	if err != nil || got != in {
		t.Errorf("Open = %+v, %v; want %+v (the same key in another replica)", got, err, in)
	}
	if _, err := NewLinks([]byte("short")); err == nil {
		t.Error("a short key was taken")
	}
}
