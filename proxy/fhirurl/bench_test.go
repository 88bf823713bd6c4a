package fhirurl

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bundleReader generates a searchset Bundle of about size bytes as it is
// read, never holding more than one entry: each entry has an absolute
// fullUrl, subject reference and self link under base, plus about 700
// bytes of other content, like an Observation of a real server.
type bundleReader struct {
	base  string
	size  int64
	done  int64 // bytes generated
	n     int
	buf   []byte
	off   int
	state int // 0 head, 1 entries, 2 tail, 3 EOF
}

func newBundleReader(base string, size int64) *bundleReader {
	return &bundleReader{base: base, size: size, buf: make([]byte, 0, 2048)}
}

const entryFiller = `"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},` +
	`"effectiveDateTime":"2026-01-02T03:04:05Z","issued":"2026-01-02T03:04:05.000Z","valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},` +
	`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Heart rate 72 /min, measured sitting, left arm, after five minutes of rest; reviewed by the attending clinician, no further action needed at this time.</div>"},` +
	`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}],"text":"Vital Signs"}]`

func (g *bundleReader) fill() {
	g.buf, g.off = g.buf[:0], 0
	switch g.state {
	case 0:
		g.buf = append(g.buf, `{"resourceType":"Bundle","id":"b","type":"searchset","total":1000000,"link":[{"relation":"self","url":"`...)
		g.buf = append(g.buf, g.base...)
		g.buf = append(g.buf, `/Observation?patient=1&_count=1000"},{"relation":"next","url":"`...)
		g.buf = append(g.buf, g.base...)
		g.buf = append(g.buf, `/Observation?patient=1&_getpages=abc&_count=1000"}],"entry":[`...)
		g.state = 1
	case 1:
		if g.n > 0 {
			g.buf = append(g.buf, ',')
		}
		id := strconv.Itoa(g.n)
		g.n++
		g.buf = append(g.buf, `{"fullUrl":"`...)
		g.buf = append(g.buf, g.base...)
		g.buf = append(g.buf, "/Observation/"+id+`","resource":{"resourceType":"Observation","id":"`+id+`","status":"final","subject":{"reference":"`...)
		g.buf = append(g.buf, g.base...)
		g.buf = append(g.buf, `/Patient/1","display":"Peters, Timmy"},`+entryFiller+`},"search":{"mode":"match"}}`...)
		if g.done+int64(len(g.buf)) >= g.size-2 {
			g.state = 2
		}
	case 2:
		g.buf = append(g.buf, "]}"...)
		g.state = 3
	}
	g.done += int64(len(g.buf))
}

func (g *bundleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if g.off == len(g.buf) {
			if g.state == 3 {
				break
			}
			g.fill()
		}
		k := copy(p[n:], g.buf[g.off:])
		g.off += k
		n += k
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (g *bundleReader) Close() error { return nil }

// cpuTime is the CPU time (user and system) the process used so far, in
// nanoseconds: through a proxy on loopback the upstream, the proxy and
// the client all run here, so this is the CPU the whole exchange cost.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// heapPeak samples HeapInuse every few milliseconds until stopped.
type heapPeak struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak atomic.Uint64
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

var benchSizes = []struct {
	name string
	size int64
}{{"1MB", 1 << 20}, {"100MB", 100 << 20}}

// BenchmarkBundle compares reading a generated searchset Bundle straight
// (pass) with reading it through the JSON rewriter (rewrite), in
// process. Every entry carries three URLs that map. peak-heap-MiB is the
// highest HeapInuse seen while the benchmark ran.
func BenchmarkBundle(b *testing.B) {
	rw, err := NewRewriter(partner, public)
	if err != nil {
		b.Fatal(err)
	}
	for _, sz := range benchSizes {
		for _, mode := range []string{"pass", "rewrite"} {
			b.Run(sz.name+"/"+mode, func(b *testing.B) {
				runtime.GC()
				hp := startHeapPeak()
				cpu0 := cpuTime()
				buf := make([]byte, 32<<10)
				b.SetBytes(sz.size)
				b.ReportAllocs()
				for b.Loop() {
					var r io.Reader = newBundleReader(partner, sz.size)
					if mode == "rewrite" {
						r = rw.NewReader(newBundleReader(partner, sz.size), JSON, false)
					}
					if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sz.size)*(1<<20), "ns/MiB")
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(sz.size)*(1<<20), "cpu-ns/MiB")
				b.ReportMetric(float64(hp.Stop())/(1<<20), "peak-heap-MiB")
			})
		}
	}
}

