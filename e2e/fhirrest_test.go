package e2e

// FHIR REST semantics through cqgate as a real FHIR client uses it:
// HAPI-style paging under a narrow grant, formats cqgate cannot rewrite
// however they are asked for, POST _search bodies held to the query's
// rules, the partner's .well-known documents, conditional requests.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/config"
)

const hapiOID = "2.999.88.1"

// hapiPartner is a HAPI-style FHIR server under /r4 protected by the
// world's tokens: a search whose next link is base?_getpages=...,
// answers in Turtle and HTML when asked (by Accept or by _format, in the
// query or in a POST _search body), a CapabilityStatement and a
// smart-configuration naming its own OAuth endpoints.
type hapiPartner struct {
	*httptest.Server
	seen []string
}

func (p *hapiPartner) base() string { return p.URL + "/r4" }

func newHAPIPartner(t *testing.T, w *world) *hapiPartner {
	p := &hapiPartner{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm() // query and, for a form POST, body: as a servlet container reads parameters
		p.seen = append(p.seen, r.Method+" "+r.URL.RequestURI())
		if w.auth.ValidateRequest(r) != nil {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		base := p.base()
		format := r.Form.Get("_format")
		accept := r.Header.Get("Accept")
		switch {
		case format == "ttl" || format == "text/turtle" || strings.Contains(accept, "text/turtle"):
			rw.Header().Set("Content-Type", "text/turtle")
			fmt.Fprintf(rw, "@prefix fhir: <http://hl7.org/fhir/> .\n<%s/Patient/1> a fhir:Patient ; fhir:link <%s/Patient/2> .\n", base, base)
			return
		case format == "html" || format == "text/html" || strings.HasPrefix(accept, "text/html"):
			rw.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(rw, `<html><body><a href="%s/Patient/1">Patient/1</a></body></html>`, base)
			return
		}
		rw.Header().Set("Content-Type", "application/fhir+json")
		switch {
		case r.URL.Path == "/r4/metadata":
			fmt.Fprintf(rw, `{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","implementation":{"url":"%s"},`+
				`"rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",`+
				`"extension":[{"url":"token","valueUri":"%s/oauth/token"},{"url":"authorize","valueUri":"%s/oauth/authorize"}]}]}}]}`,
				base, p.URL, p.URL)
		case r.URL.Path == "/r4/.well-known/smart-configuration":
			fmt.Fprintf(rw, `{"token_endpoint":"%s/oauth/token","authorization_endpoint":"%s/oauth/authorize","grant_types_supported":["client_credentials"],"capabilities":[]}`,
				p.URL, p.URL)
		case r.URL.Path == "/r4/Observation" || r.URL.Path == "/r4/Observation/_search":
			fmt.Fprintf(rw, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"%s?_getpages=abc123&_getpagesoffset=1&_count=1&_bundletype=searchset"}],`+
				`"entry":[{"fullUrl":"%s/Observation/o1","resource":{"resourceType":"Observation","id":"o1"}}]}`, base, base)
		case r.URL.Path == "/r4" && r.Form.Get("_getpages") != "":
			fmt.Fprintf(rw, `{"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"%s/Observation/o2","resource":{"resourceType":"Observation","id":"o2"}}]}`, base)
		default:
			rw.WriteHeader(http.StatusNotFound)
			io.WriteString(rw, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

func newHAPIWorld(t *testing.T) (*world, *hapiPartner) {
	var partner *hapiPartner
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		partner = newHAPIPartner(t, w)
		// A read-only grant, of Observations only, as a partner gives
		// for a search client. tokens.enforce_granted_scope keeps its
		// default (true).
		c.Organizations[hapiOID] = config.Organization{Name: "HAPI-style partner", FHIRBase: partner.base(), TokenURL: w.auth.TokenURL,
			AllowPrivateAddresses: true, Scope: "system/Observation.read"}
	}})
	return w, partner
}

// A search's next link that cqgate itself rewrote (HAPI's paging:
// [base]?_getpages=...) is refused with a 403 when the client follows
// it: the grant check reads GET [base]?... as a system-wide search
// needing system/*.read, although it is the next page of the
// Observation search the grant covers. FHIR R4 http.html "Paging": the
// client follows link[next] as it is.
func TestNextLinkOfACoveredSearchIsFollowed(t *testing.T) {
	w, partner := newHAPIWorld(t)
	resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation?code=1234-5", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search: %d %s", resp.StatusCode, body)
	}
	gw := w.gateway.URL + "/fhir/" + hapiOID
	next := gw + "?_getpages=abc123&_getpagesoffset=1&_count=1&_bundletype=searchset"
	if !strings.Contains(string(body), `"url":"`+next+`"`) {
		t.Fatalf("next link not rewritten to cqgate: %s", body)
	}
	resp, body = w.do(http.MethodGet, strings.TrimPrefix(next, w.gateway.URL), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("following the next link cqgate handed out: %d %s\npartner saw: %q", resp.StatusCode, body, partner.seen)
	}
}

