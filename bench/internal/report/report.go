package report

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Target keys, in the order they are run and shown.
const (
	Direct   = "direct"
	Bare     = "bare"      // httputil.ReverseProxy as it comes
	BarePool = "bare-pool" // the same with a BufferPool, as cqgate has
	// NetHTTP is setup.Forwarder, the best plain net/http proxy the
	// benchmark could write: the ceiling for a Go proxy.
	NetHTTP = "nethttp"
	// FastHTTP is setup.FastForwarder, the same forwarding on fasthttp: a
	// reference point outside net/http (cqgate does not use fasthttp).
	FastHTTP = "fasthttp"
	Nginx    = "nginx"
	Cqgate   = "cqgate"
)

// Targets met or missed (issue 18), judged on one run's ratios.
const (
	// cqgate's CPU per request at the fixed rate, over the ceiling's and
	// over nginx's (nginx pinned to the same single core).
	TargetCPUVsNetHTTP = 1.05
	TargetCPUVsNginx   = 2.0
	// Added p99 over direct at the fixed rate.
	TargetAddedP99      = 500 * time.Microsecond
	TargetAddedP99Conns = 64
	TargetRSS           = 64 << 20
	// cqgate's peak RSS after the cold-start burst.
	TargetBurstRSS = 48 << 20
	// CPU per request of cqgate serving many warm organizations at
	// random over cqgate serving a few, at the fixed rate.
	TargetScaleCPU = 1.10
)

// ScaleKey is the row key of the scale comparison's cqgate serving n
// organizations.
func ScaleKey(n int) string { return fmt.Sprintf("cqgate-orgs-%d", n) }

// Scale is the comparison of cqgate serving Few warm organizations with
// cqgate serving Many, each at Rate requests/s over Connections
// connections for Duration in all, the load spread at random over its
// organizations, the two taking turns round by round.
type Scale struct {
	Few, Many int
	// Hosts is how many partner hosts the organizations' FHIR servers
	// are spread over; 0 means one host for all.
	Hosts       int `json:",omitempty"`
	Rate        float64
	Connections int
	Duration    time.Duration
	// Rows are the Few row, then the Many row.
	Rows []Row
}

// Ratio is Many's CPU per request over Few's, paired round by round.
func (s *Scale) Ratio() Spread {
	if len(s.Rows) != 2 {
		return Spread{}
	}
	return RatioSpread(&s.Rows[1], &s.Rows[0], FigCPU)
}

// Row is one target's measured run.
type Row struct {
	Key  string // Direct, Bare, Nginx or Cqgate
	Name string // shown in the table
	// Skipped says why the target was not run; the other fields are then
	// zero.
	Skipped string
	// Tool is the load generator: "wrk" or "loadgen".
	Tool     string
	Requests int64
	Duration time.Duration
	// Non2xx counts responses that were not 2xx; SocketErrors counts
	// connect, read, write and timeout errors.
	Non2xx, SocketErrors int64

	P50, P75, P90, P99, P999, Max time.Duration

	// CPUPerRequest and PeakRSS are the proxy process's (zero for
	// Direct): utime+stime over the measured run divided by the requests,
	// and VmHWM after it. UpstreamCPUPerRequest is the bench upstream's.
	CPUPerRequest, UpstreamCPUPerRequest time.Duration
	PeakRSS                              int64
	// OtherCPU is how many CPUs' worth of time processes other than the
	// proxy, the upstream and the load generator were busy during the
	// run, and Steal how many the hypervisor took: the noise under the
	// row.
	OtherCPU, Steal float64
	// FHIRConnsOpened is how many connections cqgate opened to FHIR
	// servers during the measured run (cqgate_fhir_connections_opened_total),
	// when FHIRConnsCounted: a cqgate target whose metrics were read.
	FHIRConnsOpened  int64 `json:",omitempty"`
	FHIRConnsCounted bool  `json:",omitempty"`
	// Rounds is how many runs were merged into this row (see Merge), and
	// MinRPS and MaxRPS the lowest and highest rate among them.
	Rounds         int
	MinRPS, MaxRPS float64
	// PerRound holds each round's own figures, in round order, for the
	// spreads (min/median/max) and the ratios paired round by round.
	PerRound []Round `json:",omitempty"`
}

