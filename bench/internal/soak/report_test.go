package soak

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
)

func TestNaturalPeriod(t *testing.T) {
	s := time.Second
	tests := []struct {
		name                                 string
		lifetime, margin, ahead, minInterval time.Duration
		want                                 time.Duration
	}{
		{"the soak's settings", 60 * s, 10 * s, 10 * s, 5 * s, 40 * s},
		{"no refresh ahead", 60 * s, 10 * s, 0, 5 * s, 50 * s},
		{"ahead capped at half the time to the refresh point", 60 * s, 10 * s, 2 * time.Minute, 5 * s, 25 * s},
		{"margin not shorter than the lifetime", 60 * s, 60 * s, 0, 0, 30 * s},
		{"min_interval delays the background refresh", 60 * s, 10 * s, 10 * s, 45 * s, 45 * s},
		{"min_interval beyond the refresh point", 60 * s, 10 * s, 10 * s, 55 * s, 55 * s},
		{"min_interval beyond the lifetime: at expiry", 60 * s, 10 * s, 0, 2 * time.Minute, 60 * s},
		{"cqgate's defaults on a 1 h token", time.Hour, time.Minute, 2 * time.Minute, time.Minute, 57 * time.Minute},
	}
	for _, tt := range tests {
		if got := NaturalPeriod(tt.lifetime, tt.margin, tt.ahead, tt.minInterval); got != tt.want {
			t.Errorf("%s: NaturalPeriod = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// report returns a healthy report of a 10-minute soak over 5
// organizations, for the checks to be broken one at a time.
func report() *Report {
	oids := []string{"1", "2", "3", "4", "5"}
	r := &Report{
		Setup: Setup{
			Duration: 10 * time.Minute, Warmup: 20 * time.Second, Rate: 200, OIDs: oids,
			TokenLifetime: time.Minute, RefreshMargin: 10 * time.Second, RefreshAhead: 10 * time.Second, MinInterval: 5 * time.Second,
			GoroutineSlack: DefaultGoroutineSlack(len(oids)), HeapFactor: DefaultHeapFactor, SampleEvery: 30 * time.Second,
		},
		Started:  t0,
		Elapsed:  10 * time.Minute,
		Warmup:   NewTally(),
		Measured: NewTally(),
		Baseline: Sample{Goroutines: 19, NextGC: 8 << 20},
		Final:    Sample{Goroutines: 20, NextGC: 8 << 20},
	}
	r.Measured.AddOK(120000)
	for i := 0; i < 10; i++ {
		r.Samples = append(r.Samples, Sample{At: t0.Add(time.Duration(i+1) * 30 * time.Second), Goroutines: 40, NextGC: float64(8<<20 + i<<18)})
	}
	records := map[string][]fhirstub.Attempt{
		// Forced: the newest token, first refusal, old enough.
		"a": {{Outcome: fhirstub.OutcomeInjected401, OID: "1", At: t0.Add(time.Minute), TokenAge: 20 * time.Second, Newest: true, FirstRefusal: true}},
		// Throttled: too young.
		"b": {{Outcome: fhirstub.OutcomeInjected401, OID: "2", At: t0.Add(time.Minute), TokenAge: 2 * time.Second, Newest: true, FirstRefusal: true}},
		// Neither: refused before, or not the newest, or outside the phase.
		"c": {{Outcome: fhirstub.OutcomeInjected401, OID: "3", At: t0.Add(time.Minute), TokenAge: 20 * time.Second, Newest: true}},
		"d": {{Outcome: fhirstub.OutcomeInjected401, OID: "3", At: t0.Add(time.Minute), TokenAge: 20 * time.Second, FirstRefusal: true}},
		"e": {{Outcome: fhirstub.OutcomeInjected401, OID: "4", At: t0.Add(-time.Second), TokenAge: 20 * time.Second, Newest: true, FirstRefusal: true}},
		"f": {{Outcome: fhirstub.OutcomeInjected503, OID: "4", At: t0.Add(time.Minute)}},
	}
	r.AccountExchanges(records, t0, t0.Add(r.Elapsed))
	r.Exchanges.Made = 76
	return r
}

func TestAccountExchanges(t *testing.T) {
	e := report().Exchanges
	if e.Forced != 1 || e.Throttled != 1 || e.Period != 40*time.Second || e.Natural != 75 {
		t.Errorf("exchanges %+v", e)
	}
	// 75 renewals + 2 per organization for the edges + 1 forced; at
	// least one per lifetime less one, per organization.
	if e.Upper != 86 || e.Lower != 45 {
		t.Errorf("bounds %d–%d, want 45–86", e.Lower, e.Upper)
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		breakF func(r *Report)
		failed string // the check that must fail; "" for none
	}{
		{"healthy", func(*Report) {}, ""},
		{"an unexpected answer", func(r *Report) { r.Measured.ByClass[Unexpected] = 1 }, "no unexpected answers"},
		{"an unexpected answer in the warm-up", func(r *Report) { r.Warmup.ByClass[Unexpected] = 1 }, "no unexpected answers"},
		{"an expired token", func(r *Report) { r.ExpiredTokens = 1 }, "no expired or unknown token presented upstream"},
		{"an unknown token", func(r *Report) { r.UnknownTokens = 1 }, "no expired or unknown token presented upstream"},
		{"an exchange storm", func(r *Report) { r.Exchanges.Made = 87 }, "token exchanges explained"},
		{"tokens not renewed", func(r *Report) { r.Exchanges.Made = 44 }, "token exchanges explained"},
		{"goroutines at the slack", func(r *Report) { r.Final.Goroutines = 19 + 15 }, ""},
		{"a goroutine leak", func(r *Report) { r.Final.Goroutines = 19 + 16 }, "goroutines back to baseline"},
		{"heap grown 1.5×", func(r *Report) {
			for i := range r.Samples[7:] {
				r.Samples[7+i].NextGC = 1.5 * float64(8<<20+1<<18)
			}
		}, ""},
		{"heap grown more", func(r *Report) {
			for i := range r.Samples[7:] {
				r.Samples[7+i].NextGC = 20 << 20
			}
		}, "heap not grown"},
		{"one heap spike is not growth", func(r *Report) { r.Samples[9].NextGC = 40 << 20 }, ""},
		{"records dropped", func(r *Report) { r.Injected.RecordsDropped = 1 }, "classification exact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report()
			tt.breakF(r)
			r.Evaluate()
			var failed []string
			for _, c := range r.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			want := []string{}
			if tt.failed != "" {
				want = []string{tt.failed}
			}
			if fmt.Sprint(failed) != fmt.Sprint(want) || r.Pass() != (tt.failed == "") {
				t.Errorf("failed checks %v, want %v", failed, want)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	r := report()
	r.Setup.Command = "bench/soak.sh"
	r.Measured.Add(NewClassifier(nil, time.Second), Response{ID: "soak-9", OID: "1", Status: 500, Diagnostics: "a | b"})
	r.LogLines = map[string]int64{"warning: proxy: request failed": 3}
	r.Evaluate()
	md := r.Markdown()
	for _, want := range []string{
		"# cqgate soak: FAIL", "## Verdict: FAIL", "| no unexpected answers | **FAIL** |",
		"| soak-9 | 1 | 500 | a \\| b |", "| goroutines | 19 |", "Samples under load (latency",
		"| warning: proxy: request failed | 3 |", "## How the verdict is reached",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	r2 := report()
	r2.Evaluate()
	if md := r2.Markdown(); !strings.HasPrefix(md, "# cqgate soak: PASS") {
		t.Errorf("healthy report does not pass:\n%s", md)
	}
}

const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 5.24288e+06
# TYPE go_memstats_heap_alloc_bytes gauge
go_memstats_heap_alloc_bytes 3e+06
# TYPE go_memstats_next_gc_bytes gauge
go_memstats_next_gc_bytes 4.194304e+06
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.4e+07
# TYPE cqgate_token_exchanges_total counter
cqgate_token_exchanges_total{outcome="success"} 17
cqgate_token_exchanges_total{outcome="network_error"} 2
# TYPE cqgate_token_cache_requests_total counter
cqgate_token_cache_requests_total{result="hit"} 1000
cqgate_token_cache_requests_total{result="miss"} 19
# TYPE cqgate_requests_total counter
cqgate_requests_total{code_class="2xx",method="GET",org="1"} 900
cqgate_requests_total{code_class="2xx",method="GET",org="2"} 100
cqgate_requests_total{code_class="5xx",method="GET",org="1"} 7
`

func TestParseMetrics(t *testing.T) {
	s, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if s.Goroutines != 42 || s.HeapInuse != 5<<20 || s.HeapAlloc != 3e6 || s.NextGC != 4<<20 || s.RSS != 2.4e7 {
		t.Errorf("gauges %+v", s)
	}
	if s.Exchanges["success"] != 17 || s.Exchanges["network_error"] != 2 || s.CacheHits != 1000 || s.CacheMisses != 19 {
		t.Errorf("counters %+v", s)
	}
	if s.Requests["2xx"] != 1000 || s.Requests["5xx"] != 7 {
		t.Errorf("requests %v", s.Requests)
	}
	tests := []struct {
		name, text, wantErr string
	}{
		{"missing gauges", "# TYPE go_goroutines gauge\ngo_goroutines 1\n", "missing go_memstats_heap_inuse_bytes"},
		{"not the text format", "go_goroutines{ 1\n", "soak: metrics:"},
		{"empty", "", "missing go_goroutines"},
	}
	for _, tt := range tests {
		if _, err := ParseMetrics(strings.NewReader(tt.text)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestScrape(t *testing.T) {
	big := strings.Repeat("# padding comment line\n", (maxMetricsBody/23)+10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			_, _ = w.Write([]byte(exposition))
		case "/big":
			_, _ = w.Write([]byte(big + exposition))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	s, err := Scrape(ctx, nil, srv.URL+"/metrics")
	if err != nil || s.Goroutines != 42 || s.At.IsZero() {
		t.Fatalf("Scrape = %+v, %v", s, err)
	}
	for _, tt := range []struct{ name, url, wantErr string }{
		{"not loopback", "http://192.0.2.1/metrics", "loopback"},
		{"HTTP error", srv.URL + "/nope", "HTTP 404"},
		{"too large", srv.URL + "/big", "larger than 8 MiB"},
	} {
		if _, err := Scrape(ctx, nil, tt.url); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestLatenciesWindow(t *testing.T) {
	l := NewLatencies(0, 0)
	for i := 1; i <= 100; i++ {
		l.Add(Response{Sent: t0, Done: t0.Add(time.Duration(i) * 20 * time.Millisecond)})
	}
	l.Add(Response{Sent: t0, Done: t0, Err: ErrBehind.Error()})
	w := l.Take()
	if w.Answers != 100 || w.Behind != 1 || w.P50 != time.Second || w.P99 != 1980*time.Millisecond || w.Max != 2*time.Second || w.Slow != 50 {
		t.Errorf("window %+v", w)
	}
	if w.CPUCqgate != 0 || w.CPUSoak != 0 || w.CPUOther < 0 {
		t.Errorf("CPU without pids: %+v", w)
	}
	if w2 := l.Take(); w2.Answers != 0 || w2.Behind != 0 || w2.Max != 0 {
		t.Errorf("the next window is not empty: %+v", w2)
	}
}

func TestContentionSummary(t *testing.T) {
	r := report()
	if got := r.contention(); got != "" {
		t.Errorf("summary without windows: %q", got)
	}
	r.Samples[2].Window = &Window{Answers: 10, Max: 1500 * time.Millisecond, Slow: 3, Behind: 7, CPUOther: 1.5}
	r.Samples[3].Window = &Window{Answers: 10, Max: 2 * time.Millisecond, CPUOther: 0.5}
	got := r.contention()
	for _, want := range []string{"slowest answer took 1500.0 ms", "3 answers took more than 1s and 7 requests were not sent", "1.00 CPUs on average, 1.50 at most", "In the 1 windows with slow answers or requests not sent, they used 1.50 CPUs"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}

func TestLatenciesKeepTheSlowest(t *testing.T) {
	l := NewLatencies(0, 0)
	for _, ms := range []int{5, 1, 30, 7, 2, 9, 11, 3, 25, 4, 8, 6, 40, 10} {
		l.Add(Response{ID: fmt.Sprint(ms), Sent: t0, Done: t0.Add(time.Duration(ms) * time.Millisecond)})
	}
	var got []string
	for _, r := range l.Slowest() {
		got = append(got, r.ID)
	}
	if want := "[40 30 25 11 10 9 8 7 6 5]"; fmt.Sprint(got) != want {
		t.Errorf("slowest %v, want %s", got, want)
	}
}