// _format=ttl and _format=html are refused (README: 400, "cqgate could
// not rewrite the partner's URLs in them"), but the same answer is had
// by asking for it with Accept, or with _format in a POST _search body
// (FHIR R4 search: POST [type]/_search with form-encoded parameters):
// the partner's URLs reach the caller, leading around cqgate.
func TestUnrewritableFormatsRefusedWhateverTheWayAsked(t *testing.T) {
	w, partner := newHAPIWorld(t)
	check := func(name string, resp *http.Response, body []byte) {
		t.Helper()
		if strings.Contains(string(body), partner.URL) {
			t.Errorf("%s: %d, Content-Type %q: the partner's URL reached the caller: %s", name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// The refusal the README promises, for reference.
	resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation?_format=ttl", nil, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("_format=ttl in the query: %d %s", resp.StatusCode, body)
	}
	resp, body = w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation", nil, map[string]string{"Accept": "text/turtle"})
	check("Accept: text/turtle", resp, body)
	resp, body = w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation", nil, map[string]string{"Accept": "text/html"})
	check("Accept: text/html", resp, body)
	form := url.Values{"code": {"1234-5"}, "_format": {"ttl"}}.Encode()
	resp, body = w.do(http.MethodPost, "/fhir/"+hapiOID+"/Observation/_search", []byte(form),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/fhir+json"})
	check("POST _search with _format=ttl in the body", resp, body)
}

// The partner's .well-known documents (smart-configuration) name its
// OAuth endpoints, which would lead a SMART client library around cqgate:
// they are a 404 through cqgate, and the partner is not asked. (The
// CapabilityStatement's oauth-uris are left as they are, as README says:
// not FHIR URLs, and of no use without cqgate's key.)
func TestPartnerWellKnownDocumentsAreNotServed(t *testing.T) {
	w, partner := newHAPIWorld(t)
	for _, path := range []string{"/.well-known/smart-configuration", "/.well-known/udap"} {
		before := len(partner.seen)
		resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+path, nil, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), partner.URL) {
			t.Errorf("%s: %d %s, want a 404 OperationOutcome", path, resp.StatusCode, body)
		}
		if len(partner.seen) != before {
			t.Errorf("%s reached the partner: %q", path, partner.seen[before:])
		}
	}
	if resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+"/metadata", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/metadata: %d %s", resp.StatusCode, body)
	}
}

const queryGrantOID = "2.999.88.2"

// A conformant POST [type]/_search carries its parameters in a
// form-encoded body (FHIR R4 http.html#search: "POST [base]/[type]/_search"
// with application/x-www-form-urlencoded content). When the partner's
// grant is a SMART v2 scope restricted by a query
// (system/Observation.rs?category=laboratory), the grant check reads only
// the URL's query and refuses such a search with a 403, although its
// parameters (in the body) are within the grant; the same search by GET
// passes.
func TestPostSearchBodyCountsForAQueryRestrictedGrant(t *testing.T) {
	const granted = "system/Observation.rs?category=laboratory"
	var sent []string
	partner := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.URL.Path != "/oauth/token" {
			sent = append(sent, r.Method+" "+r.URL.RequestURI()+" "+r.PostForm.Encode())
		}
		switch {
		case r.URL.Path == "/oauth/token":
			rw.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(rw, `{"access_token":"tok-q","token_type":"Bearer","expires_in":600,"scope":%q}`, granted)
		case r.Header.Get("Authorization") != "Bearer tok-q":
			rw.WriteHeader(http.StatusUnauthorized)
		case r.Form.Get("category") != "laboratory":
			rw.WriteHeader(http.StatusForbidden)
		default:
			rw.Header().Set("Content-Type", "application/fhir+json")
			io.WriteString(rw, `{"resourceType":"Bundle","type":"searchset","total":0}`)
		}
	}))
	t.Cleanup(partner.Close)
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Organizations[queryGrantOID] = config.Organization{Name: "v2 query scopes", FHIRBase: partner.URL + "/r4", TokenURL: partner.URL + "/oauth/token",
			AllowPrivateAddresses: true, Scope: granted}
	}})
	resp, body := w.do(http.MethodGet, "/fhir/"+queryGrantOID+"/Observation?category=laboratory&patient=1", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET search within the grant: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"category": {"laboratory"}, "patient": {"1"}}.Encode()
	resp, body = w.do(http.MethodPost, "/fhir/"+queryGrantOID+"/Observation/_search", []byte(form),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the same search by POST _search (parameters in the body): %d %s\npartner saw: %q", resp.StatusCode, body, sent)
	}
}