// Round is one round's figures of a row.
type Round struct {
	RPS           float64
	CPUPerRequest time.Duration
	P50, P99      time.Duration
}

// Spread is the lowest, the median and the highest of a figure over the
// rounds.
type Spread struct{ Min, Median, Max float64 }

// SpreadOf returns the spread of v; the median of an even count is the
// mean of the middle two. It is zero for no values.
func SpreadOf(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	mid := s[len(s)/2]
	if len(s)%2 == 0 {
		mid = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Min: s[0], Median: mid, Max: s[len(s)-1]}
}

// Figure picks one figure of a round, in the unit it is shown in.
type Figure func(Round) float64

// The figures charted and tabled: requests per second, CPU per request
// in µs, latency in ms.
var (
	FigRPS Figure = func(r Round) float64 { return r.RPS }
	FigCPU Figure = func(r Round) float64 { return float64(r.CPUPerRequest) / float64(time.Microsecond) }
	FigP50 Figure = func(r Round) float64 { return float64(r.P50) / float64(time.Millisecond) }
	FigP99 Figure = func(r Round) float64 { return float64(r.P99) / float64(time.Millisecond) }
)

// rounds is PerRound, or the row as one round when it has none (a row
// that was not merged, or results written before rounds were kept).
func (r *Row) rounds() []Round {
	if len(r.PerRound) == 0 && r.Requests > 0 {
		return []Round{{RPS: r.RPS(), CPUPerRequest: r.CPUPerRequest, P50: r.P50, P99: r.P99}}
	}
	return r.PerRound
}

// Spread is f's spread over the row's rounds.
func (r *Row) Spread(f Figure) Spread {
	v := make([]float64, 0, len(r.PerRound))
	for _, rd := range r.rounds() {
		v = append(v, f(rd))
	}
	return SpreadOf(v)
}

// RatioSpread pairs a's and b's rounds (round i of a with round i of b,
// which ran back to back) and returns the spread of a's figure over
// b's. Rounds where b's figure is 0 are left out.
func RatioSpread(a, b *Row, f Figure) Spread {
	var v []float64
	ar, br := a.rounds(), b.rounds()
	for i := range min(len(ar), len(br)) {
		if d := f(br[i]); d > 0 {
			v = append(v, f(ar[i])/d)
		}
	}
	return SpreadOf(v)
}

// Merge combines rounds of the same target into one row: requests, time
// and errors add up; CPU per request is the total over the total; peak
// RSS is the highest; each latency percentile is the median of the
// rounds' (percentiles of separate runs cannot be merged exactly); other
// load is time-weighted. A skipped round makes the row skipped.
func Merge(rounds []Row) Row {
	if len(rounds) == 0 {
		return Row{}
	}
	out := rounds[0]
	out.Requests, out.Duration, out.Non2xx, out.SocketErrors = 0, 0, 0, 0
	out.FHIRConnsOpened, out.FHIRConnsCounted = 0, true
	out.Rounds = len(rounds)
	var cpu, upCPU time.Duration
	var other, steal float64
	pct := make([][]time.Duration, 6)
	out.PerRound = make([]Round, 0, len(rounds))
	for i, r := range rounds {
		if r.Skipped != "" {
			r.Rounds = len(rounds)
			return r
		}
		out.PerRound = append(out.PerRound, Round{RPS: r.RPS(), CPUPerRequest: r.CPUPerRequest, P50: r.P50, P99: r.P99})
		out.Requests += r.Requests
		out.Duration += r.Duration
		out.Non2xx += r.Non2xx
		out.SocketErrors += r.SocketErrors
		out.FHIRConnsOpened += r.FHIRConnsOpened
		out.FHIRConnsCounted = out.FHIRConnsCounted && r.FHIRConnsCounted
		cpu += r.CPUPerRequest * time.Duration(r.Requests)
		upCPU += r.UpstreamCPUPerRequest * time.Duration(r.Requests)
		out.PeakRSS = max(out.PeakRSS, r.PeakRSS)
		other += r.OtherCPU * r.Duration.Seconds()
		steal += r.Steal * r.Duration.Seconds()
		for j, p := range []time.Duration{r.P50, r.P75, r.P90, r.P99, r.P999, r.Max} {
			pct[j] = append(pct[j], p)
		}
		rps := r.RPS()
		if i == 0 || rps < out.MinRPS {
			out.MinRPS = rps
		}
		if i == 0 || rps > out.MaxRPS {
			out.MaxRPS = rps
		}
	}
	if out.Requests > 0 {
		out.CPUPerRequest = cpu / time.Duration(out.Requests)
		out.UpstreamCPUPerRequest = upCPU / time.Duration(out.Requests)
	}
	if out.Duration > 0 {
		out.OtherCPU, out.Steal = other/out.Duration.Seconds(), steal/out.Duration.Seconds()
	}
	med := func(v []time.Duration) time.Duration {
		slices.Sort(v)
		return v[(len(v)-1)/2]
	}
	out.P50, out.P75, out.P90, out.P99, out.P999 = med(pct[0]), med(pct[1]), med(pct[2]), med(pct[3]), med(pct[4])
	out.Max = slices.Max(pct[5])
	return out
}

