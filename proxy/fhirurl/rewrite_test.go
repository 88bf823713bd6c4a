package fhirurl

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// rewriteJSON runs in through a JSONWriter in pieces of size step (all of
// it at once if step is 0).
func rewriteJSON(t testing.TB, m *Mapper, in []byte, step, limit int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewJSONWriter(&out, m, limit)
	writeSteps(t, w, in, step)
	return out.Bytes()
}

func rewriteXML(t testing.TB, m *Mapper, in []byte, step, limit int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewXMLWriter(&out, m, limit)
	writeSteps(t, w, in, step)
	return out.Bytes()
}

func writeSteps(t testing.TB, w io.WriteCloser, in []byte, step int) {
	t.Helper()
	if step <= 0 {
		step = len(in) + 1
	}
	for len(in) > 0 {
		n := min(step, len(in))
		if k, err := w.Write(in[:n]); err != nil || k != n {
			t.Fatalf("Write = %d, %v", k, err)
		}
		in = in[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// eachSplit checks that every way of cutting in into pieces of one size
// gives want.
func eachSplit(t *testing.T, name string, in, want string, run func(in []byte, step int) []byte) {
	t.Helper()
	for step := 0; step <= len(in); step++ {
		if got := run([]byte(in), step); string(got) != want {
			t.Errorf("%s, pieces of %d:\n in  %s\n got %s\nwant %s", name, step, in, got, want)
			return
		}
	}
}

var p, q = partner, public

func TestJSONWriter(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	tests := []struct{ name, in, want string }{
		{"bundle links",
			`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + p + `/Observation?patient=1&_getpages=x"}],"entry":[{"fullUrl":"` + p + `/Observation/1","resource":{"resourceType":"Observation","id":"1","subject":{"reference":"` + p + `/Patient/1"}}}]}`,
			`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + q + `/Observation?patient=1&_getpages=x"}],"entry":[{"fullUrl":"` + q + `/Observation/1","resource":{"resourceType":"Observation","id":"1","subject":{"reference":"` + q + `/Patient/1"}}}]}`},
		{"white space kept", "{ \"url\" :\n\t\"" + p + "/a\" ,\r\n \"x\": [ \"" + p + "\" ] }",
			"{ \"url\" :\n\t\"" + q + "/a\" ,\r\n \"x\": [ \"" + q + "\" ] }"},
		{"escaped slashes", `{"url":"https:\/\/fhir.partner.example\/r4\/tenant-guid\/Patient\/1"}`, `{"url":"` + q + `/Patient/1"}`},
		{"unicode escape", `{"url":"\u0068ttps://fhir.partner.example/r4/tenant-guid/Patient/1"}`, `{"url":"` + q + `/Patient/1"}`},
		{"escape in rest", `{"url":"` + p + `/Patient?name=a\"b"}`, `{"url":"` + q + `/Patient?name=a\"b"}`},
		{"url as key untouched", `{"` + p + `/a":"` + p + `/b"}`, `{"` + p + `/a":"` + q + `/b"}`},
		{"key with space before colon", `{"` + p + "/a\"  \n :1}", `{"` + p + "/a\"  \n :1}"},
		{"top-level string", `"` + p + `/x"`, `"` + q + `/x"`},
		{"top-level string and space", `"` + p + "/x\" \n", `"` + q + "/x\" \n"},
		{"other host", `{"url":"https://other.example/r4/tenant-guid/Patient/1"}`, `{"url":"https://other.example/r4/tenant-guid/Patient/1"}`},
		{"prefix only", `{"url":"` + p + `2/Patient/1"}`, `{"url":"` + p + `2/Patient/1"}`},
		{"url inside text", `{"div":"see ` + p + `/Patient/1"}`, `{"div":"see ` + p + `/Patient/1"}`},
		{"relative", `{"reference":"Patient/1"}`, `{"reference":"Patient/1"}`},
		{"escaped backslash before quote", `{"a":"x\\","b":"` + p + `"}`, `{"a":"x\\","b":"` + q + `"}`},
		{"numbers and literals", `[1,-2.5e3,true,false,null,"` + p + `"]`, `[1,-2.5e3,true,false,null,"` + q + `"]`},
		{"manifest", `{"transactionTime":"2026-01-01T00:00:00Z","request":"` + p + `/$export","requiresAccessToken":true,"output":[{"type":"Patient","url":"` + p + `/bulk/1.ndjson"}],"error":[{"type":"OperationOutcome","url":"` + p + `/bulk/err.ndjson"}],"deleted":[{"type":"Bundle","url":"` + p + `/bulk/del.ndjson"}],"link":[{"relation":"next","url":"` + p + `/bulk/status?page=2"}]}`,
			`{"transactionTime":"2026-01-01T00:00:00Z","request":"` + q + `/$export","requiresAccessToken":true,"output":[{"type":"Patient","url":"` + q + `/bulk/1.ndjson"}],"error":[{"type":"OperationOutcome","url":"` + q + `/bulk/err.ndjson"}],"deleted":[{"type":"Bundle","url":"` + q + `/bulk/del.ndjson"}],"link":[{"relation":"next","url":"` + q + `/bulk/status?page=2"}]}`},
		{"invalid json passes", `{"url": "` + p + `/x", ]]] "unterminated`, `{"url": "` + q + `/x", ]]] "unterminated`},
		{"invalid escape left alone", `["` + p + `/\x"]`, `["` + p + `/\x"]`},
		{"closing quote before a scheme", `""http://"` + p + `"`, `""http://"` + q + `"`},
		{"scheme not at the string start", `["xhttps://fhir.partner.example/r4/tenant-guid"]`, `["xhttps://fhir.partner.example/r4/tenant-guid"]`},
		{"escaped narrative left alone", `{"div":"\u003cdiv\u003e` + p + `/Patient/1\u003c/div\u003e"}`, `{"div":"\u003cdiv\u003e` + p + `/Patient/1\u003c/div\u003e"}`},
		{"uppercase unicode escape first", `{"url":"\u0068ttps:\/\/fhir.partner.example\/r4\/tenant-guid\/Patient\/2"}`, `{"url":"` + q + `/Patient/2"}`},
		{"short escape first", `["\u00"]`, `["\u00"]`},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		eachSplit(t, tt.name, tt.in, tt.want, func(in []byte, step int) []byte { return rewriteJSON(t, m, in, step, 0) })
		if json.Valid([]byte(tt.in)) && !json.Valid([]byte(tt.want)) {
			t.Errorf("%s: test wants invalid JSON", tt.name)
		}
	}
}

// TestMayStartWithH: only a string whose first character (raw, or the
// code point of a leading \uXXXX escape) is h or H is decoded to be
// compared with the partner's base.
func TestMayStartWithH(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		content string
		want    bool
	}{
		{"https://x", true},
		{"Http://x", true},
		{`\u0068ttps://x`, true},
		{`\u0048TTPS://x`, true},
		{`\u006Attps://x`, false}, // j
		{`\u003cdiv`, false},
		{`\/\/x`, false},
		{`\"h`, false},
		{`\u00`, false},
		{`\u00g8`, false},
		{"x", false},
	} {
		if got := mayStartWithH([]byte(tt.content)); got != tt.want {
			t.Errorf("mayStartWithH(%q) = %v, want %v", tt.content, got, tt.want)
		}
	}
}

// TestJSONWriterSkipsEscapedNarrative: a long string that starts with an
// escape other than an h (an escaped narrative) costs no decoding.
func TestJSONWriterSkipsEscapedNarrative(t *testing.T) {
	m := newMapper(t)
	in := []byte(`{"div":"\u003cdiv xmlns=\"http://www.w3.org/1999/xhtml\"\u003e` + strings.Repeat("x", 1500) + `\u003c/div\u003e"}`)
	var out bytes.Buffer
	w := NewJSONWriter(&out, m, 0)
	if allocs := testing.AllocsPerRun(50, func() {
		out.Reset()
		if _, err := w.Write(in); err != nil {
			t.Fatal(err)
		}
	}); allocs > 0 {
		t.Errorf("a narrative that starts with an escape allocates %v times, want 0 (it was decoded)", allocs)
	}
}

func TestJSONWriterLimit(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	long := `"` + p + "/Binary?x=" + strings.Repeat("a", 200) + `"`
	in := `[` + long + `,"` + p + `"]`
	// Over the limit the long string passes unexamined; the next one is
	// still rewritten, however the input is cut.
	want := `[` + long + `,"` + q + `"]`
	eachSplit(t, "limit", in, want, func(in []byte, step int) []byte { return rewriteJSON(t, m, in, step, 100) })
	// Under the limit it is rewritten.
	want = `[` + strings.Replace(long, p, q, 1) + `,"` + q + `"]`
	eachSplit(t, "no limit", in, want, func(in []byte, step int) []byte { return rewriteJSON(t, m, in, step, 0) })
	// White space after a mapped string beyond the limit: left alone.
	in = `["` + p + `"` + strings.Repeat(" ", 300) + `]`
	if got := rewriteJSON(t, m, []byte(in), 7, 100); string(got) != in {
		t.Errorf("long white space: got %s", got)
	}
}

// TestJSONWriterRoundTrip decodes input and output with encoding/json and
// compares: exactly the URL values changed.
func TestJSONWriterRoundTrip(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	doc := map[string]any{
		"resourceType": "Bundle",
		"link":         []any{map[string]any{"relation": "self", "url": p + "/Patient?name=<&>\u2028"}},
		p + "/as-key":  p + "/as-value",
		"entry": []any{map[string]any{
			"fullUrl":  p + "/Patient/é",
			"resource": map[string]any{"text": "über " + p, "n": 1.5, "b": true, "z": nil},
		}},
	}
	want := map[string]any{
		"resourceType": "Bundle",
		"link":         []any{map[string]any{"relation": "self", "url": q + "/Patient?name=<&>\u2028"}},
		p + "/as-key":  q + "/as-value",
		"entry": []any{map[string]any{
			"fullUrl":  q + "/Patient/é",
			"resource": map[string]any{"text": "über " + p, "n": 1.5, "b": true, "z": nil},
		}},
	}
	for _, indent := range []string{"", "  "} {
		in, err := json.MarshalIndent(doc, "", indent)
		if err != nil {
			t.Fatal(err)
		}
		out := rewriteJSON(t, m, in, 3, 0)
		var got, wantRT any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output does not decode: %v\n%s", err, out)
		}
		b, _ := json.Marshal(want)
		_ = json.Unmarshal(b, &wantRT)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(wantRT)
		if !bytes.Equal(gb, wb) {
			t.Errorf("indent %q:\n got %s\nwant %s", indent, gb, wb)
		}
	}
}

func TestXMLWriter(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	tests := []struct{ name, in, want string }{
		{"bundle",
			`<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="` + p + `/Observation?patient=1&amp;_count=2"/></link><entry><fullUrl value='` + p + `/Observation/1'/></entry></Bundle>`,
			`<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="` + q + `/Observation?patient=1&amp;_count=2"/></link><entry><fullUrl value='` + q + `/Observation/1'/></entry></Bundle>`},
		{"entities decoded", `<url value="&#x68;ttps://fhir.partner.example/r4/tenant-guid/Patient/1?a=&quot;b&quot;&amp;c=&#39;"/>`,
			`<url value="` + q + `/Patient/1?a=&quot;b&quot;&amp;c=&apos;"/>`},
		{"text and narrative untouched", `<text><div xmlns="http://www.w3.org/1999/xhtml">` + p + `/Patient/1 <a href="` + p + `/Patient/1">x</a></div></text>`,
			`<text><div xmlns="http://www.w3.org/1999/xhtml">` + p + `/Patient/1 <a href="` + q + `/Patient/1">x</a></div></text>`},
		{"comment cdata pi", `<!-- <x value="` + p + `"/> --><![CDATA[<x value="` + p + `"/>]]><?pi <x value="` + p + `"?><y value="` + p + `"/>`,
			`<!-- <x value="` + p + `"/> --><![CDATA[<x value="` + p + `"/>]]><?pi <x value="` + p + `"?><y value="` + q + `"/>`},
		{"comment with dashes", `<!-- a -- b --- ---><z value="` + p + `"/>`, `<!-- a -- b --- ---><z value="` + q + `"/>`},
		{"cdata with brackets", `<![CDATA[ ]] ]> ]]]><z value="` + p + `"/>`, `<![CDATA[ ]] ]> ]]]><z value="` + q + `"/>`},
		{"doctype with subset", `<!DOCTYPE x [<!ENTITY e "<y value='` + p + `'>">]><z value="` + p + `"/>`, `<!DOCTYPE x [<!ENTITY e "<y value='` + p + `'>">]><z value="` + q + `"/>`},
		{"namespace declaration kept", `<x xmlns="` + p + `" xmlns:f="` + p + `" value="` + p + `"/>`, `<x xmlns="` + p + `" xmlns:f="` + p + `" value="` + q + `"/>`},
		{"end tags and spaces", `<a  value = "` + p + `" ></a >`, `<a  value = "` + q + `" ></a >`},
		{"other host", `<url value="https://other.example/r4/tenant-guid"/>`, `<url value="https://other.example/r4/tenant-guid"/>`},
		{"unknown entity left alone", `<url value="` + p + `/&nbsp;"/>`, `<url value="` + p + `/&nbsp;"/>`},
		{"invalid xml passes", `<a value="` + p + `"><<b value="` + p, `<a value="` + q + `"><<b value="` + p},
	}
	for _, tt := range tests {
		eachSplit(t, tt.name, tt.in, tt.want, func(in []byte, step int) []byte { return rewriteXML(t, m, in, step, 0) })
	}
}

func TestXMLWriterLimit(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	long := p + "/Binary?x=" + strings.Repeat("a", 200)
	in := `<a value="` + long + `"/><b value="` + p + `"/>`
	want := `<a value="` + long + `"/><b value="` + q + `"/>`
	eachSplit(t, "limit", in, want, func(in []byte, step int) []byte { return rewriteXML(t, m, in, step, 100) })
}

// TestXMLWriterRoundTrip decodes input and output with encoding/xml: the
// same tokens, with exactly the URL attribute values changed.
func TestXMLWriterRoundTrip(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	in := `<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"><!-- c --><entry><fullUrl value="` + p +
		`/Patient/1?a=1&amp;b=&lt;2&gt;"/><resource><Patient><text><div xmlns="http://www.w3.org/1999/xhtml">` + p + ` &amp; <![CDATA[` + p + `]]></div></text></Patient></resource></entry></Bundle>`
	out := rewriteXML(t, m, []byte(in), 5, 0)
	ti, to := xmlTokens(t, []byte(in)), xmlTokens(t, out)
	if len(ti) != len(to) {
		t.Fatalf("%d tokens in, %d out:\n%s", len(ti), len(to), out)
	}
	changed := 0
	for i := range ti {
		if ti[i] != to[i] {
			changed++
			if strings.Replace(ti[i], p, q, 1) != to[i] {
				t.Errorf("token %d: %q became %q", i, ti[i], to[i])
			}
		}
	}
	if changed != 1 {
		t.Errorf("%d tokens changed, want 1", changed)
	}
}

// xmlTokens renders each token of doc as a string, failing on invalid XML.
func xmlTokens(t testing.TB, doc []byte) []string {
	t.Helper()
	toks, err := decodeXML(doc)
	if err != nil {
		t.Fatalf("invalid XML: %v\n%s", err, doc)
	}
	return toks
}

func decodeXML(doc []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out []string
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		switch tok := tok.(type) {
		case xml.StartElement:
			b.WriteString("<" + tok.Name.Space + ":" + tok.Name.Local)
			for _, a := range tok.Attr {
				b.WriteString(" " + a.Name.Space + ":" + a.Name.Local + "=" + a.Value)
			}
		case xml.EndElement:
			b.WriteString("</" + tok.Name.Local)
		case xml.CharData:
			b.WriteString("T" + string(tok))
		case xml.Comment:
			b.WriteString("C" + string(tok))
		case xml.ProcInst:
			b.WriteString("P" + tok.Target + string(tok.Inst))
		case xml.Directive:
			b.WriteString("D" + string(tok))
		}
		out = append(out, b.String())
	}
}