// BenchmarkProxyBundle does the same through an httputil.ReverseProxy on
// loopback, as cqgate forwards: upstream server → proxy (ModifyResponse
// rewriting, or not) → client reading to the end.
func BenchmarkProxyBundle(b *testing.B) {
	var size atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.Copy(w, newBundleReader(partner, size.Load()))
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	rw, err := NewRewriter(partner, public)
	if err != nil {
		b.Fatal(err)
	}
	for _, sz := range benchSizes {
		for _, mode := range []string{"pass", "rewrite"} {
			b.Run(sz.name+"/"+mode, func(b *testing.B) {
				size.Store(sz.size)
				rp := httputil.NewSingleHostReverseProxy(target)
				if mode == "rewrite" {
					rp.ModifyResponse = func(resp *http.Response) error {
						_, err := rw.Body(resp)
						return err
					}
				}
				px := httptest.NewServer(rp)
				defer px.Close()
				client := px.Client()
				runtime.GC()
				hp := startHeapPeak()
				cpu0 := cpuTime()
				buf := make([]byte, 32<<10)
				b.SetBytes(sz.size)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := client.Get(px.URL + "/Observation")
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, resp.Body, buf); err != nil {
						b.Fatal(err)
					}
					_ = resp.Body.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sz.size)*(1<<20), "ns/MiB")
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(sz.size)*(1<<20), "cpu-ns/MiB")
				b.ReportMetric(float64(hp.Stop())/(1<<20), "peak-heap-MiB")
			})
		}
	}
}

