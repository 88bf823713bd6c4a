package report

import (
	"bufio"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// TargetBytesPerOrg is the most live heap one cached organization may
// cost (the "≤ 2 KB per cached organization").
const TargetBytesPerOrg = 2048

// Units of go test -bench output that GoBench has fields for; any other
// unit (B/org, MB/s, ...) goes to GoBench.Metrics.
const (
	UnitNsPerOp     = "ns/op"
	UnitBytesPerOp  = "B/op"
	UnitAllocsPerOp = "allocs/op"
	// UnitBytesPerOrg is the live heap per cached organization that the
	// scale benchmarks report with b.ReportMetric.
	UnitBytesPerOrg = "B/org"
	UnitMBPerS      = "MB/s"
)

// GoBench is one benchmark's result from go test -bench -benchmem
// output; when it ran several times (-count), each number is the median.
type GoBench struct {
	// Package is the import path from the preceding "pkg:" line.
	Package string `json:"package"`
	// Name is the benchmark's full name without the -GOMAXPROCS suffix,
	// e.g. "BenchmarkResolveWarm/orgs=10000".
	Name string `json:"name"`
	// Runs is how many result lines were merged.
	Runs int `json:"runs"`
	// N is the iteration count (of the last run).
	N           int64   `json:"n"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`  // -1 without -benchmem
	AllocsPerOp float64 `json:"allocs_per_op"` // -1 without -benchmem
	// Metrics holds every other unit, e.g. "B/org" or "MB/s".
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// GoBenchResult is a parsed go test -bench run.
type GoBenchResult struct {
	Benchmarks []GoBench `json:"benchmarks"`
	// Failures are the "--- FAIL" and "FAIL" lines, and packages that
	// did not build.
	Failures []string `json:"failures,omitempty"`
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseGoBench reads go test -bench output (several packages' worth,
// possibly with -count > 1). Lines it does not know are skipped.
func ParseGoBench(out string) *GoBenchResult {
	type key struct{ pkg, name string }
	var order []key
	runs := map[key][]GoBench{}
	res := &GoBenchResult{}
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
			continue
		case strings.HasPrefix(strings.TrimSpace(line), "--- FAIL"),
			strings.HasPrefix(line, "FAIL"),
			strings.Contains(line, "[build failed]"), strings.Contains(line, "[setup failed]"):
			res.Failures = append(res.Failures, strings.TrimSpace(line))
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		b, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		b.Package = pkg
		k := key{pkg, b.Name}
		if _, seen := runs[k]; !seen {
			order = append(order, k)
		}
		runs[k] = append(runs[k], b)
	}
	for _, k := range order {
		res.Benchmarks = append(res.Benchmarks, merge(runs[k]))
	}
	return res
}

// parseBenchLine reads "BenchmarkX-2  N  v unit  v unit ...".
func parseBenchLine(line string) (GoBench, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return GoBench{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n <= 0 {
		return GoBench{}, false
	}
	b := GoBench{Name: procsSuffix.ReplaceAllString(f[0], ""), Runs: 1, N: n, BytesPerOp: -1, AllocsPerOp: -1}
	seenNs := false
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return GoBench{}, false
		}
		switch unit := f[i+1]; unit {
		case UnitNsPerOp:
			b.NsPerOp, seenNs = v, true
		case UnitBytesPerOp:
			b.BytesPerOp = v
		case UnitAllocsPerOp:
			b.AllocsPerOp = v
		default:
			if b.Metrics == nil {
				b.Metrics = map[string]float64{}
			}
			b.Metrics[unit] = v
		}
	}
	return b, seenNs
}

// merge takes the median of each number over runs of one benchmark.
func merge(runs []GoBench) GoBench {
	b := runs[len(runs)-1]
	b.Runs = len(runs)
	if len(runs) == 1 {
		return b
	}
	med := func(get func(GoBench) float64) float64 {
		vs := make([]float64, 0, len(runs))
		for _, r := range runs {
			vs = append(vs, get(r))
		}
		return median(vs)
	}
	b.NsPerOp = med(func(r GoBench) float64 { return r.NsPerOp })
	b.BytesPerOp = med(func(r GoBench) float64 { return r.BytesPerOp })
	b.AllocsPerOp = med(func(r GoBench) float64 { return r.AllocsPerOp })
	b.Metrics = map[string]float64{}
	for unit := range runs[len(runs)-1].Metrics {
		b.Metrics[unit] = med(func(r GoBench) float64 { return r.Metrics[unit] })
	}
	return b
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Find returns the benchmark named name (in any package), or nil.
func (r *GoBenchResult) Find(name string) *GoBench {
	for i := range r.Benchmarks {
		if r.Benchmarks[i].Name == name {
			return &r.Benchmarks[i]
		}
	}
	return nil
}

// scaleSizes are the organization counts of the scale benchmarks'
// sub-benchmarks (".../orgs=N").
var scaleSizes = []int{10, 1000, 10000}

// ScaleRow is one cache's scale benchmarks: the live heap per cached
// organization and the warm lookup cost at each size.
type ScaleRow struct {
	// Benchmark is the parent benchmark, e.g. "BenchmarkResolveWarm".
	Benchmark string
	Package   string
	// BytesPerOrg and NsPerOp map an organization count to the result;
	// sizes that did not run are absent.
	BytesPerOrg map[int]float64
	NsPerOp     map[int]float64
}

// Flatness is ns/op at 10,000 organizations over ns/op at 10, or 0 when
// either is missing.
func (s ScaleRow) Flatness() float64 {
	small, large := s.NsPerOp[10], s.NsPerOp[10000]
	if small <= 0 || large <= 0 {
		return 0
	}
	return large / small
}

// Scale gathers the benchmarks named <Parent>/orgs=<N> into one row per
// parent, in the order they ran.
func (r *GoBenchResult) Scale() []ScaleRow {
	var rows []ScaleRow
	index := map[string]int{}
	for _, b := range r.Benchmarks {
		parent, size, ok := strings.Cut(b.Name, "/orgs=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(size)
		if err != nil || !slices.Contains(scaleSizes, n) {
			continue
		}
		i, seen := index[parent]
		if !seen {
			i = len(rows)
			index[parent] = i
			rows = append(rows, ScaleRow{Benchmark: parent, Package: b.Package, BytesPerOrg: map[int]float64{}, NsPerOp: map[int]float64{}})
		}
		rows[i].NsPerOp[n] = b.NsPerOp
		if v, ok := b.Metrics[UnitBytesPerOrg]; ok {
			rows[i].BytesPerOrg[n] = v
		}
	}
	return rows
}

// scaleDescriptions say what each scale benchmark's row measures.
var scaleDescriptions = map[string]string{
	"BenchmarkLookupWarm":   "directory cache (`directory.Resolver.Lookup`)",
	"BenchmarkDiscoverWarm": "discovery cache (`discovery.Discoverer.Discover`)",
	"BenchmarkResolveWarm":  "tenant resolution over both (`tenant.Resolver.Resolve`)",
	"BenchmarkReuseWarm":    "the same through `tenant.Reuser`, as FHIR requests resolve",
}

// Markdown renders the "Scale" and "Go benchmarks" sections of the
// report; command is how the benchmarks were run.
func (r *GoBenchResult) Markdown(command string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	w("\n## Scale: 10,000 cached organizations\n\n")
	rows := r.Scale()
	if len(rows) == 0 {
		w("No scale benchmarks ran (`BenchmarkResolveWarm` and friends, `.../orgs=N`).\n")
	} else {
		w("The real directory, discovery and tenant caches, filled through the real clients from a loopback server that synthesizes a realistic R4 Organization and CapabilityStatement for every OID 2.999.<n> (bench/scale). *B/org* is the live heap the caches hold per organization (HeapAlloc after a full GC, after minus before, over the count); *ns/op* is a lookup of a random cached organization.\n\n")
		w("| cache | B/org at 1,000 | B/org at 10,000 | ns/op at 10 | ns/op at 1,000 | ns/op at 10,000 | 10,000 / 10 |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, row := range rows {
			desc := scaleDescriptions[row.Benchmark]
			if desc == "" {
				desc = "`" + row.Benchmark + "`"
			} else {
				desc += " — `" + strings.TrimPrefix(row.Benchmark, "Benchmark") + "`"
			}
			flat := "–"
			if f := row.Flatness(); f > 0 {
				flat = fmt.Sprintf("%.2f×", f)
			}
			w("| %s | %s | %s | %s | %s | %s | %s |\n", desc, bytesOrDash(row.BytesPerOrg, 1000), bytesOrDash(row.BytesPerOrg, 10000),
				nsOrDash(row.NsPerOp, 10), nsOrDash(row.NsPerOp, 1000), nsOrDash(row.NsPerOp, 10000), flat)
		}
		w("\n")
		for _, row := range rows {
			if row.Benchmark != "BenchmarkResolveWarm" {
				continue
			}
			if v, ok := row.BytesPerOrg[10000]; ok {
				w("- Target ≤ %d B per cached organization (directory + discovery caches, kept for their TTL): %.0f B at 10,000 — %s", TargetBytesPerOrg, v, mark(v <= TargetBytesPerOrg))
				if v > TargetBytesPerOrg {
					w(", by %.0f B (%.0f%%)", v-TargetBytesPerOrg, (v/TargetBytesPerOrg-1)*100)
				}
				w(".\n")
			}
			if f := row.Flatness(); f > 0 {
				w("- Lookup cost at 10,000 organizations is %.2f× the cost at 10 (flat would be 1×; a bigger working set costs CPU-cache misses, not algorithmic growth, when the ratio stays small).\n", f)
			}
		}
		if reuse := rowNamed(rows, "BenchmarkReuseWarm"); reuse != nil {
			if v, ok := reuse.BytesPerOrg[10000]; ok {
				w("- With the resolved tenants `tenant.Reuser` keeps (while the cached entries they were built from are current, swept a minute after they are not): %.0f B per organization.\n", v)
			}
		}
	}

	w("\n## Go benchmarks\n\n")
	if command != "" {
		w("`%s`\n\n", command)
	}
	if len(r.Benchmarks) == 0 {
		w("No benchmark results.\n")
	} else {
		w("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|--:|--:|--:|---|\n")
		for _, gb := range r.Benchmarks {
			w("| %s | %s | %s | %s | %s | %s |\n", shortPackage(gb.Package), strings.TrimPrefix(gb.Name, "Benchmark"),
				fmtNs(gb.NsPerOp), fmtCount(gb.BytesPerOp), fmtCount(gb.AllocsPerOp), fmtMetrics(gb.Metrics))
		}
	}
	if len(r.Failures) > 0 {
		w("\nFailures:\n\n")
		for _, f := range r.Failures {
			w("- FAIL: `%s`\n", f)
		}
	}
	return b.String()
}

func rowNamed(rows []ScaleRow, name string) *ScaleRow {
	for i := range rows {
		if rows[i].Benchmark == name {
			return &rows[i]
		}
	}
	return nil
}

func shortPackage(p string) string {
	return strings.TrimPrefix(p, "github.com/cqgate/cqgate/")
}

func bytesOrDash(m map[int]float64, n int) string {
	if v, ok := m[n]; ok {
		return fmt.Sprintf("%.0f B", v)
	}
	return "–"
}

func nsOrDash(m map[int]float64, n int) string {
	if v, ok := m[n]; ok {
		return fmtNs(v)
	}
	return "–"
}

// fmtNs prints a duration in nanoseconds with three significant digits
// (at least whole nanoseconds) and thousands separators.
func fmtNs(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return thousands(int64(math.Round(v)))
}

func fmtCount(v float64) string {
	if v < 0 {
		return "–"
	}
	return thousands(int64(math.Round(v)))
}

func fmtMetrics(m map[string]float64) string {
	units := make([]string, 0, len(m))
	for u := range m {
		units = append(units, u)
	}
	sort.Strings(units)
	parts := make([]string, 0, len(units))
	for _, u := range units {
		v := m[u]
		if u == UnitMBPerS {
			parts = append(parts, fmt.Sprintf("%.1f %s", v, u))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", thousands(int64(math.Round(v))), u))
		}
	}
	return strings.Join(parts, ", ")
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
