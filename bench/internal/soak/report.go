package soak

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
)

// Setup is what a soak ran.
type Setup struct {
	Command string `json:"command"`
	Machine string `json:"machine"`
	Cqgate  string `json:"cqgate"`
	// Duration is the measured phase, after Warmup.
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	Rate     float64       `json:"rate"`
	OIDs     []string      `json:"oids"`
	// The upstream's token lifetime and cqgate's tokens settings.
	TokenLifetime time.Duration `json:"token_lifetime"`
	RefreshMargin time.Duration `json:"refresh_margin"`
	RefreshAhead  time.Duration `json:"refresh_ahead"`
	MinInterval   time.Duration `json:"min_interval"`
	// Fault probabilities per upstream attempt.
	Fail503, FailReset, Fail401 float64
	SampleEvery                 time.Duration `json:"sample_every"`
	// GoroutineSlack and HeapFactor are the verdict's thresholds.
	GoroutineSlack int     `json:"goroutine_slack"`
	HeapFactor     float64 `json:"heap_factor"`
}

// DefaultHeapFactor is the verdict's bound on heap growth.
const DefaultHeapFactor = 1.5

// DefaultGoroutineSlack is the verdict's bound on goroutine growth for
// n organizations: up to one token exchange in flight per organization
// when the end is sampled, plus 10 for cqgate's own timers and
// background loops that may be between runs.
func DefaultGoroutineSlack(n int) int { return n + 10 }

// Exchanges accounts for the token exchanges of the measured phase.
type Exchanges struct {
	// Made counts token requests at the upstream; Success the successes
	// cqgate counted (cqgate_token_exchanges_total{outcome="success"}).
	Made    int64   `json:"made"`
	Success float64 `json:"success"`
	// Period is how often cqgate renews a busy token by itself; Natural
	// the renewals that makes over the phase for every organization.
	Period  time.Duration `json:"period"`
	Natural float64       `json:"natural"`
	// Forced counts injected 401s that must cost one exchange each (the
	// first refusal of an organization's newest token, at least
	// min_interval old); Throttled those that came sooner (no exchange,
	// callers get 503 until min_interval has passed).
	Forced    int64 `json:"forced"`
	Throttled int64 `json:"throttled"`
	// Lower and Upper bound Made for the verdict.
	Lower int64 `json:"lower"`
	Upper int64 `json:"upper"`
}

// Check is one line of the verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is a soak's result.
type Report struct {
	Setup   Setup     `json:"setup"`
	Started time.Time `json:"started"`
	// Elapsed is the measured phase's wall time.
	Elapsed  time.Duration `json:"elapsed"`
	Warmup   *Tally        `json:"warmup"`
	Measured *Tally        `json:"measured"`
	// Behind counts requests not sent because too many were waiting.
	Behind int64 `json:"behind"`
	// Injected counts the upstream's injected failures in the measured
	// phase; ExpiredTokens and UnknownTokens the Patient reads the
	// upstream refused because cqgate sent an expired or unknown token.
	Injected      fhirstub.InjectedCounts `json:"injected"`
	ExpiredTokens int64                   `json:"expired_tokens"`
	UnknownTokens int64                   `json:"unknown_tokens"`
	Exchanges     Exchanges               `json:"exchanges"`
	// Baseline and Final are cqgate at rest (no request in flight, idle
	// connections closed) before and after the measured phase; Samples
	// were taken under load every Setup.SampleEvery.
	Baseline Sample   `json:"baseline"`
	Final    Sample   `json:"final"`
	Samples  []Sample `json:"samples"`
	// Slowest are the slowest answers of the measured phase.
	Slowest []Response `json:"slowest"`
	// LogLines counts cqgate's log lines by level and message.
	LogLines map[string]int64 `json:"log_lines"`
	Checks   []Check          `json:"checks"`
	// Notes are remarks for the reader.
	Notes []string `json:"notes"`
}