// The check that keeps a caller's access_token out of what goes to the
// partner (README: 400 for "an access_token query parameter (cqgate
// sends its own token)"; RFC 6750 §2.3) reads the URL's query only; RFC
// 6750 §2.2 puts the same parameter in a form-encoded body, the body of
// a POST _search, and there it reaches the partner beside cqgate's own
// Authorization.
func TestAccessTokenInPostSearchBodyRefused(t *testing.T) {
	w, partner := newHAPIWorld(t)
	resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation?access_token=callers-own", nil, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("access_token in the query: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"code": {"1234-5"}, "access_token": {"callers-own"}}.Encode()
	resp, body = w.do(http.MethodPost, "/fhir/"+hapiOID+"/Observation/_search", []byte(form),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("access_token in a POST _search body: %d (want 400 as in the query); partner saw %q", resp.StatusCode, partner.seen)
	}
}

// Soundness probe (passes): conditional and preference headers reach the
// partner, and its 304, 412 and 201 answers come back with their ETag,
// Last-Modified and (mapped) Location.
func TestConditionalHeadersPassThrough(t *testing.T) {
	got := map[string]string{}
	var partnerURL string
	partner := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since", "Prefer", "Content-Type"} {
			if v := r.Header.Get(k); v != "" {
				got[r.Method+" "+k] = v
			}
		}
		switch {
		case r.URL.Path == "/oauth/token":
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"access_token":"tok-c","token_type":"Bearer","expires_in":600}`)
		case r.Method == http.MethodGet && r.Header.Get("If-None-Match") == `W/"3"`:
			rw.Header().Set("ETag", `W/"3"`)
			rw.WriteHeader(http.StatusNotModified)
		case r.Method == http.MethodPut:
			rw.Header().Set("Content-Type", "application/fhir+json")
			rw.WriteHeader(http.StatusPreconditionFailed)
			io.WriteString(rw, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict"}]}`)
		case r.Method == http.MethodPost:
			rw.Header().Set("Location", partnerURL+"/r4/Patient/9/_history/1")
			rw.Header().Set("ETag", `W/"1"`)
			rw.Header().Set("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")
			rw.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodPatch:
			rw.Header().Set("Content-Type", "application/fhir+json")
			rw.Header().Set("ETag", `W/"4"`)
			io.WriteString(rw, `{"resourceType":"Patient","id":"1","meta":{"versionId":"4"}}`)
		default:
			rw.WriteHeader(http.StatusNotFound)
		}
	}))
	partnerURL = partner.URL
	t.Cleanup(partner.Close)
	w := newWorld(t, worldOptions{flavor: "r4", tune: func(c *config.Config, w *world) {
		c.Organizations["2.999.88.3"] = config.Organization{Name: "conditional", FHIRBase: partner.URL + "/r4", TokenURL: partner.URL + "/oauth/token",
			AllowPrivateAddresses: true, Scope: "system/Patient.*"}
	}})
	base := "/fhir/2.999.88.3"
	resp, _ := w.do(http.MethodGet, base+"/Patient/1", nil, map[string]string{"If-None-Match": `W/"3"`})
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `W/"3"` {
		t.Errorf("If-None-Match: %d ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	resp, body := w.do(http.MethodPut, base+"/Patient/1", []byte(`{"resourceType":"Patient","id":"1"}`),
		map[string]string{"If-Match": `W/"2"`, "Content-Type": "application/fhir+json; fhirVersion=4.0", "Prefer": "return=OperationOutcome"})
	if resp.StatusCode != http.StatusPreconditionFailed || !strings.Contains(string(body), "conflict") {
		t.Errorf("If-Match: %d %s", resp.StatusCode, body)
	}
	resp, _ = w.do(http.MethodPost, base+"/Patient", []byte(`{"resourceType":"Patient"}`),
		map[string]string{"If-None-Exist": "identifier=http://x|1", "Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != w.gateway.URL+base+"/Patient/9/_history/1" ||
		resp.Header.Get("ETag") != `W/"1"` || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("conditional create: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = w.do(http.MethodPatch, base+"/Patient/1", []byte(`[{"op":"replace","path":"/active","value":true}]`),
		map[string]string{"Content-Type": "application/json-patch+json", "If-Match": `W/"3"`})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `W/"4"` {
		t.Errorf("JSON Patch: %d %s", resp.StatusCode, body)
	}
	for _, k := range []string{"GET If-None-Match", "PUT If-Match", "PUT Prefer", "PUT Content-Type", "POST If-None-Exist", "POST Prefer", "PATCH Content-Type", "PATCH If-Match"} {
		if got[k] == "" {
			t.Errorf("%s did not reach the partner", k)
		}
	}
}

// /fhir/{oid}/.well-known/* is refused (README, commit d0abe97:
// the partner's smart-configuration and udap name its OAuth endpoints,
// which lead around cqgate), but the check compares the escaped path:
// %2E (an encoded unreserved ".", which the partner's server decodes,
// RFC 3986 section 6.2.2.2) walks past it and the partner's
// smart-configuration reaches the caller.
func TestEncodedWellKnownNotServed(t *testing.T) {
	w, partner := newHAPIWorld(t)
	for _, path := range []string{"/%2Ewell-known/smart-configuration", "/%2ewell-known/udap", "/.well-%6Bnown/smart-configuration"} {
		before := len(partner.seen)
		resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+path, nil, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), partner.URL) {
			t.Errorf("%s: %d %s, want a 404 OperationOutcome", path, resp.StatusCode, body)
		}
		if len(partner.seen) != before {
			t.Errorf("%s reached the partner: %q", path, partner.seen[before:])
		}
	}
}

