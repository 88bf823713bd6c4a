package fhirurl

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// narrative wraps the JSON string content div as a Patient's
// Narrative.div.
func narrative(div string) string {
	return `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `"},"id":"1"}`
}

const xhtmlNS = `<div xmlns=\"http://www.w3.org/1999/xhtml\">`

// TestJSONNarrative: in the value of a "div" key the XHTML's attribute
// values are mapped as XMLWriter maps them; nothing else in the string
// changes, and a string that is not a "div" value is not read as XHTML
// (the rule is the key), however the input is cut.
func TestJSONNarrative(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	long := strings.Repeat("Lorem ipsum dolor sit amet. ", DefaultMaxToken/28+100)
	tests := []struct{ name, in, want string }{
		{"href under the base",
			narrative(xhtmlNS + `<a href=\"` + p + `/Patient/1\">Timmy</a></div>`),
			narrative(xhtmlNS + `<a href=\"` + q + `/Patient/1\">Timmy</a></div>`)},
		{"href on another host",
			narrative(xhtmlNS + `<a href=\"https://other.example/r4/tenant-guid/Patient/1\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"https://other.example/r4/tenant-guid/Patient/1\">x</a></div>`)},
		{"&amp; in the query",
			narrative(xhtmlNS + `<a href=\"` + p + `/Patient?name=a&amp;b&amp;_count=2\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"` + q + `/Patient?name=a&amp;b&amp;_count=2\">x</a></div>`)},
		{"&amp; in another host's query",
			narrative(xhtmlNS + `<a href=\"https://other.example/x?a=1&amp;b=2\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"https://other.example/x?a=1&amp;b=2\">x</a></div>`)},
		{"dot segment not mapped",
			narrative(xhtmlNS + `<a href=\"` + p + `/../other-tenant/Patient/1\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"` + p + `/../other-tenant/Patient/1\">x</a></div>`)},
		{"single quotes",
			narrative(`<div xmlns='http://www.w3.org/1999/xhtml'><a href='` + p + `/Patient/1'>x</a><img src = '` + p + `/Binary/2'/></div>`),
			narrative(`<div xmlns='http://www.w3.org/1999/xhtml'><a href='` + q + `/Patient/1'>x</a><img src = '` + q + `/Binary/2'/></div>`)},
		{"a quote of the other kind inside",
			narrative(`<div><a href='` + p + `/Patient?name=\"x\"'>x</a></div>`),
			narrative(`<div><a href='` + q + `/Patient?name=\"x\"'>x</a></div>`)},
		{"every attribute",
			narrative(`<div><blockquote cite=\"` + p + `/DocumentReference/3\" title=\"` + p + `\">q</blockquote></div>`),
			narrative(`<div><blockquote cite=\"` + q + `/DocumentReference/3\" title=\"` + q + `\">q</blockquote></div>`)},
		{"escapes as encoding/json writes them",
			narrative(`\u003cdiv xmlns=\"http://www.w3.org/1999/xhtml\"\u003e\u003ca href=\"` + p + `/Patient?a=1\u0026amp;b=2\"\u003ex\u003c/a\u003e\u003c/div\u003e`),
			narrative(`\u003cdiv xmlns=\"http://www.w3.org/1999/xhtml\"\u003e\u003ca href=\"` + q + `/Patient?a=1&amp;b=2\"\u003ex\u003c/a\u003e\u003c/div\u003e`)},
		{"escaped slashes and an escaped h",
			narrative(xhtmlNS + `<a href=\"\u0068ttps:\/\/fhir.partner.example\/r4\/tenant-guid\/Patient\/1\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"` + q + `/Patient/1\">x</a></div>`)},
		{"character reference",
			narrative(xhtmlNS + `<a href=\"&#x68;ttps://fhir.partner.example/r4/tenant-guid/Patient/1\">x</a></div>`),
			narrative(xhtmlNS + `<a href=\"` + q + `/Patient/1\">x</a></div>`)},
		{"namespace declarations kept",
			narrative(`<div xmlns=\"` + p + `\" xmlns:x=\"` + p + `/x\">y</div>`),
			narrative(`<div xmlns=\"` + p + `\" xmlns:x=\"` + p + `/x\">y</div>`)},
		{"text and comments are not attributes",
			narrative(xhtmlNS + p + `/Patient/1 <!-- <a href=\"` + p + `\"> --> href=\"` + p + `\"</div>`),
			narrative(xhtmlNS + p + `/Patient/1 <!-- <a href=\"` + p + `\"> --> href=\"` + p + `\"</div>`)},
		{"a div longer than the limit, the href at its end",
			narrative(xhtmlNS + long + `<a href=\"` + p + `/Patient/1\">x</a></div>`),
			narrative(xhtmlNS + long + `<a href=\"` + q + `/Patient/1\">x</a></div>`)},
		{"white space around the colon, and an escaped key",
			`{"text":{"div" :` + "\n" + ` "<a href=\"` + p + `\">"},"x":{"\u0064iv":"<a href=\"` + p + `/y\">"}}`,
			`{"text":{"div" :` + "\n" + ` "<a href=\"` + q + `\">"},"x":{"\u0064iv":"<a href=\"` + q + `/y\">"}}`},
		{"a div key that is not a string",
			`{"div":{"a":"<a href=\"` + p + `\">","url":"` + p + `"},"b":null,"div":null,"c":"` + p + `/c"}`,
			`{"div":{"a":"<a href=\"` + p + `\">","url":"` + q + `"},"b":null,"div":null,"c":"` + q + `/c"}`},
		{"href= outside a div key is left alone",
			`{"note":"<a href=\"` + p + `/Patient/1\">x</a>","div2":"<a href=\"` + p + `\">","Div":"<a href=\"` + p + `\">"}`,
			`{"note":"<a href=\"` + p + `/Patient/1\">x</a>","div2":"<a href=\"` + p + `\">","Div":"<a href=\"` + p + `\">"}`},
		{"div as a value is no key",
			`["div","<a href=\"` + p + `\">",{"a":"div","b":"<a href=\"` + p + `\">"}]`,
			`["div","<a href=\"` + p + `\">",{"a":"div","b":"<a href=\"` + p + `\">"}]`},
		{"a bare URL in a div is text",
			`{"div":"` + p + `/Patient/1"}`,
			`{"div":"` + p + `/Patient/1"}`},
		{"strings after a narrative",
			narrative(xhtmlNS+`<a href=\"`+p+`/a\">x</a></div>`) + `,"` + p + `/b"`,
			narrative(xhtmlNS+`<a href=\"`+q+`/a\">x</a></div>`) + `,"` + q + `/b"`},
		{"an unterminated narrative",
			`{"div":"<a href=\"` + p + `/a\">x</a><a href=\"` + p + `/b`,
			`{"div":"<a href=\"` + q + `/a\">x</a><a href=\"` + p + `/b`},
		{"a narrative that ends inside a value",
			`{"div":"<a href=\"` + p + `/a","x":"` + p + `"}`,
			`{"div":"<a href=\"` + p + `/a","x":"` + q + `"}`},
	}
	for _, tt := range tests {
		step := 0 // every piece size for short inputs, some for the long one
		run := func(in []byte, s int) []byte { return rewriteJSON(t, m, in, s, 0) }
		if len(tt.in) > 4096 {
			for _, step = range []int{0, 1, 2, 7, 1000, 4095, 32 << 10, len(tt.in) - 10} {
				if got := run([]byte(tt.in), step); string(got) != tt.want {
					t.Errorf("%s, pieces of %d: not rewritten as wanted", tt.name, step)
				}
			}
		} else {
			eachSplit(t, tt.name, tt.in, tt.want, run)
		}
		if json.Valid([]byte(tt.in)) != json.Valid([]byte(tt.want)) {
			t.Errorf("%s: validity of the JSON changes", tt.name)
		}
	}
}