// NaturalPeriod is how often cqgate renews a token that is in constant
// use, with the assertion.Cache rules: the refresh point is lifetime −
// margin (half the lifetime when the margin is not shorter), not sooner
// than minInterval; a background refresh starts ahead of it by
// min(ahead, half the time to it), again not sooner than minInterval.
func NaturalPeriod(lifetime, margin, ahead, minInterval time.Duration) time.Duration {
	if margin >= lifetime {
		margin = lifetime / 2
	}
	refresh := lifetime - margin
	if minInterval > refresh {
		refresh = min(minInterval, lifetime)
	}
	at := refresh
	if ahead > 0 {
		at = refresh - min(ahead, refresh/2)
	}
	return max(at, min(minInterval, refresh))
}

// AccountExchanges fills r.Exchanges' expectations from the measured
// phase's injected 401 attempts (those with At in [from, to]).
func (r *Report) AccountExchanges(records map[string][]fhirstub.Attempt, from, to time.Time) {
	e := &r.Exchanges
	for _, as := range records {
		for _, a := range as {
			if a.Outcome != fhirstub.OutcomeInjected401 || a.At.Before(from) || a.At.After(to) {
				continue
			}
			switch {
			case !a.Newest || !a.FirstRefusal:
			case a.TokenAge >= r.Setup.MinInterval:
				e.Forced++
			default:
				e.Throttled++
			}
		}
	}
	n := float64(len(r.Setup.OIDs))
	e.Period = NaturalPeriod(r.Setup.TokenLifetime, r.Setup.RefreshMargin, r.Setup.RefreshAhead, r.Setup.MinInterval)
	d := r.Elapsed
	if d <= 0 {
		d = r.Setup.Duration
	}
	if e.Period > 0 {
		e.Natural = n * d.Seconds() / e.Period.Seconds()
	}
	// Upper: every organization's natural renewals, one more each for
	// the phase's edges, and every forced one. Lower: a token in constant
	// use must be replaced before it expires.
	e.Upper = int64(math.Ceil(e.Natural)) + 2*int64(n) + e.Forced
	if r.Setup.TokenLifetime > 0 {
		e.Lower = int64(n) * max(int64(d/r.Setup.TokenLifetime)-1, 0)
	}
}

// heapWindow returns the median heap goal (NextGC) of the first and the
// last k samples under load.
func heapWindow(samples []Sample) (start, end float64, k int) {
	k = min(3, len(samples)/2)
	if k == 0 {
		return 0, 0, 0
	}
	med := func(ss []Sample) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = s.NextGC
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return med(samples[:k]), med(samples[len(samples)-k:]), k
}

