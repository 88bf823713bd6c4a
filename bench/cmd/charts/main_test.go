package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/bench/internal/report"
)

// parseSVG checks b is well-formed XML with an <svg> root in the SVG
// namespace, and returns its rect and text elements.
func parseSVG(t *testing.T, b []byte) (rects int, texts []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root {
			if se.Name.Local != "svg" || se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("root element %v", se.Name)
			}
			root = false
		}
		switch se.Name.Local {
		case "rect":
			rects++
		case "text":
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				t.Fatal(err)
			}
			texts = append(texts, s)
		}
	}
	if root {
		t.Fatal("no element at all")
	}
	return rects, texts
}

// The chart program renders valid SVG from a results file recorded by
// bench/run.sh --quick: one bar per target with its median, the cqgate
// bar highlighted, titles from the run.
func TestRendersRecordedResults(t *testing.T) {
	out := t.TempDir()
	if err := run("../../internal/report/testdata/quick-run.json", out); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file  string
		bars  int
		texts []string
	}{
		{"cpu-per-request.svg", 4, []string{"Proxy CPU per request at 1000 requests/s (µs, lower is better)", "cqgate", "best net/http forwarder", "nginx (1 worker)", "230 µs", "90 µs"}},
		{"p99.svg", 5, []string{"upstream directly", "cqgate", "3.71 ms"}},
		{"throughput.svg", 5, []string{"Saturated throughput, 16 connections (requests/s, higher is better)", "7245"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(out, c.file))
			if err != nil {
				t.Fatal(err)
			}
			rects, texts := parseSVG(t, b)
			if rects != c.bars+1 { // the background
				t.Errorf("%d rects, want %d bars and the background", rects, c.bars)
			}
			all := strings.Join(texts, "\n")
			for _, want := range c.texts {
				if !strings.Contains(all, want) {
					t.Errorf("no text %q in:\n%s", want, all)
				}
			}
			if !bytes.Contains(b, []byte(`fill="#d9822b"`)) {
				t.Error("the cqgate bar is not highlighted")
			}
		})
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(bad, dir); err == nil {
		t.Error("a malformed results file was accepted")
	}
	if err := run(filepath.Join(dir, "missing.json"), dir); err == nil {
		t.Error("a missing results file was accepted")
	}
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ hi, end, step float64 }{
		{230, 250, 50}, {3.7, 4, 1}, {24808, 25000, 5000}, {0, 1, 0.2}, {1, 1, 0.2}, {0.45, 0.5, 0.1},
	} {
		if end, step := niceScale(c.hi); end != c.end || step != c.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.hi, end, step, c.end, c.step)
		}
	}
}

// Names with markup characters are escaped.
func TestEscapes(t *testing.T) {
	c := &Chart{Title: `a <b> & "c"`, Format: "%.0f", Bars: []Bar{{Label: "x<y", Spread: spread(1, 2, 3)}}}
	_, texts := parseSVG(t, c.SVG())
	if !strings.Contains(strings.Join(texts, "|"), `a <b> & "c"|`) || !strings.Contains(strings.Join(texts, "|"), "x<y") {
		t.Errorf("texts %q", texts)
	}
}

func spread(lo, mid, hi float64) report.Spread { return report.Spread{Min: lo, Median: mid, Max: hi} }
