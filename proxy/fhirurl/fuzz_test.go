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

// fuzzLimit is small so that the fuzzer reaches the pass-through of long
// tokens too.
const fuzzLimit = 96

var jsonSeeds = []string{
	`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"` + partner + `/Patient?_getpages=1&_count=2"}],"entry":[{"fullUrl":"` + partner + `/Patient/1","resource":{"resourceType":"Patient","id":"1"},"response":{"location":"` + partner + `/Patient/1/_history/1"}}]}`,
	`{"output":[{"type":"Patient","url":"` + partner + `/bulk/1.ndjson","count":2}],"error":[],"deleted":[{"url":"https:\/\/fhir.partner.example\/r4\/tenant-guid\/d"}],"requiresAccessToken":true}`,
	`["\u0068ttps://FHIR.partner.example:443/r4/tenant-guid#x", "` + partner + `2", "` + public + `/Patient/1"]`,
	`{"` + partner + `" : "` + partner + `" , "a\\":"\"` + partner + `"}`,
	`"` + partner + `"`,
	`{"a": [1, 2.5e-3, true, null, "x"]}`,
	`{"unterminated": "` + partner,
	`["` + partner + "/" + strings.Repeat("x", 120) + `"]`,
	// An empty string, then a scheme outside any string: the quote
	// before "http" closes, it does not open (found by the differential
	// test while the anchor scan was written).
	`""http://"` + partner + `"`,
}

// narrativeSeeds are JSON documents with narratives (the value of a "div"
// key is XHTML), kept apart from jsonSeeds: the reference writer of the
// differential test did not read narratives.
var narrativeSeeds = []string{
	`{"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"` + partner + `/Patient/1?a=1&amp;b=2\">x</a><img src='` + partner + `/Binary/1'/></div>"}}`,
	`{"div":"\u003ca href=\"\u0068ttps:\/\/fhir.partner.example\/r4\/tenant-guid\/x\"\u003e\u003c!-- \u003ca href=\"` + partner + `\"\u003e --\u003e","\u0064iv" : "<b title='` + partner + `/../y' cite=\"&#x68;ttps://fhir.partner.example/r4/tenant-guid\">"}`,
	`[{"div":null},{"div":{"div":"<a xmlns:x=\"` + partner + `\" href=\"` + partner + `\">"}},"div","<a href=\"` + partner + `\">"]`,
	`{"div":"<a href=\"` + partner + "/" + strings.Repeat("z", 120) + `\"><a href=\"` + partner + `\">"}`,
	`{"div":"<a href=\"` + partner,
}

var xmlSeeds = []string{
	`<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="` + partner + `/Patient?a=1&amp;b=2"/></link><entry><fullUrl value='` + partner + `/Patient/1'/></entry></Bundle>`,
	`<x xmlns:f="` + partner + `" a="&#x68;ttps://fhir.partner.example/r4/tenant-guid/&quot;&#10;"><!-- <y value="` + partner + `"/> --><![CDATA[ ]]> ]]><?pi ?></x>`,
	`<div xmlns="http://www.w3.org/1999/xhtml">` + partner + ` <a href="` + partner + `/Patient/1">x</a></div>`,
	`<!DOCTYPE x [<!ENTITY e "y">]><x value="` + partner + "/" + strings.Repeat("y", 120) + `"/>`,
	`<a value="` + partner,
}

// jsonToken is a token of a JSON document as encoding/json decodes it,
// with string values (not keys) told apart.
type jsonToken struct {
	tok     any
	isValue bool
	key     string // a value in an object: its key
}

// jsonTokens decodes every token of doc; err is non-nil for invalid JSON.
func jsonTokens(doc []byte) ([]jsonToken, error) {
	if !json.Valid(doc) {
		return nil, errors.New("invalid JSON")
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	type frame struct {
		object, key bool
		name        string // the last key read
	}
	var stack []frame
	var out []jsonToken
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		isValue, key := true, ""
		if n := len(stack); n > 0 && stack[n-1].object {
			if _, isDelim := tok.(json.Delim); !isDelim || tok == json.Delim('{') || tok == json.Delim('[') {
				isValue = !stack[n-1].key
				if !isValue {
					stack[n-1].name, _ = tok.(string)
				} else {
					key = stack[n-1].name
				}
				stack[n-1].key = !stack[n-1].key
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, key: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		out = append(out, jsonToken{tok, isValue, key})
	}
}

func FuzzJSONWriter(f *testing.F) {
	for _, s := range append(jsonSeeds, narrativeSeeds...) {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(7))
	}
	m, err := NewMapper(partner, public)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		checkNarratives(t, m, in, int(step))
		out := rewriteJSON(t, m, in, int(step), fuzzLimit)
		if whole := rewriteJSON(t, m, in, 0, fuzzLimit); !bytes.Equal(out, whole) {
			t.Fatalf("pieces of %d give\n%s\nat once\n%s", step, out, whole)
		}
		if again := rewriteJSON(t, m, out, 0, fuzzLimit); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
		tin, err := jsonTokens(in)
		if err != nil {
			return // invalid input: passed through, nothing more to hold to
		}
		tout, err := jsonTokens(out)
		if err != nil {
			t.Fatalf("valid input, invalid output: %v\n in %s\nout %s", err, in, out)
		}
		if len(tin) != len(tout) {
			t.Fatalf("%d tokens in, %d out", len(tin), len(tout))
		}
		mapped := false
		for i := range tin {
			want := tin[i].tok
			if s, ok := want.(string); ok && tin[i].isValue && tin[i].key == "div" {
				// A narrative: its attribute values are mapped, each
				// unless longer than the limit (checkNarratives holds
				// the mapping to XMLWriter's without one).
				if tout[i].tok != s {
					if x := rewriteXML(t, m, []byte(s), 0, 0); string(x) == s {
						t.Fatalf("token %d: narrative %q became %q, but nothing in it maps", i, s, tout[i].tok)
					}
					mapped = true
				}
				continue
			}
			if s, ok := want.(string); ok && tin[i].isValue {
				// The raw token is len(s)/3+2 (invalid UTF-8 decodes to
				// three bytes of U+FFFD) to 6*len(s)+2 bytes long.
				if u, ok := m.Map(s); ok && 6*len(s)+2 <= fuzzLimit {
					want, mapped = u, true
				} else if ok && len(s)/3+2 > fuzzLimit {
					want = s
				} else if ok {
					if tout[i].tok != want {
						if u != tout[i].tok {
							t.Fatalf("token %d: %q became %q", i, s, tout[i].tok)
						}
						mapped = true
					}
					continue
				}
			}
			if tout[i].tok != want {
				t.Fatalf("token %d: %v became %v, want %v", i, tin[i].tok, tout[i].tok, want)
			}
		}
		if !mapped && !bytes.Equal(in, out) {
			t.Fatalf("nothing maps but the bytes changed:\n in %s\nout %s", in, out)
		}
	})
}

