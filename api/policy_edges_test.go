package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/internal/callerauth"
	"github.com/cqgate/cqgate/internal/failure"
	"github.com/cqgate/cqgate/tenant"
)

// FHIR JSON property names are
// case-sensitive (FHIR R4 JSON, "JSON property names are case-sensitive"),
// and a FHIR server reads "method", "entry", "request" only in that case
// (an unknown "Method" is ignored by lenient parsers such as HAPI's
// default). Go's encoding/json matches field names case-insensitively and
// lets the last match win, so checkBatch can read a different method (or
// no entries at all) than the one the FHIR server executes. A caller
// allowed GET and POST but not DELETE must not get a DELETE through.
func TestBatchKeysToldApartByCase(t *testing.T) {
	keys, err := callerauth.NewAPIKeys(map[string]string{"writer": callerauth.HashKey("writer-key-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{"writer": {Organizations: []string{"*"}, Methods: []string{"GET", "POST"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, body string }{
		{"Method shadows method", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1","Method":"GET"}}]}`},
		{"Entry shadows entry", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1"}}],"Entry":[]}`},
		{"Request shadows request", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1"},"Request":null}]}`},
		{"method repeated", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1","method":"GET"}}]}`},
		{"long s folds to s", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1"},"reque\u017ft":null}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd := &recordingForwarder{}
			h := New(Config{Tenants: stubTenants{}, Proxy: fwd, Auth: keys, Policy: policy, MaxBodyBytes: 1 << 20, Logger: logrus.New()})
			req := httptest.NewRequest(http.MethodPost, "/fhir/1.2.3/", strings.NewReader(tc.body))
			req.Header.Set("X-API-Key", "writer-key-0123456789abcdef")
			req.Header.Set("Content-Type", "application/fhir+json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if fwd.oid != "" || w.Code != http.StatusForbidden && w.Code != http.StatusBadRequest {
				t.Fatalf("a Bundle whose only entry is a DELETE (as a FHIR server reads it) was forwarded: status %d, forwarded to %q", w.Code, fwd.oid)
			}
		})
	}
}

// A directory search honours the caller's organizations rule as the
// lookup does: _id of a forbidden OID is a 403, and a search by name
// leaves out what the caller may not reach (the search runs on cqgate's
// directory API key).
func TestDirectorySearchHonoursPolicy(t *testing.T) {
	keys, err := callerauth.NewAPIKeys(map[string]string{"narrow": callerauth.HashKey("narrow-key-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{"narrow": {Organizations: []string{"9.9.9"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := &stubSearcher{}
	h := New(Config{Tenants: &countingTenants{}, Proxy: &recordingForwarder{}, Directory: s, Auth: keys, Policy: policy, Logger: logrus.New()})
	get := func(target string) int {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("X-API-Key", "narrow-key-0123456789abcdef")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if code := get("/directory/Organization/1.2.3"); code != http.StatusForbidden {
		t.Fatalf("lookup of a forbidden OID: %d, want 403", code)
	}
	if code := get("/directory/Organization?_id=1.2.3"); code != http.StatusForbidden {
		t.Errorf("search for the same forbidden OID: %d (answered from the directory: %q), want 403 as the lookup", code, s.got.ID)
	}
	// A search by name answers only the organizations the caller may
	// reach, and no directory total that counts the others.
	req := httptest.NewRequest(http.MethodGet, "/directory/Organization?name=Example", nil)
	req.Header.Set("X-API-Key", "narrow-key-0123456789abcdef")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "1.2.3") || !strings.Contains(w.Body.String(), `"total":-1`) {
		t.Errorf("search by name: %d %s", w.Code, w.Body)
	}
}

// scopeForwarder records the scope of the tenant a request is forwarded
// with: the scope its token is exchanged for.
type scopeForwarder struct{ scope string }

func (f *scopeForwarder) Forward(w http.ResponseWriter, _ *http.Request, t *tenant.Tenant, _ string) {
	f.scope = t.Scope
	w.WriteHeader(http.StatusTeapot)
}

// X-Cqgate-Scope must be an OAuth scope (RFC 6749 section 3.3): scope
// tokens separated by spaces. A tab would split it one way in the scope
// checks and another in the token request, carrying a second scope
// (system/Patient.cud, past a caller and an organization limited to
// system/*.read) into it: a 400, nothing forwarded.
func TestScopeHeaderIsAnOAuthScope(t *testing.T) {
	keys, err := callerauth.NewAPIKeys(map[string]string{"reader": callerauth.HashKey("reader-key-0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := callerauth.NewPolicy(map[string]callerauth.Rule{"reader": {Organizations: []string{"*"}, Scopes: []string{"system/*.read"}}})
	if err != nil {
		t.Fatal(err)
	}
	fwd := &scopeForwarder{}
	h := New(Config{Tenants: scopedTenants{}, Proxy: fwd, Auth: keys, Policy: policy, Logger: logrus.New()})
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/fhir/1.2.3/Patient/1", nil)
	req.Header.Set("X-API-Key", "reader-key-0123456789abcdef")
	req.Header.Set(ScopeHeader, "system/Patient.rs?x=1\tsystem/Patient.cud")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || fwd.scope != "" {
		t.Errorf("status %d, token scope asked for %q: want 400, nothing forwarded", resp.StatusCode, fwd.scope)
	}
}

// scopedTenants is stubTenants whose tenants carry the configured scope.
type scopedTenants struct{ stubTenants }

func (scopedTenants) Resolve(_ context.Context, oid string) (*tenant.Tenant, error) {
	return &tenant.Tenant{OID: oid, Name: "Test", Scope: "system/*.read"}, nil
}

// A _format cqgate cannot rewrite (Turtle, HTML) is a 400: the
// partner's URLs in it would reach the caller as they are. JSON and XML,
// by name or media type (encoded too), are forwarded.
func TestFormatsCqgateRewritesOnly(t *testing.T) {
	for query, want := range map[string]int{
		"_format=ttl":                                   http.StatusBadRequest,
		"_format=html":                                  http.StatusBadRequest,
		"_format=text%2Fhtml":                           http.StatusBadRequest,
		"_format=json":                                  http.StatusTeapot,
		"_format=XML":                                   http.StatusTeapot,
		"_format=application/fhir%2Bxml":                http.StatusTeapot,
		"_format=application%2Ffhir%2Bjson":             http.StatusTeapot,
		"name=x&_format=application/json":               http.StatusTeapot,
		"_format=application/fhir+json;fhirVersion=4.0": http.StatusTeapot,
	} {
		fwd := &recordingForwarder{}
		h := newTestRouter(stubTenants{}, fwd, new(bytes.Buffer))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient?"+query, nil))
		if w.Code != want {
			t.Errorf("%s: %d %s, want %d", query, w.Code, w.Body, want)
		}
	}
}

// An Accept that prefers a format cqgate cannot rewrite (Turtle, HTML:
// the highest q, or as high and listed first) is refused as such a
// _format is; one that prefers any other type passes (JSON, XML, NDJSON,
// a Binary's own type, */*, Turtle refused by q=0).
func TestAcceptCqgateRewritesOnly(t *testing.T) {
	for accept, want := range map[string]int{
		"text/turtle":                              http.StatusBadRequest,
		"text/html":                                http.StatusBadRequest,
		"text/html, application/xhtml+xml":         http.StatusBadRequest,
		"text/turtle;q=0.9":                        http.StatusBadRequest,
		"application/fhir+json":                    http.StatusTeapot,
		"text/html, application/fhir+json":         http.StatusBadRequest,
		"application/fhir+json, text/html":         http.StatusTeapot,
		"text/turtle, application/fhir+json;q=0.1": http.StatusBadRequest,
		"text/turtle, application/x-none":          http.StatusBadRequest,
		"text/turtle;q=0.5, application/json":      http.StatusTeapot,
		"*/*;q=0.8, text/html":                     http.StatusBadRequest,
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": http.StatusBadRequest,
		"*/*":                                   http.StatusTeapot,
		"application/pdf":                       http.StatusTeapot,
		"application/fhir+ndjson":               http.StatusTeapot,
		"text/turtle;q=0, application/json":     http.StatusTeapot,
		"text/html;q=0.0, application/fhir+xml": http.StatusTeapot,
	} {
		fwd := &recordingForwarder{}
		h := newTestRouter(stubTenants{}, fwd, new(bytes.Buffer))
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3/Patient", nil)
		r.Header.Set("Accept", accept)
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Accept %s: %d %s, want %d", accept, w.Code, w.Body, want)
		}
	}
}

// A POST _search's form body is held to the query's rules (_format,
// access_token) and its parameters are left in PostForm for the grant
// check; other bodies are not read.
func TestCheckSearchBody(t *testing.T) {
	for _, tt := range []struct {
		name, path, ctype, body string
		want                    failure.Kind
		form                    bool
	}{
		{"parameters", "/fhir/1.2.3/Observation/_search", "application/x-www-form-urlencoded", "category=laboratory&code=1", failure.Internal, true},
		{"system search", "/fhir/1.2.3/_search", "application/x-www-form-urlencoded; charset=utf-8", "_id=1", failure.Internal, true},
		{"_format=ttl", "/fhir/1.2.3/Observation/_search", "application/x-www-form-urlencoded", "code=1&_format=ttl", failure.Unsupported, false},
		{"access_token", "/fhir/1.2.3/Observation/_search", "application/x-www-form-urlencoded", "access_token=x&code=1", failure.Insecure, false},
		{"not a form", "/fhir/1.2.3/Observation/_search", "application/fhir+json", "access_token=x", failure.Internal, false},
		{"not a search", "/fhir/1.2.3/Observation", "application/x-www-form-urlencoded", "access_token=x", failure.Internal, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call := newCall(http.MethodPost, tt.path, http.Header{"Content-Type": {tt.ctype}})
			call.c.Request.Body = io.NopCloser(strings.NewReader(tt.body))
			call.path = strings.TrimPrefix(tt.path, "/fhir/1.2.3")
			h := &handlers{Config: Config{MaxBodyBytes: 1 << 10}}
			err := h.checkSearchBody(call)
			if (err == nil) != (tt.want == failure.Internal) || (err != nil && kindOf(err) != tt.want) {
				t.Fatalf("checkSearchBody = %v, want kind %v", err, tt.want)
			}
			if got := call.c.Request.PostForm != nil; got != tt.form {
				t.Errorf("PostForm set = %v, want %v", got, tt.form)
			}
			if b, _ := io.ReadAll(call.c.Request.Body); string(b) != tt.body {
				t.Errorf("body left %q, want %q", b, tt.body)
			}
		})
	}
}

// checkSearchBody reads a POST _search body as ASCII/UTF-8
// whatever charset its Content-Type names, and leaves its parameters in
// PostForm for the grant check. A servlet container (Tomcat's
// Parameters.processParameters) decodes form parameters with the
// request's charset: with charset=utf-16 the bytes "category=laboratory"
// are names of CJK characters to it, an unknown parameter a lenient FHIR
// server ignores, while cqgate's grant check read category=laboratory and
// let a search restricted to it (system/Observation.rs?category=laboratory)
// through. A body cqgate cannot read as the server will is refused.
func TestSearchBodyCharsetOtherThanUTF8Refused(t *testing.T) {
	for _, ctype := range []string{"application/x-www-form-urlencoded; charset=utf-16", "application/x-www-form-urlencoded; charset=UTF-16LE"} {
		call := newCall(http.MethodPost, "/fhir/1.2.3/Observation/_search", http.Header{"Content-Type": {ctype}})
		call.c.Request.Body = io.NopCloser(strings.NewReader("category=laboratory"))
		call.path = "/Observation/_search"
		h := &handlers{Config: Config{MaxBodyBytes: 1 << 10}}
		if err := h.checkSearchBody(call); err == nil {
			t.Errorf("%s: accepted, PostForm %v for the grant check", ctype, call.c.Request.PostForm)
		}
	}
}