// DisturbedAbove is the OtherCPU+Steal beyond which a row is flagged as
// disturbed by the rest of the machine.
const DisturbedAbove = 0.15

// RPS is requests per second.
func (r *Row) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// ColdStart is the burst of first requests for an organization cqgate has
// not seen.
type ColdStart struct {
	OID                string
	N                  int
	Status             map[int]int64
	Errors             int64
	FirstError         string
	Connect            time.Duration
	First, Median, Max time.Duration
	// Upstream requests the burst caused.
	Directory, Metadata, Token, Other int64
	// UpstreamDelay is the latency the bench upstream added to each
	// directory, metadata and token answer.
	UpstreamDelay time.Duration
	// PeakRSS is cqgate's VmHWM after the burst.
	PeakRSS int64
}

// OK counts 200 answers.
func (c *ColdStart) OK() int64 { return c.Status[200] }

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs       int
	CPUModel   string
	Memory     string
	Kernel     string
	GoVersion  string
	Wrk, Nginx string
}

// Report is a whole benchmark run.
type Report struct {
	When    time.Time
	Command string
	// Cqgate says which cqgate was measured (a commit, a binary).
	Cqgate      string
	Machine     Machine
	Connections int
	Threads     int
	// Duration is the measured time per target, in Rounds turns.
	Duration time.Duration
	Rounds   int
	Warmup   time.Duration
	// Pinning says which CPUs the proxy under test and the load
	// generator with the upstream ran on.
	Pinning string
	// Rows are the saturating runs: each connection sends its next
	// request as soon as the answer is in.
	Rows []Row
	// RateRows are the fixed-rate runs (Rate requests per second over
	// RateConnections connections for RateDuration), where latency is
	// not dominated by queueing for the CPU.
	RateRows        []Row
	Rate            float64
	RateConnections int
	RateDuration    time.Duration
	Cold            *ColdStart
	// Scale is the scale comparison, when it ran (benchrun -orgs).
	Scale *Scale `json:",omitempty"`
	Notes []string
	// Failures are functional failures: non-2xx answers, or a cold start
	// that did not cost exactly one exchange. They make the run fail.
	Failures []string
}

// Row returns the saturating run's row with key, or nil if it is missing
// or was skipped.
func (r *Report) Row(key string) *Row { return find(r.Rows, key) }

// RateRow returns the fixed-rate run's row with key, or nil.
func (r *Report) RateRow(key string) *Row { return find(r.RateRows, key) }

func find(rows []Row, key string) *Row {
	for i := range rows {
		if rows[i].Key == key && rows[i].Skipped == "" {
			return &rows[i]
		}
	}
	return nil
}

