// Command charts draws the benchmark's results as SVG bar charts, with
// the standard library only: it reads the machine-readable results that
// bench/run.sh writes (bench/results/latest.json) and writes, for each
// target, the median over the rounds as a bar and the lowest and highest
// round as a whisker:
//
//	cpu-per-request.svg  the proxy's CPU per request at the fixed rate
//	p99.svg              p99 latency at the fixed rate
//	throughput.svg       saturated throughput
//
//	go run ./bench/cmd/charts -in bench/results/latest.json -out docs/img
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cqgate/cqgate/bench/internal/report"
)

func main() {
	in := flag.String("in", "bench/results/latest.json", "results written by bench/run.sh")
	out := flag.String("out", "docs/img", "directory to write the SVG files to")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "charts:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for name, c := range charts(&rep) {
		if len(c.Bars) == 0 {
			fmt.Fprintf(os.Stderr, "charts: %s: no data in %s, not drawn\n", name, in)
			continue
		}
		path := filepath.Join(out, name)
		if err := os.WriteFile(path, c.SVG(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "charts: wrote", path)
	}
	return nil
}

// charts are the charts drawn from rep, by file name.
func charts(rep *report.Report) map[string]*Chart {
	sub := fmt.Sprintf("median of %d rounds, whiskers: lowest and highest round · %s", max(rep.Rounds, 1), rep.When.UTC().Format("2006-01-02 15:04 UTC"))
	return map[string]*Chart{
		"cpu-per-request.svg": bars(rep.RateRows, report.FigCPU, false,
			fmt.Sprintf("Proxy CPU per request at %.0f requests/s (µs, lower is better)", rep.Rate), sub, "%.0f µs"),
		"p99.svg": bars(rep.RateRows, report.FigP99, true,
			fmt.Sprintf("p99 latency at %.0f requests/s over %d connections (ms, lower is better)", rep.Rate, rep.RateConnections), sub, "%.2f ms"),
		"throughput.svg": bars(rep.Rows, report.FigRPS, true,
			fmt.Sprintf("Saturated throughput, %d connections (requests/s, higher is better)", rep.Connections), sub, "%.0f"),
	}
}

// bars makes a chart of f over rows; the direct row only withDirect (it
// has no proxy CPU).
func bars(rows []report.Row, f report.Figure, withDirect bool, title, sub, format string) *Chart {
	c := &Chart{Title: title, Subtitle: sub, Format: format}
	for i := range rows {
		row := &rows[i]
		if row.Skipped != "" || row.Requests == 0 || (row.Key == report.Direct && !withDirect) {
			continue
		}
		s := row.Spread(f)
		if s.Max <= 0 {
			continue
		}
		c.Bars = append(c.Bars, Bar{Label: row.Name, Spread: s, Highlight: row.Key == report.Cqgate})
	}
	return c
}

// Chart is a horizontal bar chart with whiskers.
type Chart struct {
	Title, Subtitle string
	// Format prints a value beside its bar.
	Format string
	Bars   []Bar
}

// Bar is one target's median with its spread.
type Bar struct {
	Label     string
	Spread    report.Spread
	Highlight bool
}

const (
	width     = 760
	left      = 250 // labels
	right     = 110 // values
	top       = 62
	rowHeight = 34
	barHeight = 20
	bottom    = 40 // axis
)

// SVG renders the chart.
func (c *Chart) SVG() []byte {
	hi := 0.0
	for _, b := range c.Bars {
		hi = max(hi, b.Spread.Max)
	}
	axisMax, step := niceScale(hi)
	plotW := float64(width - left - right)
	x := func(v float64) float64 { return left + v/axisMax*plotW }
	height := top + rowHeight*len(c.Bars) + bottom

	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	w(`<text x="12" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", esc(c.Title))
	w(`<text x="12" y="42" font-size="11" fill="#555555">%s</text>`+"\n", esc(c.Subtitle))
	plotBottom := top + rowHeight*len(c.Bars)
	for v := 0.0; v <= axisMax*1.0000001; v += step {
		w(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>`+"\n", x(v), top-6, x(v), plotBottom)
		w(`<text x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#555555">%s</text>`+"\n", x(v), plotBottom+16, tick(v))
	}
	for i, bar := range c.Bars {
		y := float64(top + i*rowHeight)
		mid := y + barHeight/2
		fill := "#8fa9c7"
		if bar.Highlight {
			fill = "#d9822b"
		}
		s := bar.Spread
		w(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-10, mid, esc(bar.Label))
		w(`<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, x(s.Median)-left, barHeight, fill)
		if s.Max > s.Min {
			w(`<g stroke="#222222" stroke-width="1.5"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/></g>`+"\n",
				x(s.Min), mid, x(s.Max), mid, x(s.Min), mid-5, x(s.Min), mid+5, x(s.Max), mid-5, x(s.Max), mid+5)
		}
		w(`<text x="%.1f" y="%.1f" dominant-baseline="middle" font-size="12">%s</text>`+"\n", x(s.Max)+8, mid, esc(fmt.Sprintf(c.Format, s.Median)))
	}
	w(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#222222"/>`+"\n", left, top-6, left, plotBottom)
	w("</svg>\n")
	return []byte(b.String())
}

// niceScale returns an axis end at or above hi and a tick step, both
// 1, 2 or 5 times a power of ten, with four to ten ticks.
func niceScale(hi float64) (end, step float64) {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		return 1, 0.2
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(hi/step) * step, step
}

func tick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%gk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}

func esc(s string) string { return html.EscapeString(s) }