// checkNarratives rewrites in, valid JSON, in pieces of step with the
// default limit (so that no attribute value of a small input is over it)
// and checks every narrative against XMLWriter: decoded, each "div"
// value must come back as XMLWriter rewrites the decoded XHTML.
func checkNarratives(t *testing.T, m *Mapper, in []byte, step int) {
	t.Helper()
	if len(in) > DefaultMaxToken/3 { // U+FFFD triples an invalid byte
		return
	}
	tin, err := jsonTokens(in)
	if err != nil {
		return
	}
	out := rewriteJSON(t, m, in, step, 0)
	tout, err := jsonTokens(out)
	if err != nil || len(tout) != len(tin) {
		t.Fatalf("valid input, output invalid or of other tokens (%v):\n in %s\nout %s", err, in, out)
	}
	for i := range tin {
		s, ok := tin[i].tok.(string)
		if !ok || !tin[i].isValue || tin[i].key != "div" {
			continue
		}
		if want := rewriteXML(t, m, []byte(s), 0, 0); tout[i].tok != string(want) {
			t.Fatalf("narrative %d:\n in  %q\n got %q\nwant %q", i, s, tout[i].tok, want)
		}
	}
}

// normWS maps XML white space to spaces, as attribute normalization does.
func normWS(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// xmlAttrTokens decodes doc with encoding/xml, returning each start
// element's attributes and every other token rendered as a string.
func xmlAttrTokens(doc []byte) ([][]xml.Attr, []string, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var attrs [][]xml.Attr
	var rest []string
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return attrs, rest, nil
		}
		if err != nil {
			return nil, nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs = append(attrs, tok.Attr)
			rest = append(rest, "<"+tok.Name.Space+":"+tok.Name.Local)
		case xml.EndElement:
			rest = append(rest, "</"+tok.Name.Space+":"+tok.Name.Local)
		case xml.CharData:
			rest = append(rest, "T"+string(tok))
		case xml.Comment:
			rest = append(rest, "C"+string(tok))
		case xml.ProcInst:
			rest = append(rest, "P"+tok.Target+string(tok.Inst))
		case xml.Directive:
			rest = append(rest, "D"+string(tok))
		}
	}
}

func FuzzXMLWriter(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(5))
	}
	m, err := NewMapper(partner, public)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		out := rewriteXML(t, m, in, int(step), fuzzLimit)
		if whole := rewriteXML(t, m, in, 0, fuzzLimit); !bytes.Equal(out, whole) {
			t.Fatalf("pieces of %d give\n%s\nat once\n%s", step, out, whole)
		}
		if again := rewriteXML(t, m, out, 0, fuzzLimit); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
		ain, rin, err := xmlAttrTokens(in)
		if err != nil {
			return
		}
		aout, rout, err := xmlAttrTokens(out)
		if err != nil {
			t.Fatalf("valid input, invalid output: %v\n in %s\nout %s", err, in, out)
		}
		if strings.Join(rin, "\x00") != strings.Join(rout, "\x00") || len(ain) != len(aout) {
			t.Fatalf("tokens other than attributes changed:\n in %s\nout %s", in, out)
		}
		mapped := false
		for i := range ain {
			if len(ain[i]) != len(aout[i]) {
				t.Fatalf("element %d: attributes %v became %v", i, ain[i], aout[i])
			}
			for j, a := range ain[i] {
				b := aout[i][j]
				if a.Name != b.Name {
					t.Fatalf("attribute name %v became %v", a.Name, b.Name)
				}
				va, vb := normWS(a.Value), normWS(b.Value)
				if va == vb {
					continue
				}
				u, ok := m.Map(va)
				if !ok || u != vb || a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					t.Fatalf("attribute %v: %q became %q", a.Name, a.Value, b.Value)
				}
				mapped = true
			}
		}
		if !mapped && !bytes.Equal(in, out) {
			t.Fatalf("nothing maps but the bytes changed:\n in %s\nout %s", in, out)
		}
	})
}