// CheckFunctional appends to Failures what the rows and the cold start
// show went wrong functionally (never a performance number).
func (r *Report) CheckFunctional() {
	for _, row := range r.allRows() {
		if row.Skipped != "" {
			continue
		}
		if row.Non2xx > 0 {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %d responses were not 2xx", row.Name, row.Non2xx))
		}
		if row.Requests == 0 {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: no request completed", row.Name))
		}
	}
	if c := r.Cold; c != nil {
		if bad := int64(c.N) - c.OK(); bad > 0 {
			r.Failures = append(r.Failures, fmt.Sprintf("cold start: %d of %d first requests were not answered 200 (%s)", bad, c.N, statusList(c.Status, c.Errors, c.FirstError)))
		}
		if c.Token != 1 {
			r.Failures = append(r.Failures, fmt.Sprintf("cold start: %d token exchanges, want exactly 1", c.Token))
		}
	}
}

// allRows are the saturating, fixed-rate and scale rows.
func (r *Report) allRows() []Row {
	rows := append(append([]Row(nil), r.Rows...), r.RateRows...)
	if r.Scale != nil {
		rows = append(rows, r.Scale.Rows...)
	}
	return rows
}

func statusList(st map[int]int64, errs int64, firstErr string) string {
	codes := make([]int, 0, len(st))
	for c := range st {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", st[c], c))
	}
	if errs > 0 {
		parts = append(parts, fmt.Sprintf("%d errors, e.g. %s", errs, firstErr))
	}
	return strings.Join(parts, ", ")
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// us formats d in microseconds.
func us(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func mib(b int64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# cqgate benchmark results\n\n")
	w("- When: %s\n", r.When.UTC().Format(time.RFC3339))
	m := r.Machine
	w("- Machine: %d CPUs (%s), %s memory, Linux %s\n", m.CPUs, orDash(m.CPUModel), orDash(m.Memory), orDash(m.Kernel))
	w("- Software: %s; wrk %s; nginx %s\n", orDash(m.GoVersion), orDash(m.Wrk), orDash(m.Nginx))
	if len(r.Rows) > 0 {
		w("- Load: %d connections, %d threads, %s per target (in %d rounds) after a %s warm-up; everything on 127.0.0.1\n", r.Connections, r.Threads, r.Duration, max(r.Rounds, 1), r.Warmup)
	} else {
		w("- Load: fixed-rate passes only, after a %s warm-up; everything on 127.0.0.1\n", r.Warmup)
	}
	if r.Pinning != "" {
		w("- CPUs: %s\n", r.Pinning)
	}
	if r.Cqgate != "" {
		w("- cqgate: %s\n", r.Cqgate)
	}
	if r.Command != "" {
		w("- Command: `%s`\n", r.Command)
	}
	r.headline(&b)
	if len(r.Rows) > 0 {
		w("\n## Saturation: as many requests as the answers allow\n\n")
		w("Each of %d connections sends its next request as soon as the previous answer is in, so this measures how many requests each proxy serves with the CPU it has, and latency is mostly queueing.", r.Connections)
		if r.Rounds > 1 {
			w(" The targets took turns in %d rounds of %s each (ABAB…); each figure is the median of the rounds' with the lowest–highest round in brackets; max is the highest.", r.Rounds, r.Duration/time.Duration(r.Rounds))
		}
		w("\n\n")
		rowsTable(&b, r.Rows)
	}
	if len(r.RateRows) > 0 {
		w("\n## Latency and CPU at a fixed rate: %.0f requests/s over %d connections, %s each (loadgen)\n\n", r.Rate, r.RateConnections, r.RateDuration)
		w("Requests are sent on a fixed schedule and latency counts from when each was due (no coordinated omission). Every target gets the same offered load, so CPU per request is comparable between them and the difference to the direct row is the proxy's own cost.")
		if r.Rounds > 1 {
			w(" These passes took turns with the others in the same %d rounds.", r.Rounds)
		}
		w("\n\n")
		rowsTable(&b, r.RateRows)
	}

	cq := r.Row(Cqgate)
	if cq != nil {
		w("\n## cqgate compared (same run)\n\n")
		w("Ratios are paired round by round (cqgate's round i over the other's round i, which ran next to it): median (lowest–highest).\n\n")
		w("| cqgate vs | CPU/req at %.0f req/s | throughput (saturated) | CPU/req (saturated) | added p50 at %.0f req/s | added p99 at %.0f req/s | added p99.9 at %.0f req/s |\n|---|--:|--:|--:|--:|--:|--:|\n", r.Rate, r.Rate, r.Rate, r.Rate)
		cqr := r.RateRow(Cqgate)
		for _, key := range []string{Direct, Bare, BarePool, NetHTTP, FastHTTP, Nginx} {
			o := r.Row(key)
			if o == nil {
				continue
			}
			fixedCPU, satCPU := "–", "–"
			if key != Direct && o.CPUPerRequest > 0 {
				satCPU = ratioCell(RatioSpread(cq, o, FigCPU))
			}
			fixed := " | | "
			if or := r.RateRow(key); or != nil && cqr != nil {
				if key != Direct {
					fixedCPU = ratioCell(RatioSpread(cqr, or, FigCPU))
				}
				fixed = fmt.Sprintf("%s | %s | %s", signedMS(cqr.P50-or.P50), signedMS(cqr.P99-or.P99), signedMS(cqr.P999-or.P999))
			}
			w("| %s | %s | %s | %s | %s |\n", o.Name, fixedCPU, ratioCell(RatioSpread(cq, o, FigRPS)), satCPU, fixed)
		}
		r.targets(&b, cq)
	}

	if c := r.Cold; c != nil {
		w("\n## Cold start\n\n")
		w("%d concurrent first requests for organization %s, which cqgate had not seen, released together on pre-opened connections (opening them took %s). The bench upstream delays every directory, metadata and token answer by %s.\n\n", c.N, c.OID, ms(c.Connect), c.UpstreamDelay)
		w("| answers | directory lookups | metadata fetches | token exchanges | other discovery requests | first response | median | slowest | cqgate peak RSS after |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		w("| %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", statusList(c.Status, c.Errors, c.FirstError), c.Directory, c.Metadata, c.Token, c.Other, ms(c.First), ms(c.Median), ms(c.Max), mib(c.PeakRSS))
	}
	if sc := r.Scale; sc != nil {
		r.scale(&b, sc)
	}
	notes := r.Notes
	var disturbed []string
	for _, row := range r.allRows() {
		if row.Skipped == "" && row.OtherCPU+row.Steal > DisturbedAbove {
			disturbed = append(disturbed, fmt.Sprintf("%s with %s (%.2f CPUs)", row.Name, row.Tool, row.OtherCPU+row.Steal))
		}
	}
	if len(disturbed) > 0 {
		notes = append(notes, "Other processes (or the hypervisor) kept the machine busy during: "+strings.Join(disturbed, "; ")+". Those rows' numbers are not a fair comparison; run again on a quiet machine.")
	}
	if len(notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range notes {
			w("- %s\n", n)
		}
	}
	w("\n## Functional result\n\n")
	if len(r.Failures) == 0 && r.Cold != nil {
		w("PASS: every answer was 2xx and the cold start made exactly one token exchange.\n")
	} else if len(r.Failures) == 0 {
		w("PASS: every answer was 2xx.\n")
	} else {
		for _, f := range r.Failures {
			w("- FAIL: %s\n", f)
		}
	}
	return b.String()
}

// headline is the section the run is read by: each proxy's CPU per
// request at the same offered rate, beside its saturated throughput.
func (r *Report) headline(b *strings.Builder) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if len(r.RateRows) == 0 && len(r.Rows) == 0 {
		return
	}
	w("\n## Headline: CPU per request at the same offered rate\n\n")
	w("The proxy process's utime+stime (/proc/<pid>/stat; nginx: master and workers) over each pass, divided by the requests it served; median (lowest–highest) over the rounds. ")
	w("The fixed-rate column gives every target the same %.0f requests/s; the saturated column is beside it with the throughput it reached.\n\n", r.Rate)
	w("| target | CPU/req at %.0f req/s | CPU/req saturated | req/s saturated | p99 at %.0f req/s |\n|---|--:|--:|--:|--:|\n", r.Rate, r.Rate)
	keys := []string{}
	for _, row := range r.Rows {
		keys = append(keys, row.Key)
	}
	for _, row := range r.RateRows {
		if !slices.Contains(keys, row.Key) {
			keys = append(keys, row.Key)
		}
	}
	for _, key := range keys {
		sat, fixed := find(r.Rows, key), find(r.RateRows, key)
		name := ""
		cells := []string{"–", "–", "–", "–"}
		if fixed != nil {
			name = fixed.Name
			if key != Direct {
				cells[0] = spreadCell(fixed.Spread(FigCPU), "%.1f", " µs")
			}
			cells[3] = spreadCell(fixed.Spread(FigP99), "%.3f", " ms")
		}
		if sat != nil {
			name = sat.Name
			if key != Direct {
				cells[1] = spreadCell(sat.Spread(FigCPU), "%.1f", " µs")
			}
			cells[2] = spreadCell(sat.Spread(FigRPS), "%.0f", "")
		}
		if name == "" {
			continue
		}
		if key == Cqgate {
			name = "**" + name + "**"
		}
		w("| %s | %s |\n", name, strings.Join(cells, " | "))
	}
}

// targets is the verdict on issue 18's targets.
func (r *Report) targets(b *strings.Builder, cq *Row) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("\n## Targets\n\n| target | measured (median, lowest–highest round) | verdict |\n|---|---|---|\n")
	cqr := r.RateRow(Cqgate)
	for _, t := range []struct {
		key   string
		limit float64
	}{{NetHTTP, TargetCPUVsNetHTTP}, {Nginx, TargetCPUVsNginx}} {
		o := r.RateRow(t.key)
		if o == nil || cqr == nil {
			continue
		}
		x := RatioSpread(cqr, o, FigCPU)
		w("| CPU per request at %.0f req/s ≤ %.2f× the %s | %s | %s |\n", r.Rate, t.limit, o.Name, ratioCell(x), mark(x.Median > 0 && x.Median <= t.limit))
	}
	if d := r.RateRow(Direct); cqr != nil && d != nil {
		added := cqr.P99 - d.P99
		if r.RateConnections == TargetAddedP99Conns {
			w("| added p99 over direct ≤ %s at %.0f req/s (%d connections) | %s | %s |\n", ms(TargetAddedP99), r.Rate, TargetAddedP99Conns, signedMS(added), mark(added <= TargetAddedP99))
		} else {
			w("| added p99 over direct ≤ %s at %.0f req/s (%d connections) | %s at %d connections | (not comparable) |\n", ms(TargetAddedP99), r.Rate, TargetAddedP99Conns, signedMS(added), r.RateConnections)
		}
	}
	w("| cqgate peak RSS ≤ %s, under load (%d connections) | %s | %s |\n", mib(TargetRSS), r.Connections, mib(cq.PeakRSS), mark(cq.PeakRSS > 0 && cq.PeakRSS <= TargetRSS))
	if c := r.Cold; c != nil {
		w("| cqgate peak RSS ≤ %s after the %d-request cold burst, every request answered | %s, %d of %d answered 200 | %s |\n", mib(TargetBurstRSS), c.N, mib(c.PeakRSS), c.OK(), c.N, mark(c.PeakRSS > 0 && c.PeakRSS <= TargetBurstRSS && c.OK() == int64(c.N)))
		w("| cold start: exactly 1 token exchange | %d | %s |\n", c.Token, mark(c.Token == 1))
		w("| cold start: exactly 1 directory lookup | %d | %s |\n", c.Directory, mark(c.Directory == 1))
		w("| cold start: exactly 1 metadata fetch | %d | %s |\n", c.Metadata, mark(c.Metadata == 1))
	}
}

// scale is the scale comparison's section.
func (r *Report) scale(b *strings.Builder, sc *Scale) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("\n## %d vs %d organizations, end to end\n\n", sc.Few, sc.Many)
	w("Two cqgate processes from the same binary, each pinned like the cqgate target: one configured with and warmed for %d organizations, the other for %d (every organization's directory entry, discovery result and token cached by one request each before the passes). ", sc.Few, sc.Many)
	if sc.Hosts > 0 {
		w("The organizations' FHIR servers (and token endpoints) are spread over %d partner hosts, loopback ports of the one stub: organization n on host n mod %d, so the %d-organization process talks to %d of them and the other to %d. ", sc.Hosts, sc.Hosts, sc.Few, min(sc.Few, sc.Hosts), min(sc.Many, sc.Hosts))
	} else {
		w("Every organization's FHIR server is on the one partner host, as the tenants of one vendor are. ")
	}
	w("Each got %.0f requests/s over %d connections, %s in all, spread evenly over its organizations in a shuffled order (loadgen); the two took turns in %d rounds. CPU per request is the process's, as in the headline; peak RSS is since the warm-up ended (reset through /proc/<pid>/clear_refs where the kernel allows).\n\n", sc.Rate, sc.Connections, sc.Duration, max(r.Rounds, 1))
	rowsTable(b, sc.Rows)
	x := sc.Ratio()
	w("\n| target | measured (median, lowest–highest round) | verdict |\n|---|---|---|\n")
	w("| CPU per request at %.0f req/s with %d organizations within %.0f %% of %d (≤ %.2f×) | %s | %s |\n",
		sc.Rate, sc.Many, (TargetScaleCPU-1)*100, sc.Few, TargetScaleCPU, ratioCell(x), mark(x.Median > 0 && x.Median <= TargetScaleCPU))
	var conns []string
	for _, r := range sc.Rows {
		if r.FHIRConnsCounted && r.Requests > 0 {
			conns = append(conns, fmt.Sprintf("%s: %d (%.1f per 1,000 requests)", r.Name, r.FHIRConnsOpened, float64(r.FHIRConnsOpened)*1000/float64(r.Requests)))
		}
	}
	if len(conns) > 0 {
		w("\nConnections opened to the FHIR servers during the measured passes (`cqgate_fhir_connections_opened_total`; near 0 when keep-alive connections are reused): %s.\n", strings.Join(conns, "; "))
	}
}

