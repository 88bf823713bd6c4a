package fhirurl

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newRewriter(t testing.TB) *Rewriter {
	t.Helper()
	rw, err := NewRewriter(partner, public)
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func TestFormatOf(t *testing.T) {
	t.Parallel()
	tests := map[string]Format{
		"application/fhir+json":                 JSON,
		"application/fhir+json; charset=UTF-8":  JSON,
		"Application/FHIR+JSON;fhirVersion=4.0": JSON,
		"application/json":                      JSON,
		"application/json+fhir":                 JSON,
		"application/fhir+xml":                  XML,
		"application/xml; charset=utf-8":        XML,
		"text/xml":                              XML,
		"application/fhir+ndjson":               None,
		"application/ndjson":                    None,
		"text/html":                             None,
		"application/octet-stream":              None,
		"":                                      None,
		"not a media type;;":                    None,
	}
	for ct, want := range tests {
		if got := FormatOf(ct); got != want {
			t.Errorf("FormatOf(%q) = %v, want %v", ct, got, want)
		}
	}
}

// upstream builds a partner response.
func upstream(status int, header http.Header, body []byte, method string) *http.Response {
	req := httptest.NewRequest(method, "http://cqgate.internal/fhir/x", nil)
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode:    status,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRewriterBody(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	jsonIn := []byte(`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + partner + `/Patient?page=2"}]}`)
	jsonOut := `{"resourceType":"Bundle","link":[{"relation":"next","url":"` + public + `/Patient?page=2"}]}`
	xmlIn := []byte(`<Bundle xmlns="http://hl7.org/fhir"><link><url value="` + partner + `/Patient?page=2"/></link></Bundle>`)
	xmlOut := `<Bundle xmlns="http://hl7.org/fhir"><link><url value="` + public + `/Patient?page=2"/></link></Bundle>`
	ndjson := []byte(`{"resourceType":"Patient","link":[{"other":{"reference":"` + partner + `/Patient/2"}}]}` + "\n")
	lastMod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		method     string
		header     http.Header
		body       []byte
		wantFormat Format
		wantErr    error
		wantBody   string
		wantHeader http.Header // "" means absent
	}{
		{"json", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Length": {"99"}, "Etag": {`"abc"`}, "Last-Modified": {lastMod}, "Digest": {"sha-256=x"}},
			jsonIn, JSON, nil, jsonOut,
			http.Header{"Content-Length": {strconv.Itoa(len(jsonOut))}, "Etag": {`W/"abc"`}, "Last-Modified": {lastMod}, "Digest": {""}, "Content-Type": {"application/fhir+json"}}},
		{"weak etag kept", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Etag": {`W/"3"`}},
			jsonIn, JSON, nil, jsonOut, http.Header{"Etag": {`W/"3"`}}},
		{"xml", 200, "GET", http.Header{"Content-Type": {"application/fhir+xml;charset=utf-8"}},
			xmlIn, XML, nil, xmlOut, nil},
		{"gzip decoded, identity out", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Encoding": {"gzip"}, "Vary": {"Accept-Encoding"}},
			gzipped(t, jsonIn), JSON, nil, jsonOut, http.Header{"Content-Encoding": {""}, "Vary": {"Accept-Encoding"}}},
		{"json without partner URLs keeps the partner's length", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Length": {"35"}},
			[]byte(`{"resourceType":"Patient","id":"1"}`), JSON, nil, `{"resourceType":"Patient","id":"1"}`, http.Header{"Content-Length": {"35"}}},
		{"json with a wrong announced length gets the exact one", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Length": {"035"}},
			[]byte(`{"resourceType":"Patient","id":"1"}`), JSON, nil, `{"resourceType":"Patient","id":"1"}`, http.Header{"Content-Length": {"35"}}},
		{"brotli left alone", 200, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Encoding": {"br"}, "Content-Length": {"5"}},
			[]byte("\x01\x02"), None, ErrEncoding, "\x01\x02", http.Header{"Content-Encoding": {"br"}, "Content-Length": {"5"}}},
		{"ndjson untouched", 200, "GET", http.Header{"Content-Type": {"application/fhir+ndjson"}, "Content-Length": {"10"}, "Etag": {`"n"`}},
			ndjson, None, nil, string(ndjson), http.Header{"Content-Length": {"10"}, "Etag": {`"n"`}}},
		{"partial content untouched", 206, "GET", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Range": {"bytes 0-9/99"}},
			jsonIn[:10], None, nil, string(jsonIn[:10]), nil},
		{"created: Location", 201, "POST", http.Header{"Content-Type": {"application/fhir+json"}, "Location": {partner + "/Patient/9/_history/1"}, "Content-Location": {"/r4/tenant-guid/Patient/9/_history/1"}},
			jsonIn, JSON, nil, jsonOut,
			http.Header{"Location": {public + "/Patient/9/_history/1"}, "Content-Location": {public + "/Patient/9/_history/1"}}},
		{"kick-off: Content-Location, no body", 202, "GET", http.Header{"Content-Location": {partner + "/bulkstatus/7"}},
			nil, None, nil, "", http.Header{"Content-Location": {public + "/bulkstatus/7"}}},
		{"Location elsewhere kept", 307, "GET", http.Header{"Location": {"https://storage.example/f.ndjson?sig=x"}},
			nil, None, nil, "", http.Header{"Location": {"https://storage.example/f.ndjson?sig=x"}}},
		{"not modified", 304, "GET", http.Header{"Etag": {`"abc"`}}, nil, None, nil, "", http.Header{"Etag": {`W/"abc"`}}},
		{"head", 200, "HEAD", http.Header{"Content-Type": {"application/fhir+json"}, "Content-Length": {"99"}}, nil, JSON, nil, "", http.Header{"Content-Length": {""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			coded := tt.header.Get("Content-Encoding") != ""
			resp := upstream(tt.status, tt.header, tt.body, tt.method)
			f, err := rw.Body(resp)
			if f != tt.wantFormat || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Body = %v, %v; want %v, %v", f, err, tt.wantFormat, tt.wantErr)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if err := resp.Body.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if string(got) != tt.wantBody {
				t.Errorf("body\n got %q\nwant %q", got, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if g := resp.Header.Get(k); g != v[0] {
					t.Errorf("%s = %q, want %q", k, g, v[0])
				}
			}
			// A small body of known length and no coding is rewritten
			// whole and keeps an exact length; any other rewritten body
			// has none.
			wantLen := int64(-1)
			if whole := !coded && len(tt.body) > 0 && tt.method != "HEAD"; f != None && whole {
				wantLen = int64(len(got))
			}
			if f != None && resp.ContentLength != wantLen {
				t.Errorf("ContentLength %d, want %d", resp.ContentLength, wantLen)
			}
		})
	}
}

// TestRewriterStreams checks that output leaves before the input ended.
func TestRewriterStreams(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	pr, pw := io.Pipe()
	resp := upstream(200, http.Header{"Content-Type": {"application/fhir+json"}}, nil, "GET")
	resp.Body = pr
	if _, err := rw.Body(resp); err != nil {
		t.Fatal(err)
	}
	first := `{"entry":[{"fullUrl":"` + partner + `/Patient/1"},`
	go func() { _, _ = pw.Write([]byte(first)) }()
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || n == 0 {
		t.Fatalf("first Read = %d, %v", n, err)
	}
	if !strings.HasPrefix(`{"entry":[{"fullUrl":"`+public+`/Patient/1"},`, string(buf[:n])) {
		t.Errorf("first bytes %q", buf[:n])
	}
	_ = pw.CloseWithError(errors.New("partner went away"))
	if _, err := io.ReadAll(resp.Body); err == nil || !strings.Contains(err.Error(), "partner went away") {
		t.Errorf("after the partner failed: %v", err)
	}
	_ = resp.Body.Close()
}

func TestRewriterBadGzip(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	resp := upstream(200, http.Header{"Content-Type": {"application/fhir+json"}, "Content-Encoding": {"gzip"}}, []byte("not gzip"), "GET")
	if _, err := rw.Body(resp); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil || !strings.HasPrefix(err.Error(), "fhirurl: gzip body") {
		t.Errorf("err = %v", err)
	}
}

func TestRewriterHeader(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	h := http.Header{"Location": {partner + "/Patient/1", "https://other.example/x"}, "Link": {"<" + partner + ">; rel=x"}}
	rw.Header(h)
	if h["Location"][0] != public+"/Patient/1" || h["Location"][1] != "https://other.example/x" {
		t.Errorf("Location %q", h["Location"])
	}
	if rw.Mapper().PublicBase() != public {
		t.Errorf("Mapper %q", rw.Mapper().PublicBase())
	}
	if h["Link"][0] != "<"+public+">; rel=x" {
		t.Errorf("Link %q", h["Link"])
	}
}

// The targets of a Link header under the partner base are mapped, each
// link's; quoted parameters and other targets are left as they are.
func TestRewriterLinkHeader(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	path := strings.TrimPrefix(partner, "https://fhir.partner.example")
	for _, tt := range []struct{ in, want string }{
		{`<` + partner + `/Observation?page=2>; rel="next"`, `<` + public + `/Observation?page=2>; rel="next"`},
		{`<` + partner + `/a>; rel="prev", <` + partner + `/b>; rel="next"`, `<` + public + `/a>; rel="prev", <` + public + `/b>; rel="next"`},
		{`<https://other.example/x>; rel="help", <` + path + `/c>; rel=next`, `<https://other.example/x>; rel="help", <` + public + `/c>; rel=next`},
		{`<` + partner + `/d>; title="a <` + partner + `/e> \"x\" >"; rel=next`, `<` + public + `/d>; title="a <` + partner + `/e> \"x\" >"; rel=next`},
		{`<https://other.example/x>; rel="help"`, `<https://other.example/x>; rel="help"`},
		{`<` + partner + `/unterminated`, `<` + partner + `/unterminated`},
		{`rel="next"; title="<` + partner + `>`, `rel="next"; title="<` + partner + `>`},
	} {
		h := http.Header{"Link": {tt.in}}
		rw.Header(h)
		if h["Link"][0] != tt.want {
			t.Errorf("Link %q\n got %q\nwant %q", tt.in, h["Link"][0], tt.want)
		}
	}
}

// TestPooledReadersStartClean abandons readers in every state (a string
// open, a token held, gzip half read, an XML attribute open) and checks
// that the readers the pool hands out next rewrite from a clean state,
// and that an abandoned reader reads nothing after Close.
func TestPooledReadersStartClean(t *testing.T) {
	rw := newRewriter(t)
	jsonIn := `{"resourceType":"Bundle","link":[{"relation":"next","url":"` + partner + `/Patient?page=2"}]}`
	jsonOut := `{"resourceType":"Bundle","link":[{"relation":"next","url":"` + public + `/Patient?page=2"}]}`
	xmlIn := `<Bundle xmlns="http://hl7.org/fhir"><link><url value="` + partner + `/Patient?page=2"/></link></Bundle>`
	xmlOut := `<Bundle xmlns="http://hl7.org/fhir"><link><url value="` + public + `/Patient?page=2"/></link></Bundle>`
	cut := func(s string, at string) string { return s[:strings.Index(s, at)+len(at)] }
	abandoned := []struct {
		f    Format
		gz   bool
		body string
	}{
		{JSON, false, cut(jsonIn, `"url":"https://fhir`)},   // inside a string
		{JSON, false, cut(jsonIn, `page=2"`)},               // a mapped token held
		{JSON, true, jsonIn},                                // gzip, read a little
		{XML, false, cut(xmlIn, `<url value="https://fhi`)}, // inside an attribute
	}
	for round := range 20 {
		for _, a := range abandoned {
			body := []byte(a.body)
			if a.gz {
				body = gzipped(t, body)
			}
			r := rw.NewReader(io.NopCloser(bytes.NewReader(body)), a.f, a.gz)
			_, _ = r.Read(make([]byte, 3))
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if n, err := r.Read(make([]byte, 8)); n != 0 || err == nil {
				t.Fatalf("a closed reader read %d bytes, %v", n, err)
			}
		}
		for _, c := range []struct {
			f       Format
			in, out string
		}{{JSON, jsonIn, jsonOut}, {XML, xmlIn, xmlOut}} {
			r := rw.NewReader(io.NopCloser(strings.NewReader(c.in)), c.f, false)
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != c.out {
				t.Fatalf("round %d, %v after abandoned readers:\n got %q, %v\nwant %q", round, c.f, got, err, c.out)
			}
		}
	}
}

// Peek shows what is left of a body rewritten whole, and nothing of a
// streamed one, a failed one or a closed one.
func TestPeek(t *testing.T) {
	rw := newRewriter(t)
	in := `{"resourceType":"Bundle","link":[{"relation":"next","url":"` + partner + `/Patient?page=2"}]}`
	want := `{"resourceType":"Bundle","link":[{"relation":"next","url":"` + public + `/Patient?page=2"}]}`
	resp := func(body io.Reader, length int64) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}},
			Body: io.NopCloser(body), ContentLength: length, Request: httptest.NewRequest("GET", "/", nil)}
	}

	small := resp(strings.NewReader(in), int64(len(in)))
	if _, err := rw.Body(small); err != nil {
		t.Fatal(err)
	}
	if rest, ok := Peek(small.Body); !ok || string(rest) != want {
		t.Fatalf("Peek = %q, %v; want the rewritten body", rest, ok)
	}
	var first [10]byte
	if _, err := io.ReadFull(small.Body, first[:]); err != nil {
		t.Fatal(err)
	}
	if rest, ok := Peek(small.Body); !ok || string(rest) != want[10:] {
		t.Errorf("after a read, Peek = %q, %v; want the rest", rest, ok)
	}
	small.Body.Close()
	if _, ok := Peek(small.Body); ok {
		t.Errorf("a closed body was peeked at")
	}

	streamed := resp(strings.NewReader(in), -1)
	if _, err := rw.Body(streamed); err != nil {
		t.Fatal(err)
	}
	if _, ok := Peek(streamed.Body); ok {
		t.Errorf("a streamed body was peeked at")
	}

	broken := resp(io.MultiReader(strings.NewReader(in[:20]), iotestErr{}), int64(len(in)))
	if _, err := rw.Body(broken); err != nil {
		t.Fatal(err)
	}
	if _, ok := Peek(broken.Body); ok {
		t.Errorf("a body whose read failed was peeked at")
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