// TestJSONNarrativeLimit: an attribute value longer than the limit passes
// unmapped, however it is cut; the next is mapped.
func TestJSONNarrativeLimit(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	longHref := `<a href=\"` + p + `/Binary?x=` + strings.Repeat("a", 200) + `\">`
	in := narrative(longHref + `<a href=\"` + p + `\">`)
	want := narrative(longHref + `<a href=\"` + q + `\">`)
	eachSplit(t, "limit", in, want, func(in []byte, step int) []byte { return rewriteJSON(t, m, in, step, 100) })
	want = narrative(strings.Replace(longHref, p, q, 1) + `<a href=\"` + q + `\">`)
	eachSplit(t, "no limit", in, want, func(in []byte, step int) []byte { return rewriteJSON(t, m, in, step, 0) })
}

// TestJSONNarrativeAllocs: a narrative with no partner URL (links
// elsewhere, with "&amp;" and JSON escapes in them) costs no allocation.
func TestJSONNarrativeAllocs(t *testing.T) {
	m := newMapper(t)
	in := []byte(narrative(xhtmlNS + `<p>Timmy <a href=\"https://other.example/x?a=1&amp;b=2\">x</a>` +
		`<a href=\"https:\/\/other.example\/y\">y</a><img src='http://other.example/z.png'/></p></div>`))
	var out bytes.Buffer
	w := NewJSONWriter(&out, m, 0)
	if allocs := testing.AllocsPerRun(50, func() {
		out.Reset()
		w.reset(&out, m, 0)
		if _, err := w.Write(in); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}); allocs > 0 {
		t.Errorf("a narrative without partner URLs allocates %v times, want 0", allocs)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("changed:\n in %s\nout %s", in, out.Bytes())
	}
}