// spreadCell shows a spread as "median unit (min–max unit)", numbers in
// format.
func spreadCell(s Spread, format, unit string) string {
	if s.Max == 0 {
		return "–"
	}
	if s.Min == s.Max {
		return fmt.Sprintf(format, s.Median) + unit
	}
	return fmt.Sprintf(format+unit+" ("+format+"–"+format+unit+")", s.Median, s.Min, s.Max)
}

func ratioCell(s Spread) string {
	if s.Max == 0 {
		return "–"
	}
	if s.Min == s.Max {
		return fmt.Sprintf("%.2f×", s.Median)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func signedMS(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func rowsTable(b *strings.Builder, rows []Row) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("| target | load tool | req/s | p50 | p90 | p99 | p99.9 | max | non-2xx | socket errors | proxy CPU/req | proxy peak RSS | upstream CPU/req | other load |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range rows {
		if row.Skipped != "" {
			w("| %s | – | skipped: %s | | | | | | | | | | | |\n", row.Name, row.Skipped)
			continue
		}
		cpu, rss := us(row.CPUPerRequest), mib(row.PeakRSS)
		rps, p50, p99 := fmt.Sprintf("%.0f", row.RPS()), ms(row.P50), ms(row.P99)
		if len(row.PerRound) > 1 {
			rps = spreadCell(row.Spread(FigRPS), "%.0f", "")
			p50 = spreadCell(row.Spread(FigP50), "%.3f", " ms")
			p99 = spreadCell(row.Spread(FigP99), "%.3f", " ms")
			cpu = spreadCell(row.Spread(FigCPU), "%.1f", " µs")
		}
		if row.Key == Direct {
			cpu, rss = "(none)", "(none)"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s | %.2f CPUs |\n",
			row.Name, row.Tool, rps, p50, ms(row.P90), p99, ms(row.P999), ms(row.Max),
			row.Non2xx, row.SocketErrors, cpu, rss, us(row.UpstreamCPUPerRequest), row.OtherCPU+row.Steal)
	}
}
