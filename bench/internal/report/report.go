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
	Nginx    = "nginx"
	Cqgate   = "cqgate"
)

// Targets met or missed.
const (
	TargetThroughputVsBare = 0.9
	TargetAddedP99         = time.Millisecond
	TargetAddedP99Conns    = 64
	TargetRSS              = 64 << 20
)

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
	// Rounds is how many runs were merged into this row (see Merge), and
	// MinRPS and MaxRPS the lowest and highest rate among them.
	Rounds         int
	MinRPS, MaxRPS float64
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
	out.Rounds = len(rounds)
	var cpu, upCPU time.Duration
	var other, steal float64
	pct := make([][]time.Duration, 6)
	for i, r := range rounds {
		if r.Skipped != "" {
			r.Rounds = len(rounds)
			return r
		}
		out.Requests += r.Requests
		out.Duration += r.Duration
		out.Non2xx += r.Non2xx
		out.SocketErrors += r.SocketErrors
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
	Notes           []string
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
	for _, row := range append(append([]Row(nil), r.Rows...), r.RateRows...) {
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
	w("- Load: %d connections, %d threads, %s per target (in %d rounds) after a %s warm-up; everything on 127.0.0.1\n", r.Connections, r.Threads, r.Duration, max(r.Rounds, 1), r.Warmup)
	if r.Cqgate != "" {
		w("- cqgate: %s\n", r.Cqgate)
	}
	if r.Command != "" {
		w("- Command: `%s`\n", r.Command)
	}
	w("\n## Saturation: as many requests as the answers allow\n\n")
	w("Each of %d connections sends its next request as soon as the previous answer is in; on this machine the load generator, the upstream and the proxy share the same CPUs, so this measures how much CPU each proxy needs per request, and latency is mostly queueing for the CPU.", r.Connections)
	if r.Rounds > 1 {
		w(" The targets took turns in %d rounds of %s each; req/s is over all rounds (lowest–highest round in brackets), each percentile the median of the rounds', max the highest.", r.Rounds, r.Duration/time.Duration(r.Rounds))
	}
	w("\n\n")
	rowsTable(&b, r.Rows)
	if len(r.RateRows) > 0 {
		w("\n## Latency at a fixed rate: %.0f requests/s over %d connections, %s each (loadgen)\n\n", r.Rate, r.RateConnections, r.RateDuration)
		w("Requests are sent on a fixed schedule and latency counts from when each was due (no coordinated omission). The rate leaves the CPUs mostly idle, so the difference to the direct row is the proxy's own cost per request.\n\n")
		rowsTable(&b, r.RateRows)
	}

	cq := r.Row(Cqgate)
	if cq != nil {
		w("\n## cqgate compared (same run)\n\n")
		w("| cqgate vs | throughput ratio (saturation) | CPU/req ratio | p50 ratio | p99 ratio | added p50 | added p99 | added p99.9 | added p50 at fixed rate | added p99 at fixed rate | added p99.9 at fixed rate |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		cqr := r.RateRow(Cqgate)
		for _, key := range []string{Direct, Bare, BarePool, Nginx} {
			o := r.Row(key)
			if o == nil {
				continue
			}
			cpu := "–"
			if key != Direct && o.CPUPerRequest > 0 {
				cpu = fmt.Sprintf("%.2f×", ratio(float64(cq.CPUPerRequest), float64(o.CPUPerRequest)))
			}
			fixed := " | | |"
			if or := r.RateRow(key); or != nil && cqr != nil {
				fixed = fmt.Sprintf("%s | %s | %s |", signedMS(cqr.P50-or.P50), signedMS(cqr.P99-or.P99), signedMS(cqr.P999-or.P999))
			}
			w("| %s | %.2f× | %s | %.2f× | %.2f× | %s | %s | %s | %s\n", o.Name, ratio(cq.RPS(), o.RPS()), cpu,
				ratio(float64(cq.P50), float64(o.P50)), ratio(float64(cq.P99), float64(o.P99)),
				signedMS(cq.P50-o.P50), signedMS(cq.P99-o.P99), signedMS(cq.P999-o.P999), fixed)
		}
		w("\n## Targets\n\n| target | measured | verdict |\n|---|---|---|\n")
		for _, key := range []string{Bare, BarePool} {
			if bare := r.Row(key); bare != nil {
				x := ratio(cq.RPS(), bare.RPS())
				w("| throughput ≥ %.1f× the %s | %.2f× | %s |\n", TargetThroughputVsBare, bare.Name, x, mark(x >= TargetThroughputVsBare))
			}
		}
		if ng := r.Row(Nginx); ng != nil {
			x := ratio(cq.RPS(), ng.RPS())
			verdict := "matches or beats nginx"
			if x < 0.98 {
				verdict = fmt.Sprintf("%.0f%% below nginx", (1-x)*100)
			}
			w("| (aim) throughput matches or beats nginx | %.2f× | %s |\n", x, verdict)
		}
		// The target is judged at the fixed rate; under saturation the
		// p99 is queueing for the shared CPUs, shown for information.
		if cqr, d := r.RateRow(Cqgate), r.RateRow(Direct); cqr != nil && d != nil {
			added := cqr.P99 - d.P99
			if r.RateConnections == TargetAddedP99Conns {
				w("| added p99 over direct ≤ %s at %d connections (at %.0f req/s) | %s | %s |\n", ms(TargetAddedP99), TargetAddedP99Conns, r.Rate, signedMS(added), mark(added <= TargetAddedP99))
			} else {
				w("| added p99 over direct ≤ %s at %d connections (at %.0f req/s) | %s at %d connections | (not comparable) |\n", ms(TargetAddedP99), TargetAddedP99Conns, r.Rate, signedMS(added), r.RateConnections)
			}
		}
		if d := r.Row(Direct); d != nil {
			w("| (information) added p99 over direct, saturated | %s | queueing for the shared CPUs dominates; not a verdict |\n", signedMS(cq.P99-d.P99))
		}
		w("| cqgate peak RSS ≤ %s, under load (%d connections) | %s | %s |\n", mib(TargetRSS), r.Connections, mib(cq.PeakRSS), mark(cq.PeakRSS > 0 && cq.PeakRSS <= TargetRSS))
		if c := r.Cold; c != nil {
			w("| cqgate peak RSS ≤ %s, after the %d-connection cold-start burst | %s | %s |\n", mib(TargetRSS), c.N, mib(c.PeakRSS), mark(c.PeakRSS > 0 && c.PeakRSS <= TargetRSS))
			w("| cold start: exactly 1 token exchange | %d | %s |\n", c.Token, mark(c.Token == 1))
			w("| cold start: exactly 1 directory lookup | %d | %s |\n", c.Directory, mark(c.Directory == 1))
			w("| cold start: exactly 1 metadata fetch | %d | %s |\n", c.Metadata, mark(c.Metadata == 1))
		}
	}

	if c := r.Cold; c != nil {
		w("\n## Cold start\n\n")
		w("%d concurrent first requests for organization %s, which cqgate had not seen, released together on pre-opened connections (opening them took %s). The bench upstream delays every directory, metadata and token answer by %s.\n\n", c.N, c.OID, ms(c.Connect), c.UpstreamDelay)
		w("| answers | directory lookups | metadata fetches | token exchanges | other discovery requests | first response | median | slowest | cqgate peak RSS after |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		w("| %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", statusList(c.Status, c.Errors, c.FirstError), c.Directory, c.Metadata, c.Token, c.Other, ms(c.First), ms(c.Median), ms(c.Max), mib(c.PeakRSS))
	}
	notes := r.Notes
	var disturbed []string
	for _, row := range append(append([]Row(nil), r.Rows...), r.RateRows...) {
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
	if len(r.Failures) == 0 {
		w("PASS: every answer was 2xx and the cold start made exactly one token exchange.\n")
	} else {
		for _, f := range r.Failures {
			w("- FAIL: %s\n", f)
		}
	}
	return b.String()
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
		if row.Key == Direct {
			cpu, rss = "(none)", "(none)"
		}
		rps := fmt.Sprintf("%.0f", row.RPS())
		if row.Rounds > 1 {
			rps += fmt.Sprintf(" (%.0f–%.0f)", row.MinRPS, row.MaxRPS)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s | %.2f CPUs |\n",
			row.Name, row.Tool, rps, ms(row.P50), ms(row.P90), ms(row.P99), ms(row.P999), ms(row.Max),
			row.Non2xx, row.SocketErrors, cpu, rss, us(row.UpstreamCPUPerRequest), row.OtherCPU+row.Steal)
	}
}
