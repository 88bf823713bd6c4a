package fhirurl

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refRewriteJSON runs in through the reference (pre-issue-18) JSON
// writer in pieces of size step (all at once if step is 0).
func refRewriteJSON(t testing.TB, m *Mapper, in []byte, step, limit int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeSteps(t, newRefJSONWriter(&out, m, limit), in, step)
	return out.Bytes()
}

// longSpace reports whether in has a run of JSON white space longer than
// limit: there the two writers differ on purpose (the reference ignored
// the limit when the run and the byte after it came in one Write).
func longSpace(in []byte, limit int) bool {
	run := 0
	for _, c := range in {
		if isJSONSpace(c) {
			if run++; run > limit {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// jsonFragments are the pieces random inputs are made of: the partner's
// base in several spellings, escapes, quotes, structure and other URLs.
var jsonFragments = []string{
	`"`, `"`, `"`, `\`, `\"`, `\\`, `:`, `,`, ` `, "\n", `{`, `}`, `[`, `]`,
	partner, partner, "/Patient/1", "?a=b", "#f", "2", `x`, `//`, `/`,
	strings.ToUpper(partner[:12]) + partner[12:], "https://fhir.partner.example:443/r4/tenant-guid",
	`https:\/\/fhir.partner.example\/r4\/tenant-guid`, `\u0068ttps://fhir.partner.example/r4/tenant-guid`,
	"http://loinc.org", "https://other.example/r4/tenant-guid", public, `\u00e9`, "é", "\xff", "\x01",
	`"url":"`, `","`, `":"`, `"` + partner + `/Patient/1"`, `"` + partner + `"`,
}

func randomJSON(r *rand.Rand) []byte {
	var b []byte
	for n := r.IntN(40); n >= 0; n-- {
		b = append(b, jsonFragments[r.IntN(len(jsonFragments))]...)
	}
	return b
}

// diffInputs are the fixtures the differential tests run: the seeds, the
// fuzz corpus, generated Bundles with URLs that map and URLs that do not.
func diffInputs(t *testing.T) [][]byte {
	t.Helper()
	var ins [][]byte
	for _, s := range jsonSeeds {
		ins = append(ins, []byte(s))
	}
	files, _ := filepath.Glob("testdata/fuzz/FuzzJSONWriter/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b) // the corpus file itself: go test fuzz v1 text, JSON-ish enough
	}
	for _, base := range []string{partner, "https://other.example/r4", strings.ToUpper(partner)} {
		b, err := io.ReadAll(newBundleReader(base, 96<<10))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b)
	}
	return ins
}

// TestJSONWriterMatchesReference runs the fixtures and random inputs
// through the writer and through the reference it replaced, whole and in
// pieces of many sizes, with and without a small limit: the bytes must be
// the same.
func TestJSONWriterMatchesReference(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	rewritten := 0
	check := func(in []byte, step, limit int) {
		t.Helper()
		if longSpace(in, tokenLimit(limit)) {
			return
		}
		got := rewriteJSON(t, m, in, step, limit)
		if !bytes.Equal(got, in) {
			rewritten++
		}
		want := refRewriteJSON(t, m, in, step, limit)
		if !bytes.Equal(got, want) {
			t.Fatalf("step %d, limit %d:\n in  %q\n got %q\nwant %q", step, limit, in, got, want)
		}
	}
	for _, in := range diffInputs(t) {
		for _, step := range []int{0, 1, 2, 3, 7, 64, 1000, 32 << 10} {
			for _, limit := range []int{0, 96} {
				check(in, step, limit)
			}
		}
	}
	r := rand.New(rand.NewPCG(18, 14))
	for range 20000 {
		in := randomJSON(r)
		for _, step := range []int{0, 1 + r.IntN(len(in)+1)} {
			for _, limit := range []int{0, 40 + r.IntN(60)} {
				check(in, step, limit)
			}
		}
	}
	// The inputs must exercise the rewriting, not only the pass-through.
	if rewritten < 10000 {
		t.Errorf("only %d of the runs rewrote anything", rewritten)
	}
}

func refRewriteXML(t testing.TB, m *Mapper, in []byte, step, limit int) []byte {
	t.Helper()
	var out bytes.Buffer
	writeSteps(t, newRefXMLWriter(&out, m, limit), in, step)
	return out.Bytes()
}

// xmlFragments are the pieces random XML inputs are made of: markup of
// every kind the writer follows, attribute values with the partner's
// base in several spellings, entities and names.
var xmlFragments = []string{
	`<`, `>`, `/>`, `</x>`, `<x `, `<url value="`, `<a href='`, `"`, `'`, `=`, ` `, "\n", "\t", `xmlns="`, `xmlns:f="`, ` value=`,
	partner, partner, "/Patient/1", "?a=1&amp;b=2", "#f", "2", `x`, `//`,
	strings.ToUpper(partner[:12]) + partner[12:], "https://fhir.partner.example:443/r4/tenant-guid",
	`&#x68;ttps://fhir.partner.example/r4/tenant-guid`, `&#104;`, `&amp;`, `&quot;`, `&lt;`, `&bogus;`, `&`,
	"http://loinc.org", "https://other.example/r4/tenant-guid", public, "é", "\xff",
	`<!--`, `-->`, `-`, `<![CDATA[`, `]]>`, `]`, `<?xml version="1.0"?>`, `?>`, `<!DOCTYPE x [`, `<!ENTITY e "v">`, `]>`,
	`<url value="` + partner + `/Patient/1"/>`, `<fullUrl value='` + partner + `'/>`,
}

func randomXML(r *rand.Rand) []byte {
	var b []byte
	for n := r.IntN(40); n >= 0; n-- {
		b = append(b, xmlFragments[r.IntN(len(xmlFragments))]...)
	}
	return b
}

// TestXMLWriterMatchesReference is TestJSONWriterMatchesReference for
// XML.
func TestXMLWriterMatchesReference(t *testing.T) {
	t.Parallel()
	m := newMapper(t)
	rewritten := 0
	check := func(in []byte, step, limit int) {
		t.Helper()
		got := rewriteXML(t, m, in, step, limit)
		if !bytes.Equal(got, in) {
			rewritten++
		}
		want := refRewriteXML(t, m, in, step, limit)
		if !bytes.Equal(got, want) {
			t.Fatalf("step %d, limit %d:\n in  %q\n got %q\nwant %q", step, limit, in, got, want)
		}
	}
	var ins [][]byte
	for _, s := range xmlSeeds {
		ins = append(ins, []byte(s))
	}
	files, _ := filepath.Glob("testdata/fuzz/FuzzXMLWriter/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, b)
	}
	for _, base := range []string{partner, "https://other.example/r4", strings.ToUpper(partner)} {
		ins = append(ins, xmlBundle(base, 96<<10))
	}
	for _, in := range ins {
		for _, step := range []int{0, 1, 2, 3, 7, 64, 1000, 32 << 10} {
			for _, limit := range []int{0, 96} {
				check(in, step, limit)
			}
		}
	}
	r := rand.New(rand.NewPCG(18, 15))
	for range 20000 {
		in := randomXML(r)
		for _, step := range []int{0, 1 + r.IntN(len(in)+1)} {
			for _, limit := range []int{0, 40 + r.IntN(60)} {
				check(in, step, limit)
			}
		}
	}
	if rewritten < 10000 {
		t.Errorf("only %d of the runs rewrote anything", rewritten)
	}
}

// choppy yields data in pieces of random sizes, as a network does.
type choppy struct {
	data []byte
	r    *rand.Rand
}

func (c *choppy) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.r.IntN(3000))], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *choppy) Close() error { return nil }