// a query on the base carrying _getpages skips the granted-scope
// check whatever else it carries, so a caller under a grant of
// system/Observation.read adds _getpages=x to a system-wide search for
// Patients and it is forwarded (README: a 403 when "the token's granted
// scope ... does not cover the request"; only "the next pages of a
// search at [base]?_getpages=…" are left to the server). A server that
// is not HAPI ignores the unknown _getpages (FHIR R4 search.html, lenient
// handling) and answers GET [base]?_type=Patient.
func TestGetpagesDoesNotSkipTheGrantCheck(t *testing.T) {
	w, partner := newHAPIWorld(t)
	for _, q := range []string{"?_type=Patient&_getpages=x", "?_getpages=x&_type=Patient&name=smith", "?_getpages&_id=1"} {
		before := len(partner.seen)
		resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+q, nil, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET [base]%s under system/Observation.read: %d %s, want 403", q, resp.StatusCode, body)
		}
		if len(partner.seen) != before {
			t.Errorf("%s reached the partner: %q", q, partner.seen[before:])
		}
	}
}

// README (400): "an Accept that asks only for such formats
// (text/turtle, text/html ...)" is refused because "cqgate could not
// rewrite the partner's URLs in them". An Accept that prefers Turtle and
// names JSON at a lower weight (RFC 9110 §12.5.1: the server picks the
// highest q) or names any type the server does not have passes the check,
// and the partner answers in Turtle: its URLs reach the caller as they
// are, leading around cqgate, exactly what the refusal is for.
func TestAcceptPreferringTurtleRefused(t *testing.T) {
	w, partner := newHAPIWorld(t)
	for _, accept := range []string{"text/turtle, application/fhir+json;q=0.1", "text/turtle, application/x-none"} {
		resp, body := w.do(http.MethodGet, "/fhir/"+hapiOID+"/Observation", nil, map[string]string{"Accept": accept})
		if strings.Contains(string(body), partner.URL) {
			t.Errorf("Accept %q: %d, Content-Type %q: the partner's URL reached the caller: %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}
