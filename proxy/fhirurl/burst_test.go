package fhirurl

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// gatedBody yields the first half of data, then blocks until gate is
// closed: a partner that is slow to send the rest. blocked is told once,
// when a Read first waits.
type gatedBody struct {
	data    []byte
	off     int
	gate    chan struct{}
	blocked func()
	once    sync.Once
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if g.off >= len(g.data)/2 {
		g.once.Do(g.blocked)
		<-g.gate
	}
	lim := len(g.data)
	if g.off < len(g.data)/2 {
		lim = len(g.data) / 2
	}
	if g.off == len(g.data) {
		return 0, io.EOF
	}
	n := copy(p, g.data[g.off:lim])
	g.off += n
	return n, nil
}

func (g *gatedBody) Close() error { return nil }

// patientJSON is a Patient of about 2 KB with a few URLs under base.
func patientJSON(base string) []byte {
	b := []byte(`{"resourceType":"Patient","id":"1","meta":{"versionId":"3","source":"` + base + `/Patient/1/_history/3"},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Timmy Peters</div>"},` +
		`"identifier":[{"system":"urn:oid:2.16.840.1.113883.4.1","value":"000-00-0000"}],"name":[{"family":"Peters","given":["Timmy"]}],` +
		`"generalPractitioner":[{"reference":"` + base + `/Practitioner/7"}],"managingOrganization":{"reference":"` + base + `/Organization/3"},"extension":[`)
	for i := 0; len(b) < 1900; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","valueString":"`+strconv.Itoa(i)+`"}`...)
	}
	return append(b, "]}"...)
}

// BenchmarkBurst puts 1,000 responses of a 2 KB Patient in flight at
// once, the partner sending half of each and then waiting, and reports
// the heap they hold (heap-KiB/response: HeapInuse with all of them
// waiting, less before, per response). known: with a Content-Length (the
// body is rewritten whole); chunked: without (streamed, one Read done).
func BenchmarkBurst(b *testing.B) {
	const n = 1000
	rw, err := NewRewriter(partner, public)
	if err != nil {
		b.Fatal(err)
	}
	doc := patientJSON(partner)
	for _, mode := range []string{"known", "chunked"} {
		b.Run(mode, func(b *testing.B) {
			var held float64
			for b.Loop() {
				gate := make(chan struct{})
				var waiting, done sync.WaitGroup
				resps := make([]*http.Response, n)
				for i := range resps {
					resps[i] = upstream(200, http.Header{"Content-Type": {"application/fhir+json"}}, nil, "GET")
					resps[i].Body = &gatedBody{data: doc, gate: gate, blocked: waiting.Done}
					resps[i].ContentLength = int64(len(doc))
					if mode == "chunked" {
						resps[i].ContentLength = -1
					}
				}
				var before, during runtime.MemStats
				runtime.GC()
				runtime.GC() // twice: pooled buffers (the victim cache too) are gone
				runtime.ReadMemStats(&before)
				waiting.Add(n)
				done.Add(n)
				for _, resp := range resps {
					go func() {
						defer done.Done()
						if _, err := rw.Body(resp); err != nil {
							b.Error(err)
							return
						}
						out, err := io.ReadAll(resp.Body)
						if err != nil || !bytes.Contains(out, []byte(public+"/Patient/1/_history/3")) {
							b.Errorf("body %q, %v", out, err)
						}
						_ = resp.Body.Close()
					}()
				}
				waiting.Wait()
				runtime.GC()
				runtime.ReadMemStats(&during)
				close(gate)
				done.Wait()
				held = (float64(during.HeapInuse) - float64(before.HeapInuse)) / n / 1024
			}
			b.ReportMetric(held, "heap-KiB/response")
		})
	}
}
