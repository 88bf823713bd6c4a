package report

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const wrkOut = `Running 3s test @ http://127.0.0.1:1/x
  2 threads and 64 connections
Requests/sec:  67975.01
CQBENCH requests 209036
CQBENCH duration_us 3075189
CQBENCH bytes 449218364
CQBENCH errors_connect 0
CQBENCH errors_read 2
CQBENCH errors_write 0
CQBENCH errors_status 5
CQBENCH errors_timeout 1
CQBENCH p50_us 756
CQBENCH p75_us 2885
CQBENCH p90_us 9048
CQBENCH p99_us 186037
CQBENCH p99.9_us 269223
CQBENCH max_us 279359
CQBENCH mean_us 7922
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{name: "complete", out: wrkOut},
		{name: "no pct.lua lines", out: "Requests/sec: 1\n", wantErr: "lacks requests"},
		{name: "missing p99.9", out: strings.Replace(wrkOut, "CQBENCH p99.9_us 269223\n", "", 1), wantErr: "lacks p99.9_us"},
		{name: "garbage value", out: strings.Replace(wrkOut, "p50_us 756", "p50_us x", 1), wantErr: "bad value"},
		{name: "negative value", out: strings.Replace(wrkOut, "p50_us 756", "p50_us -1", 1), wantErr: "bad value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Row
			err := ParseWrk(tt.out, &r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Row{Requests: 209036, Duration: 3075189 * time.Microsecond, Non2xx: 5, SocketErrors: 3,
				P50: 756 * time.Microsecond, P75: 2885 * time.Microsecond, P90: 9048 * time.Microsecond,
				P99: 186037 * time.Microsecond, P999: 269223 * time.Microsecond, Max: 279359 * time.Microsecond}
			if !reflect.DeepEqual(r, want) {
				t.Errorf("got %+v\nwant %+v", r, want)
			}
			if rps := r.RPS(); rps < 67974 || rps > 67976 {
				t.Errorf("RPS %v", rps)
			}
		})
	}
}

func rateRow(key, name string, p50, p99 time.Duration) Row {
	return Row{Key: key, Name: name, Tool: "loadgen", Requests: 10000, Duration: 5 * time.Second,
		P50: p50, P90: p99 / 2, P99: p99, P999: 2 * p99, Max: 3 * p99, CPUPerRequest: p50 / 10}
}

func sampleReport() *Report {
	row := func(key, name string, rps int64, p50, p99 time.Duration) Row {
		return Row{Key: key, Name: name, Tool: "wrk", Requests: rps * 10, Duration: 10 * time.Second,
			P50: p50, P90: p99 / 2, P99: p99, P999: 2 * p99, Max: 3 * p99, CPUPerRequest: 20 * time.Microsecond, PeakRSS: 30 << 20}
	}
	return &Report{
		When: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Command: "bench/run.sh",
		Machine:     Machine{CPUs: 2, CPUModel: "AMD EPYC", Memory: "24 GiB", Kernel: "6.1", GoVersion: "go1.26", Wrk: "4.1.0", Nginx: "1.22.1"},
		Connections: 64, Threads: 2, Duration: 10 * time.Second, Warmup: time.Second,
		Rows: []Row{
			row(Direct, "upstream directly", 60000, 500*time.Microsecond, 2*time.Millisecond),
			row(Bare, "bare Go ReverseProxy", 20000, 2*time.Millisecond, 8*time.Millisecond),
			{Key: Nginx, Name: "nginx", Skipped: "nginx not installed"},
			row(Cqgate, "cqgate", 19000, 2100*time.Microsecond, 9*time.Millisecond),
		},
		Rate: 2000, RateConnections: 64, RateDuration: 5 * time.Second,
		RateRows: []Row{
			rateRow(Direct, "upstream directly", 200*time.Microsecond, 500*time.Microsecond),
			rateRow(Bare, "bare Go ReverseProxy", 350*time.Microsecond, 700*time.Microsecond),
			{Key: Nginx, Name: "nginx", Skipped: "nginx not installed"},
			rateRow(Cqgate, "cqgate", 400*time.Microsecond, 800*time.Microsecond),
		},
		Cold: &ColdStart{OID: "2.999.7.2", N: 1000, Status: map[int]int64{200: 1000}, Directory: 1, Metadata: 1, Token: 1,
			First: 70 * time.Millisecond, Median: 90 * time.Millisecond, Max: 120 * time.Millisecond, PeakRSS: 40 << 20, UpstreamDelay: 20 * time.Millisecond},
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleReport()
	r.CheckFunctional()
	if len(r.Failures) != 0 {
		t.Fatalf("failures %v", r.Failures)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| upstream directly | wrk | 60000 | 0.500 ms |",
		"| 0.00 CPUs |",
		"| cqgate | wrk | 19000 | 2.100 ms |",
		"| nginx | – | skipped: nginx not installed |",
		"| **cqgate** | 40.0 µs | 20.0 µs | 19000 | 0.800 ms |",
		"| bare Go ReverseProxy | 35.0 µs | 20.0 µs | 20000 | 0.700 ms |",
		"| upstream directly | – | 0.32× | – | +0.200 ms | +0.300 ms | +0.600 ms |",
		"| bare Go ReverseProxy | 1.14× | 0.95× | 1.00× | +0.050 ms | +0.100 ms | +0.200 ms |",
		"## Latency and CPU at a fixed rate: 2000 requests/s over 64 connections, 5s each (loadgen)",
		"| cqgate | loadgen | 2000 | 0.400 ms |",
		"| added p99 over direct ≤ 0.500 ms at 2000 req/s (64 connections) | +0.300 ms | met |",
		"| cqgate peak RSS ≤ 64.0 MiB, under load (64 connections) | 30.0 MiB | met |",
		"| cqgate peak RSS ≤ 48.0 MiB after the 1000-request cold burst, every request answered | 40.0 MiB, 1000 of 1000 answered 200 | met |",
		"| cold start: exactly 1 token exchange | 1 | met |",
		"| 1000×200 | 1 | 1 | 1 | 0 | 70.000 ms |",
		"PASS",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestCheckFunctional(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Report)
		want   []string
	}{
		{"all good", func(*Report) {}, nil},
		{"non-2xx under load", func(r *Report) { r.Rows[3].Non2xx = 3 }, []string{"cqgate: 3 responses were not 2xx"}},
		{"two exchanges", func(r *Report) { r.Cold.Token = 2 }, []string{"cold start: 2 token exchanges, want exactly 1"}},
		{"a 502 in the burst", func(r *Report) { r.Cold.Status = map[int]int64{200: 999, 502: 1} }, []string{"cold start: 1 of 1000 first requests were not answered 200 (999×200, 1×502)"}},
		{"directory twice is reported, not a failure", func(r *Report) { r.Cold.Directory = 2 }, nil},
		{"socket errors are not a failure", func(r *Report) { r.Rows[0].SocketErrors = 2 }, nil},
		{"non-2xx at the fixed rate", func(r *Report) { r.RateRows[1].Non2xx = 1 }, []string{"bare Go ReverseProxy: 1 responses were not 2xx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReport()
			tt.modify(r)
			r.CheckFunctional()
			if strings.Join(r.Failures, "|") != strings.Join(tt.want, "|") {
				t.Errorf("failures %q, want %q", r.Failures, tt.want)
			}
			if len(tt.want) > 0 && !strings.Contains(r.Markdown(), "FAIL: "+tt.want[0]) {
				t.Errorf("the report does not show the failure")
			}
		})
	}
}

func TestMarkdownFlagsDisturbedRows(t *testing.T) {
	r := sampleReport()
	if strings.Contains(r.Markdown(), "kept the machine busy") {
		t.Fatal("a quiet run is flagged")
	}
	r.Rows[3].OtherCPU, r.Rows[3].Steal = 0.5, 0.1
	md := r.Markdown()
	if !strings.Contains(md, "kept the machine busy during: cqgate with wrk (0.60 CPUs)") || !strings.Contains(md, "| 0.60 CPUs |") {
		t.Errorf("disturbed row not flagged:\n%s", md)
	}
}

func TestMerge(t *testing.T) {
	ms := time.Millisecond
	rounds := []Row{
		{Key: Cqgate, Name: "cqgate", Tool: "wrk", Requests: 1000, Duration: time.Second, P50: 1 * ms, P99: 5 * ms, P999: 9 * ms, Max: 10 * ms,
			CPUPerRequest: 40 * time.Microsecond, UpstreamCPUPerRequest: 10 * time.Microsecond, PeakRSS: 20 << 20, OtherCPU: 0.3},
		{Key: Cqgate, Name: "cqgate", Tool: "wrk", Requests: 3000, Duration: time.Second, P50: 3 * ms, P99: 7 * ms, P999: 8 * ms, Max: 30 * ms,
			CPUPerRequest: 20 * time.Microsecond, UpstreamCPUPerRequest: 10 * time.Microsecond, PeakRSS: 25 << 20, Non2xx: 1},
		{Key: Cqgate, Name: "cqgate", Tool: "wrk", Requests: 2000, Duration: time.Second, P50: 2 * ms, P99: 6 * ms, P999: 7 * ms, Max: 20 * ms,
			CPUPerRequest: 30 * time.Microsecond, UpstreamCPUPerRequest: 10 * time.Microsecond, PeakRSS: 22 << 20, SocketErrors: 2},
	}
	got := Merge(rounds)
	want := Row{Key: Cqgate, Name: "cqgate", Tool: "wrk", Requests: 6000, Duration: 3 * time.Second, Non2xx: 1, SocketErrors: 2,
		P50: 2 * ms, P99: 6 * ms, P999: 8 * ms, Max: 30 * ms,
		CPUPerRequest: (40*1000 + 20*3000 + 30*2000) * time.Microsecond / 6000, UpstreamCPUPerRequest: 10 * time.Microsecond,
		PeakRSS: 25 << 20, OtherCPU: 0.1, Rounds: 3, MinRPS: 1000, MaxRPS: 3000,
		PerRound: []Round{
			{RPS: 1000, CPUPerRequest: 40 * time.Microsecond, P50: 1 * ms, P99: 5 * ms},
			{RPS: 3000, CPUPerRequest: 20 * time.Microsecond, P50: 3 * ms, P99: 7 * ms},
			{RPS: 2000, CPUPerRequest: 30 * time.Microsecond, P50: 2 * ms, P99: 6 * ms},
		}}
	if got.OtherCPU < 0.0999 || got.OtherCPU > 0.1001 {
		t.Errorf("other CPU %v, want 0.1", got.OtherCPU)
	}
	got.OtherCPU = want.OtherCPU
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	skipped := Merge([]Row{rounds[0], {Key: Cqgate, Skipped: "run failed"}})
	if skipped.Skipped != "run failed" {
		t.Errorf("a failed round is not reported: %+v", skipped)
	}
	if !reflect.DeepEqual(Merge(nil), Row{}) {
		t.Error("Merge(nil) is not empty")
	}
	r := sampleReport()
	r.Rounds = 3
	r.Rows[3] = got
	if md := r.Markdown(); !strings.Contains(md, "| cqgate | wrk | 2000 (1000–3000) | 2.000 ms (1.000–3.000 ms) |") || !strings.Contains(md, "3 rounds of 3.333333333s") ||
		!strings.Contains(md, "| 30.0 µs (20.0–40.0 µs) |") {
		t.Errorf("rounds not shown:\n%s", md)
	}
}

// The scale comparison gets its own section with both rows and the
// ratio of CPU per request paired round by round, judged against
// TargetScaleCPU; a non-2xx answer in it fails the run; a report of
// only that comparison has no saturation section and no cold start.
func TestMarkdownScale(t *testing.T) {
	round := func(cpu time.Duration) Row {
		return Row{Requests: 2000, Duration: time.Second, CPUPerRequest: cpu, P50: time.Millisecond, P99: 2 * time.Millisecond}
	}
	rows := func(few, many []time.Duration) []Row {
		var a, b []Row
		for i := range few {
			a, b = append(a, round(few[i])), append(b, round(many[i]))
		}
		fr, mr := Merge(a), Merge(b)
		fr.Key, fr.Name, mr.Key, mr.Name = ScaleKey(10), "cqgate, 10 organizations", ScaleKey(10000), "cqgate, 10000 organizations"
		return []Row{fr, mr}
	}
	us := time.Microsecond
	tests := []struct {
		name      string
		few, many []time.Duration
		want      []string
	}{
		{"within 10 %", []time.Duration{100 * us, 110 * us, 120 * us}, []time.Duration{105 * us, 110 * us, 150 * us},
			[]string{"1.05× (1.00–1.25)", "| met |"}},
		{"beyond", []time.Duration{100 * us, 100 * us, 100 * us}, []time.Duration{150 * us, 140 * us, 160 * us},
			[]string{"1.50× (1.40–1.60)", "**missed**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Rounds: 3, Scale: &Scale{Few: 10, Many: 10000, Rate: 2000, Connections: 64, Duration: 30 * time.Second, Rows: rows(tt.few, tt.many)}}
			r.CheckFunctional()
			if len(r.Failures) != 0 {
				t.Fatalf("failures %v", r.Failures)
			}
			md := r.Markdown()
			for _, w := range append(tt.want, "## 10 vs 10000 organizations, end to end", "| cqgate, 10 organizations |",
				"| cqgate, 10000 organizations |", "within 10 % of 10 (≤ 1.10×)", "PASS: every answer was 2xx.\n") {
				if !strings.Contains(md, w) {
					t.Errorf("report lacks %q:\n%s", w, md)
				}
			}
			for _, w := range []string{"## Saturation", "cold start made"} {
				if strings.Contains(md, w) {
					t.Errorf("report of the scale comparison alone has %q", w)
				}
			}
		})
	}
	t.Run("partner hosts and connections opened", func(t *testing.T) {
		counted := func(opened ...int64) Row {
			var rs []Row
			for _, n := range opened {
				r := round(100 * us)
				r.FHIRConnsOpened, r.FHIRConnsCounted = n, true
				rs = append(rs, r)
			}
			return Merge(rs)
		}
		few, many := counted(0, 1, 0), counted(900, 1000, 1100)
		few.Name, many.Name = "cqgate, 10 organizations", "cqgate, 10000 organizations"
		md := (&Report{Rounds: 3, Scale: &Scale{Few: 10, Many: 10000, Hosts: 2000, Rows: []Row{few, many}}}).Markdown()
		for _, w := range []string{"spread over 2000 partner hosts", "the 10-organization process talks to 10 of them and the other to 2000",
			"cqgate, 10 organizations: 1 (0.2 per 1,000 requests); cqgate, 10000 organizations: 3000 (500.0 per 1,000 requests)"} {
			if !strings.Contains(md, w) {
				t.Errorf("report lacks %q:\n%s", w, md)
			}
		}
		// A round whose metrics could not be read leaves the row uncounted.
		partial := Merge([]Row{round(us), {Requests: 1, Duration: time.Second, FHIRConnsCounted: true}})
		if partial.FHIRConnsCounted {
			t.Error("a row with an uncounted round is counted")
		}
		md = (&Report{Scale: &Scale{Few: 10, Many: 100, Rows: rows([]time.Duration{us}, []time.Duration{us})}}).Markdown()
		if strings.Contains(md, "Connections opened") || !strings.Contains(md, "on the one partner host") {
			t.Errorf("report without counts or hosts:\n%s", md)
		}
	})
	t.Run("a non-2xx answer fails the run", func(t *testing.T) {
		sc := &Scale{Few: 10, Many: 100, Rows: rows([]time.Duration{us}, []time.Duration{us})}
		sc.Rows[1].Non2xx = 3
		r := &Report{Scale: sc}
		r.CheckFunctional()
		if len(r.Failures) != 1 || !strings.Contains(r.Failures[0], "cqgate, 10000 organizations: 3 responses were not 2xx") {
			t.Errorf("failures %v", r.Failures)
		}
	})
}