// Evaluate computes the verdict's checks.
func (r *Report) Evaluate() {
	r.Checks = nil
	add := func(name string, ok bool, detail string, args ...any) {
		r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	unexpected := r.Measured.ByClass[Unexpected]
	warm := int64(0)
	if r.Warmup != nil {
		warm = r.Warmup.ByClass[Unexpected]
	}
	add("no unexpected answers", unexpected+warm == 0,
		"%d in the measured phase, %d in the warm-up (of %d and %d answers)", unexpected, warm, r.Measured.Total, totalOf(r.Warmup))
	add("no expired or unknown token presented upstream", r.ExpiredTokens+r.UnknownTokens == 0,
		"%d expired, %d unknown (each would be a 401 the upstream did not inject)", r.ExpiredTokens, r.UnknownTokens)
	e := r.Exchanges
	add("token exchanges explained", e.Made >= e.Lower && e.Made <= e.Upper,
		"%d made; renewals alone ≈ %.0f (one per %s per organization), and up to %d more forced by injected 401s (a forced one also restarts its organization's renewal clock); allowed %d–%d",
		e.Made, e.Natural, e.Period, e.Forced, e.Lower, e.Upper)
	slack := r.Setup.GoroutineSlack
	add("goroutines back to baseline", r.Final.Goroutines <= r.Baseline.Goroutines+float64(slack),
		"at rest %0.f before, %0.f after (allowed +%d)", r.Baseline.Goroutines, r.Final.Goroutines, slack)
	hs, he, k := heapWindow(r.Samples)
	if k == 0 {
		hs, he = r.Baseline.NextGC, r.Final.NextGC
	}
	add("heap not grown", hs > 0 && he <= hs*r.Setup.HeapFactor,
		"heap goal (2 × live heap after GC) %s at the start, %s at the end (allowed × %.1f; median of the first and last %d samples under load)",
		mib(hs), mib(he), r.Setup.HeapFactor, k)
	add("classification exact", r.Injected.RecordsDropped == 0 && r.Injected.Unrecorded == 0,
		"%d upstream attempts not recorded (record limit), %d without X-Request-Id", r.Injected.RecordsDropped, r.Injected.Unrecorded)
}

func totalOf(t *Tally) int64 {
	if t == nil {
		return 0
	}
	return t.Total
}

// Pass reports whether every check passed.
func (r *Report) Pass() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func pct(n, of int64) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(of))
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	s := r.Setup
	verdict := "FAIL"
	if r.Pass() {
		verdict = "PASS"
	}
	w("# cqgate soak: %s\n\n", verdict)
	w("* **Command:** `%s`\n", s.Command)
	w("* **When:** %s; measured for %s after a %s warm-up\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second), s.Warmup)
	w("* **Machine:** %s\n", s.Machine)
	w("* **cqgate:** %s\n", s.Cqgate)
	w("* **Load:** %.0f requests/s, open loop, `GET /fhir/{oid}/Patient/{id}` over %d organizations in turn, on 127.0.0.1\n", s.Rate, len(s.OIDs))
	w("* **Upstream:** access tokens with `expires_in` %d; per FHIR attempt %.2f%% 503s, %.2f%% connection resets, %.3f%% 401s for a valid token\n",
		int(s.TokenLifetime.Seconds()), 100*s.Fail503, 100*s.FailReset, 100*s.Fail401)
	w("* **cqgate tokens:** refresh_margin %s, refresh_ahead %s, min_interval %s; log level warn, metrics on\n\n", s.RefreshMargin, s.RefreshAhead, s.MinInterval)

	w("## Verdict: %s\n\n| check | result | detail |\n|---|---|---|\n", verdict)
	for _, c := range r.Checks {
		res := "pass"
		if !c.OK {
			res = "**FAIL**"
		}
		w("| %s | %s | %s |\n", c.Name, res, c.Detail)
	}
	w("\n")

	m := r.Measured
	w("## Answers (measured phase)\n\n")
	w("%d requests in %s (%.1f/s)", m.Total, r.Elapsed.Round(time.Second), float64(m.Total)/max(r.Elapsed.Seconds(), 1e-9))
	if r.Behind > 0 {
		w("; %d were not sent because %s", r.Behind, ErrBehind.Error()[len("soak: not sent: "):])
	}
	w(".\n\n| class | answers | share |\n|---|--:|--:|\n")
	for _, c := range []Class{OK, Expected, Unexpected} {
		w("| %s | %d | %s |\n", c, m.ByClass[c], pct(m.ByClass[c], m.Total))
	}
	w("\n| status | answers |\n|---|--:|\n")
	codes := make([]int, 0, len(m.Status))
	for c := range m.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "no answer"
		}
		w("| %s | %d |\n", name, m.Status[c])
	}
	w("\n")
	for _, c := range []Class{OK, Expected, Unexpected} {
		reasons := m.ByReason[c]
		if len(reasons) == 0 || (c == OK && len(reasons) == 1) {
			continue
		}
		w("%s answers, by cause:\n\n| cause | answers |\n|---|--:|\n", strings.ToUpper(c.String()[:1])+c.String()[1:])
		for _, k := range sortedKeys(reasons) {
			w("| %s | %d |\n", k, reasons[k])
		}
		w("\n")
	}
	if n := len(m.Examples); n > 0 {
		w("First %d unexpected answers:\n\n| request id | OID | status | error / diagnostics |\n|---|---|--:|---|\n", n)
		for _, e := range m.Examples {
			d := e.Err
			if d == "" {
				d = e.Diagnostics
			}
			w("| %s | %s | %d | %s |\n", e.ID, e.OID, e.Status, strings.ReplaceAll(d, "|", "\\|"))
		}
		w("\n")
	}
	if r.Warmup != nil {
		w("Warm-up: %d answers, %d expected, %d unexpected.\n\n", r.Warmup.Total, r.Warmup.ByClass[Expected], r.Warmup.ByClass[Unexpected])
	}
	if c := r.contention(); c != "" {
		w("%s\n\n", c)
	}
	if len(r.Slowest) > 0 {
		w("Slowest answers:\n\n| request id | OID | due at | latency | status |\n|---|---|--:|--:|--:|\n")
		for _, x := range r.Slowest {
			w("| %s | %s | %s | %s | %d |\n", x.ID, x.OID, x.Sent.Sub(r.Started).Round(time.Millisecond), ms(latency(x)), x.Status)
		}
		w("\n")
	}

	w("## Injected upstream failures (measured phase)\n\n| failure | injected |\n|---|--:|\n")
	w("| 503 | %d |\n| connection reset | %d |\n| 401 for a valid token | %d |\n", r.Injected.Unavailable, r.Injected.Reset, r.Injected.Unauthorized)
	w("\n%d answers were 200 after a failed upstream attempt (cqgate's 401 retry with a new token, or Go's transport retrying a GET whose reused connection was reset).\n\n", m.Recovered)

	e := r.Exchanges
	w("## Token exchanges (measured phase)\n\n| | count |\n|---|--:|\n")
	w("| made (token requests at the upstream) | %d |\n", e.Made)
	w("| successes counted by cqgate (`cqgate_token_exchanges_total{outcome=\"success\"}`) | %.0f |\n", e.Success)
	w("| expected renewals: %d organizations × %s ÷ %s | %.1f |\n", len(s.OIDs), r.Elapsed.Round(time.Second), e.Period, e.Natural)
	w("| expected forced re-exchanges (first injected 401 of an organization's newest token, at least min_interval old) | %d |\n", e.Forced)
	w("| injected 401s inside min_interval (no exchange; 503 until it passes) | %d |\n", e.Throttled)
	w("| expired tokens presented upstream | %d |\n| unknown tokens presented upstream | %d |\n\n", r.ExpiredTokens, r.UnknownTokens)

	w("## Goroutines and memory\n\n")
	hs, he, k := heapWindow(r.Samples)
	maxOf := func(f func(Sample) float64) float64 {
		v := 0.0
		for _, x := range r.Samples {
			v = max(v, f(x))
		}
		return v
	}
	first, last := Sample{}, Sample{}
	if len(r.Samples) > 0 {
		first, last = r.Samples[0], r.Samples[len(r.Samples)-1]
	}
	w("| | at rest before | under load, first sample | under load, last sample | under load, max | at rest after |\n|---|--:|--:|--:|--:|--:|\n")
	w("| goroutines | %.0f | %.0f | %.0f | %.0f | %.0f |\n", r.Baseline.Goroutines, first.Goroutines, last.Goroutines, maxOf(func(s Sample) float64 { return s.Goroutines }), r.Final.Goroutines)
	w("| heap in use | %s | %s | %s | %s | %s |\n", mib(r.Baseline.HeapInuse), mib(first.HeapInuse), mib(last.HeapInuse), mib(maxOf(func(s Sample) float64 { return s.HeapInuse })), mib(r.Final.HeapInuse))
	w("| heap allocated | %s | %s | %s | %s | %s |\n", mib(r.Baseline.HeapAlloc), mib(first.HeapAlloc), mib(last.HeapAlloc), mib(maxOf(func(s Sample) float64 { return s.HeapAlloc })), mib(r.Final.HeapAlloc))
	w("| heap goal (next GC) | %s | %s | %s | %s | %s |\n", mib(r.Baseline.NextGC), mib(first.NextGC), mib(last.NextGC), mib(maxOf(func(s Sample) float64 { return s.NextGC })), mib(r.Final.NextGC))
	w("| resident memory | %s | %s | %s | %s | %s |\n\n", mib(r.Baseline.RSS), mib(first.RSS), mib(last.RSS), mib(maxOf(func(s Sample) float64 { return s.RSS })), mib(r.Final.RSS))
	if k > 0 {
		w("Heap goal, median of the first %d samples under load: %s; of the last %d: %s.\n\n", k, mib(hs), k, mib(he))
	}
	if len(r.Samples) > 0 {
		w("Samples under load (latency from each request's due time, over the window since the previous sample; CPU in CPUs: cqgate, the soak process with the load and the upstream, and all other processes on the machine):\n\n")
		w("| t | goroutines | heap in use | heap goal | RSS | exchanges (success) | answers | p50 | p99 | max | slow (> %s) | not sent | CPU cqgate | CPU soak | CPU others |\n", SlowAnswer)
		w("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, x := range r.Samples {
			win := Window{}
			if x.Window != nil {
				win = *x.Window
			}
			w("| %s | %.0f | %s | %s | %s | %.0f | %d | %s | %s | %s | %d | %d | %.2f | %.2f | %.2f |\n",
				x.At.Sub(r.Started).Round(time.Second), x.Goroutines, mib(x.HeapInuse), mib(x.NextGC), mib(x.RSS), x.Exchanges["success"],
				win.Answers, ms(win.P50), ms(win.P99), ms(win.Max), win.Slow, win.Behind, win.CPUCqgate, win.CPUSoak, win.CPUOther)
		}
		w("\n")
	}
	if len(r.LogLines) > 0 {
		w("cqgate's log (warn and above), by level and message:\n\n| line | count |\n|---|--:|\n")
		for _, k := range sortedKeys(r.LogLines) {
			w("| %s | %d |\n", strings.ReplaceAll(k, "|", "\\|"), r.LogLines[k])
		}
		w("\n")
	}
	w("## How the verdict is reached\n\n")
	w("* **Unexpected answers.** Every answer that is not a 200 is matched, by its `X-Request-Id`, with the upstream's record of that request's attempts; it is expected only when it is what cqgate must answer to the failure injected on the last attempt (see `bench/internal/soak`). Transport errors, timeouts and requests the driver could not send on time count as unexpected.\n")
	w("* **Goroutines under load** follow the connections: the driver keeps idle keep-alive connections for 90 s (up to its in-flight bound), each costing cqgate a server goroutine, and each outbound connection costs it two; a stall of a few milliseconds (a GC, a token exchange) opens a few more, which then idle. So the count under load follows the largest concurrency of the last minute or two and is not compared.\n")
	w("* **Goroutines** are compared at rest: the load stops, the driver closes its idle connections and the upstream closes its own, and go_goroutines is read once it has stayed within one of the same value for 6 s (the lowest reading of that window: the scrape's own connection is sometimes still counted). At rest cqgate should be back to its baseline whatever the traffic was. The slack of %d is one token exchange in flight per organization plus 10 for timers and background loops; a leak per request would be thousands here, per exchange tens.\n", s.GoroutineSlack)
	w("* **Heap** is compared as the heap goal (`go_memstats_next_gc_bytes`, twice the heap that survived the last GC), median of the first and of the last samples under the same load: the heap in use swings by up to 2× between two GCs, so single readings of it cannot be compared at a %.1f× bound, while the goal moves only when the live heap does.\n", s.HeapFactor)
	w("* **Exchanges** must lie between one per token lifetime per organization (less one for the phase's edges) and the renewals the token settings cause plus the forced re-exchanges, with two per organization for the edges: an exchange storm or a token never renewed fails it.\n")
	for _, n := range r.Notes {
		w("\n%s\n", n)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// contention summarizes the windows under load: slow answers, requests
// not sent, and what the rest of the machine was doing meanwhile.
func (r *Report) contention() string {
	var slow, behind, n int64
	var maxLat time.Duration
	var other, otherMax, otherBad float64
	var bad int
	for _, x := range r.Samples {
		if x.Window == nil {
			continue
		}
		win := x.Window
		n++
		slow += win.Slow
		behind += win.Behind
		maxLat = max(maxLat, win.Max)
		other += win.CPUOther
		otherMax = max(otherMax, win.CPUOther)
		if win.Slow > 0 || win.Behind > 0 {
			bad++
			otherBad += win.CPUOther
		}
	}
	if n == 0 {
		return ""
	}
	s := fmt.Sprintf("Latency: the slowest answer took %s; %d answers took more than %s and %d requests were not sent (in the windows sampled). Other processes on the machine used %.2f CPUs on average, %.2f at most, per window.",
		ms(maxLat), slow, SlowAnswer, behind, other/float64(n), otherMax)
	if bad > 0 {
		s += fmt.Sprintf(" In the %d windows with slow answers or requests not sent, they used %.2f CPUs on average.", bad, otherBad/float64(bad))
	}
	return s
}