// TestReaderMatchesWriter reads random documents through NewReader, the
// partner's bytes coming in random pieces and the caller reading with
// buffers of random sizes (the output goes straight into them), and
// compares with the writer fed the whole input at once.
func TestReaderMatchesWriter(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	m := rw.Mapper()
	r := rand.New(rand.NewPCG(18, 16))
	bundle, err := io.ReadAll(newBundleReader(partner, 200<<10))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3000 {
		f := JSON
		var in []byte
		switch round % 4 {
		case 0:
			in = randomJSON(r)
		case 1:
			f, in = XML, randomXML(r)
		case 2:
			in = []byte(`{"div":"` + string(divEncoders[r.IntN(len(divEncoders))](randomXML(r))) + `"}`)
		default:
			in = bundle[:r.IntN(len(bundle))]
		}
		var want []byte
		if f == JSON {
			want = rewriteJSON(t, m, in, 0, 0)
		} else {
			want = rewriteXML(t, m, in, 0, 0)
		}
		rd := rw.NewReader(&choppy{data: in, r: r}, f, false)
		var got []byte
		for {
			buf := make([]byte, 1+r.IntN(40000))
			n, err := rd.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		_ = rd.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d (%v):\n in  %q\n got %q\nwant %q", round, f, in, got, want)
		}
	}
}

// TestSmallBodyLength checks the whole-body path when the partner's
// Content-Length is wrong: every byte read is rewritten and handed on,
// whatever length was announced.
func TestSmallBodyLength(t *testing.T) {
	t.Parallel()
	rw := newRewriter(t)
	in := []byte(`{"link":[{"url":"` + partner + `/Patient?page=2"}],"id":"` + strings.Repeat("x", 3000) + `"}`)
	want := rewriteJSON(t, rw.Mapper(), in, 0, 0)
	for _, announced := range []int{1, 100, 1024, len(in) - 1, len(in), len(in) + 1, 2 * len(in)} {
		resp := upstream(200, http.Header{"Content-Type": {"application/fhir+json"}}, in, "GET")
		resp.ContentLength = int64(announced)
		if _, err := rw.Body(resp); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("announced %d of %d: %v\n got %q\nwant %q", announced, len(in), err, got, want)
		}
	}
}