// divEncoders write XHTML as the content of a JSON string, in the
// spellings servers use: encoding/json's (<, >, & as \u escapes), the
// least escaping, PHP's (escaped slashes), and every character escaped.
var divEncoders = []func(x []byte) []byte{
	func(x []byte) []byte { b, _ := json.Marshal(string(x)); return b[1 : len(b)-1] },
	func(x []byte) []byte { return appendJSONContent(nil, x) },
	func(x []byte) []byte { return bytes.ReplaceAll(appendJSONContent(nil, x), []byte("/"), []byte(`\/`)) },
	func(x []byte) []byte {
		var b []byte
		for _, r := range string(x) {
			switch {
			case r < 0x10000:
				b = append(b, []byte(`\u`+hex16(uint16(r)))...)
			default:
				r -= 0x10000
				b = append(b, []byte(`\u`+hex16(uint16(0xd800+r>>10))+`\u`+hex16(uint16(0xdc00+r&0x3ff)))...)
			}
		}
		return b
	},
}

func hex16(v uint16) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[v>>12], digits[v>>8&15], digits[v>>4&15], digits[v&15]})
}

// divValue returns the decoded value of the "div" key of the JSON object
// {"div": …} doc.
func divValue(t *testing.T, doc []byte) string {
	t.Helper()
	var v struct {
		Div string `json:"div"`
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	return v.Div
}

// TestJSONNarrativeMatchesXML is the differential test of narratives: a
// random XHTML-ish document (randomXML's fragments) written as a JSON
// narrative in several spellings and fed to JSONWriter in random pieces
// must come back, decoded, exactly as XMLWriter rewrites the decoded
// document; byte for byte the same when XMLWriter changes nothing; and
// valid JSON.
func TestJSONNarrativeMatchesXML(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	r := rand.New(rand.NewPCG(18, 21))
	rewritten := 0
	for round := range 20000 {
		x := randomXML(r)
		enc := divEncoders[round%len(divEncoders)]
		in := []byte(`{"div":"` + string(enc(x)) + `"}`)
		dec := divValue(t, in)
		want := rewriteXML(t, m, []byte(dec), 0, 0)
		step := 1 + r.IntN(len(in)+1)
		out := rewriteJSON(t, m, in, step, 0)
		if !json.Valid(out) {
			t.Fatalf("round %d: invalid JSON out of\n%s:\n%s", round, in, out)
		}
		got := divValue(t, out)
		if got != string(want) {
			t.Fatalf("round %d, pieces of %d:\n in  %s\n got %q\nwant %q", round, step, in, got, want)
		}
		if string(want) == dec {
			if !bytes.Equal(out, in) {
				t.Fatalf("round %d: nothing maps but the bytes changed:\n in %s\nout %s", round, in, out)
			}
		} else {
			rewritten++
		}
	}
	if rewritten < 5000 {
		t.Errorf("only %d of the runs rewrote anything", rewritten)
	}
}

// TestPlainNarrative: a narrative passes without being read as XHTML
// only when none of its attribute values can map; anything that might
// (the partner's host after "//" in any case or escaping of the slashes,
// a character reference, a \u escape that is not of '<', '>', '&', '\”
// or '"' or non-ASCII, a string that goes on in the next Write) is read.
func TestPlainNarrative(t *testing.T) {
	m := newMapper(t)
	w := NewJSONWriter(io.Discard, m, 0)
	for _, tc := range []struct {
		content string
		plain   bool
	}{
		{`<div xmlns=\"http://www.w3.org/1999/xhtml\">Heart rate 72 /min</div>`, true},
		{`\u003cdiv xmlns=\"http://www.w3.org/1999/xhtml\"\u003e\u003ca href=\"https://other.example/r4/x\"\u003ex\u003c/a\u003e\u003c/div\u003e`, true},
		{`<div>caf\u00e9 \\ \/ \n</div>`, true},
		{`<div><a href=\"https://fhir.partner.example/r4/tenant-guid/Patient/1\">x</a></div>`, false},
		{`<div><a href=\"https:\/\/fhir.partner.example/r4/tenant-guid\">x</a></div>`, false},
		{`<div><a href='HTTPS://FHIR.PARTNER.EXAMPLE/r4/tenant-guid'>x</a></div>`, false},
		{`<div><a href=\"https:\u002f\u002ffhir.partner.example/r4/tenant-guid\">x</a></div>`, false},
		{`<div><a href=\"&#x68;ttps://other.example/\">x</a></div>`, false},
		{`<div><a href=\"\u0026#x68;ttps://other.example/\">x</a></div>`, false},
		{`<div>text naming //fhir.partner.example</div>`, false}, // read, then found to be text
	} {
		p := []byte(tc.content + `"}`)
		end, ok := w.plainNarrative(p, 0)
		if ok != tc.plain || ok && end != len(tc.content)+1 {
			t.Errorf("plainNarrative(%s) = %d, %v; want plain %v", tc.content, end, ok, tc.plain)
		}
		if _, ok := w.plainNarrative(p[:len(p)-3], 0); ok {
			t.Errorf("plainNarrative(%s) without its closing quote passed it", tc.content)
		}
	}
}

// whatwg resolves ref against base as a WHATWG URL client (browsers,
// Node's URL/fetch) does for http(s): '\' is read as '/'.
func whatwg(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(strings.ReplaceAll(ref, `\`, "/"))
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(r).String()
}

// TestBackslashHeadersReadAsClientsRead: a Location or Content-Location
// that a WHATWG client reads as a network-path reference to the
// partner's base (a backslash for a slash) is mapped as that client reads
// it, and Under takes no URL that such a client follows out of the
// organization's route.
func TestBackslashHeadersReadAsClientsRead(t *testing.T) {
	m := newMapper(t)
	const req = public + "/Patient/1"
	for _, v := range []string{
		`\\fhir.partner.example/r4/tenant-guid/Patient/1/_history/2`,
		`/\fhir.partner.example/r4/tenant-guid/Patient/1/_history/2`,
	} {
		out := v
		if o, ok := m.MapHeader(v); ok {
			out = o
		}
		if got := whatwg(t, req, out); !strings.HasPrefix(got, public+"/") {
			t.Errorf("MapHeader(%q) left %q, which a WHATWG client follows to %q", v, out, got)
		}
	}
	v := public + `/..\2.16.840.2/Patient/1`
	if m.Under(v) {
		t.Errorf("Under(%q) = true, but a WHATWG client follows it to %q", v, whatwg(t, req, v))
	}
}

// TestPlainNarrativeWithAHostNotASCII: with a partner host that is not
// ASCII, a narrative naming it with \u escapes is read, and its link
// mapped as XMLWriter maps the same XHTML's.
func TestPlainNarrativeWithAHostNotASCII(t *testing.T) {
	m, err := NewMapper("https://fhír.partner.example/r4", public)
	if err != nil {
		t.Fatal(err)
	}
	x := `<div xmlns="http://www.w3.org/1999/xhtml"><a href="https://fhír.partner.example/r4/Patient/1">x</a></div>`
	want := string(rewriteXML(t, m, []byte(x), 0, 0))
	if !strings.Contains(want, public) {
		t.Fatal("XMLWriter did not map the href")
	}
	b, _ := json.Marshal(x)
	in := []byte(`{"div":"` + strings.ReplaceAll(string(b[1:len(b)-1]), "í", `\u00ed`) + `"}`)
	if got := divValue(t, rewriteJSON(t, m, in, 0, 0)); got != want {
		t.Errorf("JSON narrative %s came back as\n %q\nXMLWriter: %q", in, got, want)
	}
}
