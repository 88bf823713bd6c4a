package report

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// LoadRecorded reads a results file (latest.json) as the harness wrote it.
func loadRecorded(t *testing.T, path string) *Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// The report code on a run recorded with `bench/run.sh --quick` (pinned,
// 3 rounds, 5 targets): the spreads, the paired ratios and the verdicts
// come out of the recorded rounds.
func TestRecordedQuickRun(t *testing.T) {
	r := loadRecorded(t, "testdata/quick-run.json")
	if r.Rounds != 3 || len(r.Rows) != 5 || len(r.RateRows) != 5 || !strings.Contains(r.Pinning, "pinned to CPU 0") {
		t.Fatalf("recorded run: %d rounds, %d rows, %d rate rows, pinning %q", r.Rounds, len(r.Rows), len(r.RateRows), r.Pinning)
	}
	cq, ceil, ng := r.RateRow(Cqgate), r.RateRow(NetHTTP), r.RateRow(Nginx)
	if cq == nil || ceil == nil || ng == nil {
		t.Fatal("a rate row is missing")
	}
	// cqgate's rounds: 210, 230, 230 µs per request.
	if s := cq.Spread(FigCPU); s != (Spread{Min: 210, Median: 230, Max: 230}) {
		t.Errorf("cqgate CPU spread %+v", s)
	}
	// Paired with the forwarder's 200, 180, 210 µs: 1.05, 1.28, 1.10.
	x := RatioSpread(cq, ceil, FigCPU)
	if x.Min < 1.04 || x.Min > 1.06 || x.Max < 1.27 || x.Max > 1.28 || x.Median < 1.09 || x.Median > 1.10 {
		t.Errorf("cqgate / forwarder %+v", x)
	}
	r.CheckFunctional()
	if len(r.Failures) != 0 {
		t.Errorf("failures %v", r.Failures)
	}
	md := r.Markdown()
	for _, want := range []string{
		"- CPUs: proxy under test pinned to CPU 0; load generator and upstream pinned to CPU 1",
		"| **cqgate** | 230.0 µs (210.0–230.0 µs) |",
		"| best net/http forwarder | 1.10× (1.05–1.28) |",
		"| CPU per request at 1000 req/s ≤ 1.05× the best net/http forwarder | 1.10× (1.05–1.28) | **missed** |",
		"| 200×200 | 1 | 1 | 1 | 0 |",
		"PASS",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestSpreadOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{3}, Spread{3, 3, 3}},
		{[]float64{3, 1}, Spread{1, 2, 3}},
		{[]float64{5, 1, 4}, Spread{1, 4, 5}},
	} {
		if got := SpreadOf(c.in); got != c.want {
			t.Errorf("SpreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
