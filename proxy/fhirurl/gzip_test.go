package fhirurl

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestGzipBodySameDocument(t *testing.T) {
	rw := newRewriter(t)
	var doc strings.Builder
	doc.WriteString(`{"resourceType":"Bundle","link":[`)
	for i := 0; i < 3000; i++ {
		if i > 0 {
			doc.WriteString(",")
		}
		doc.WriteString(`{"relation":"next","url":"https:\/\/fhir.partner.example\/r4\/tenant-guid\/Patient?p=` + strings.Repeat("x", i%50) + `","n":1.5e3,"k":"\u00e9\"` + partner + `"}`)
	}
	doc.WriteString(`]}`)
	in := []byte(doc.String())
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, 1)
	zw.Write(in)
	zw.Close()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}, "Content-Encoding": {"gzip"}},
		Body: io.NopCloser(&z), ContentLength: int64(z.Len()), Request: &http.Request{Method: "GET"}}
	if _, err := rw.Body(resp); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(in, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(string(mustJSON(a)), partner, public)
	// keys "k" hold a string that does not start with the URL: untouched
	want = strings.ReplaceAll(want, `é\"`+public, `é\"`+partner)
	if got := string(mustJSON(b)); got != want && !reflect.DeepEqual(a, b) {
		if len(got) != len(want) {
			t.Errorf("len %d vs %d", len(got), len(want))
		}
		t.Errorf("documents differ beyond URLs")
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