// TestBundleReader checks the generator the benchmarks rely on: valid
// JSON of about the size asked for, rewritten to valid JSON.
func TestBundleReader(t *testing.T) {
	t.Parallel()
	in, err := io.ReadAll(newBundleReader(partner, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	if len(in) < 60<<10 || len(in) > 68<<10 {
		t.Errorf("generated %d bytes", len(in))
	}
	m := newMapper(t)
	out := rewriteJSON(t, m, in, 4096, 0)
	tin, err := jsonTokens(in)
	if err != nil {
		t.Fatalf("generated invalid JSON: %v", err)
	}
	tout, err := jsonTokens(out)
	if err != nil || len(tin) != len(tout) {
		t.Fatalf("rewritten: %v, %d tokens, want %d", err, len(tout), len(tin))
	}
}

// xmlBundle returns a searchset Bundle in XML of about size bytes, each
// entry with three URLs under base, like bundleReader's JSON.
func xmlBundle(base string, size int) []byte {
	b := []byte(`<Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/><link><relation value="next"/><url value="` + base + `/Observation?patient=1&amp;_getpages=abc"/></link>`)
	for n := 0; len(b) < size-10; n++ {
		id := strconv.Itoa(n)
		b = append(b, `<entry><fullUrl value="`+base+`/Observation/`+id+`"/><resource><Observation><id value="`+id+`"/><status value="final"/>`+
			`<code><coding><system value="http://loinc.org"/><code value="8867-4"/><display value="Heart rate"/></coding></code>`+
			`<subject><reference value="`+base+`/Patient/1"/><display value="Peters, Timmy"/></subject>`+
			`<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">Heart rate 72 /min, measured sitting, left arm, after five minutes of rest.</div></text>`+
			`<valueQuantity><value value="72"/><unit value="beats/minute"/><system value="http://unitsofmeasure.org"/><code value="/min"/></valueQuantity>`+
			`<performer><reference value="`+base+`/Practitioner/7"/></performer></Observation></resource><search><mode value="match"/></search></entry>`...)
	}
	return append(b, "</Bundle>"...)
}

// textBundle returns a searchset Bundle of about size bytes shaped like
// bench/cmd/rewritebench's: per ~560-byte entry three URLs under base,
// one elsewhere and 270 bytes of plain text.
func textBundle(base string, size int) []byte {
	b := []byte(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"` + base + `/Observation?_count=50"}],"entry":[`)
	pad := strings.Repeat("lorem ipsum dolor sit amet ", 10)
	for n := 0; len(b) < size-600; n++ {
		if n > 0 {
			b = append(b, ',')
		}
		id := strconv.Itoa(n)
		b = append(b, `{"fullUrl":"`+base+`/Observation/`+id+`","resource":{"resourceType":"Observation","id":"`+id+
			`","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"`+
			base+`/Patient/`+id+`"},"encounter":{"reference":"`+base+`/Encounter/`+id+
			`"},"valueQuantity":{"value":112,"unit":"mg/dL"},"note":[{"text":"`+pad+`"}]},"search":{"mode":"match"}}`...)
	}
	return append(b, "]}"...)
}

// writerSizes and writerDensities are the cases of BenchmarkJSONWriter
// and BenchmarkXMLWriter: a Patient-sized answer, a page, a large
// Bundle; URLs that map (three per ~700-byte entry) or none that do (the
// same URLs on another host), or fewer URLs between plain text
// (rewritebench's shape).
var (
	writerSizes = []struct {
		name string
		size int
	}{{"2KB", 2 << 10}, {"64KB", 64 << 10}, {"1MB", 1 << 20}}
	writerDensities = []struct{ name, base string }{{"links", partner}, {"nolinks", "https://other.example/r4/tenant-guid"}, {"text", partner}}
)

// benchWriter feeds doc in 32 KiB Writes (as the reader does) to the
// writer mk makes, or copies it into a buffer (pass, the baseline).
func benchWriter(b *testing.B, doc []byte, mk func(io.Writer) io.WriteCloser) {
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	var out bytes.Buffer
	var w io.WriteCloser
	cpu0 := cpuTime()
	defer func() {
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(len(doc))*(1<<20), "cpu-ns/MiB")
	}()
	for b.Loop() {
		out.Reset()
		if mk == nil {
			for p := doc; len(p) > 0; p = p[min(len(p), 32<<10):] {
				out.Write(p[:min(len(p), 32<<10)])
			}
			continue
		}
		w = mk(&out)
		for p := doc; len(p) > 0; p = p[min(len(p), 32<<10):] {
			if _, err := w.Write(p[:min(len(p), 32<<10)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONWriter measures the JSON writer (new) against the copy it
// replaces (pass) and the scanner before issue 18 (ref), in one run.
func BenchmarkJSONWriter(b *testing.B) {
	m, err := NewMapper(partner, public)
	if err != nil {
		b.Fatal(err)
	}
	for _, sz := range writerSizes {
		for _, d := range writerDensities {
			doc, err := io.ReadAll(newBundleReader(d.base, int64(sz.size)))
			if err != nil {
				b.Fatal(err)
			}
			if d.name == "text" {
				doc = textBundle(d.base, sz.size)
			}
			b.Run(sz.name+"/"+d.name+"/pass", func(b *testing.B) { benchWriter(b, doc, nil) })
			b.Run(sz.name+"/"+d.name+"/ref", func(b *testing.B) {
				benchWriter(b, doc, func(dst io.Writer) io.WriteCloser { return newRefJSONWriter(dst, m, 0) })
			})
			b.Run(sz.name+"/"+d.name+"/new", func(b *testing.B) {
				w := NewJSONWriter(nil, m, 0)
				benchWriter(b, doc, func(dst io.Writer) io.WriteCloser { w.reset(dst, m, 0); return w })
			})
		}
	}
}

// BenchmarkXMLWriter is BenchmarkJSONWriter for XML (text: the same
// Bundle as links).
func BenchmarkXMLWriter(b *testing.B) {
	m, err := NewMapper(partner, public)
	if err != nil {
		b.Fatal(err)
	}
	for _, sz := range writerSizes {
		for _, d := range writerDensities {
			doc := xmlBundle(d.base, sz.size)
			b.Run(sz.name+"/"+d.name+"/pass", func(b *testing.B) { benchWriter(b, doc, nil) })
			b.Run(sz.name+"/"+d.name+"/ref", func(b *testing.B) {
				benchWriter(b, doc, func(dst io.Writer) io.WriteCloser { return newRefXMLWriter(dst, m, 0) })
			})
			b.Run(sz.name+"/"+d.name+"/new", func(b *testing.B) {
				w := NewXMLWriter(nil, m, 0)
				benchWriter(b, doc, func(dst io.Writer) io.WriteCloser { w.reset(dst, m, 0); return w })
			})
		}
	}
}
