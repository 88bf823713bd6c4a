package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/bench/internal/report"
)

// buildTools builds the upstream and bareproxy commands into a temporary
// directory.
func buildTools(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts processes")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the bench tools with")
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", dir+string(os.PathSeparator), "../upstream", "../bareproxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// The orchestrator starts the upstream and the bare proxy, measures both
// with the built-in load generator, and stops every process it started.
func TestRunDirectAndBare(t *testing.T) {
	bin := buildTools(t)
	work := t.TempDir()
	pidFile := filepath.Join(work, "pids")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, options{
		binDir: bin, workDir: work, pidFile: pidFile, targets: "direct,bare,bare-pool,nethttp,fasthttp,nginx", // nginx: "" skips it
		duration: 2 * time.Second, rounds: 2, conns: 4, threads: 1,
		rate: 200, rateConns: 4, rateDuration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	if len(rep.Rows) != 6 || len(rep.RateRows) != 6 {
		t.Fatalf("rows %+v rate rows %+v", rep.Rows, rep.RateRows)
	}
	if ng := rep.Rows[5]; ng.Key != report.Nginx || !strings.Contains(ng.Skipped, "not installed") {
		t.Errorf("nginx row %+v, want skipped as not installed", ng)
	}
	rep.Rows, rep.RateRows = rep.Rows[:5], rep.RateRows[:5]
	for _, row := range append(rep.Rows, rep.RateRows...) {
		if row.Rounds != 2 || len(row.PerRound) != 2 {
			t.Errorf("%s: %d rounds, want 2", row.Name, row.Rounds)
		}
	}
	for _, row := range append(rep.Rows, rep.RateRows...) {
		if row.Skipped != "" || row.Requests == 0 || row.Non2xx != 0 || row.Tool != "loadgen" {
			t.Errorf("row %+v", row)
		}
		if row.Key != report.Direct && row.PeakRSS == 0 {
			t.Errorf("no peak RSS for the bare proxy: %+v", row)
		}
	}
	if rep.Cold != nil {
		t.Error("a cold start ran without cqgate")
	}
	md := rep.Markdown()
	if !strings.Contains(md, "| bare Go ReverseProxy | loadgen |") || !strings.Contains(md, "| fasthttp forwarder (reference) | loadgen |") {
		t.Errorf("report:\n%s", md)
	}
	// The static token the baselines use stays out of the report and of
	// the processes' logs.
	out := filepath.Join(work, "results", "latest.md")
	if err := writeResults(out, rep, md); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{out, filepath.Join(work, "results", "latest.json"), filepath.Join(work, "bare.log"), filepath.Join(work, "fasthttp.log"), filepath.Join(work, "upstream.log")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "Bearer") {
			t.Errorf("%s mentions a bearer token", f)
		}
	}

	// run has returned: every process it started has ended.
	pids, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(pids))
	if len(lines) != 5 {
		t.Errorf("pid file lists %q, want the upstream, the two bare proxies and the two forwarders", lines)
	}
	for _, pid := range lines {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			if stat, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(stat), ") Z ") {
				t.Errorf("process %s still runs", pid)
			}
		}
	}
}

func TestRunRefusesIncompleteOptions(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		o    options
		want string
	}{
		{"no workdir", options{binDir: "/x"}, "-workdir and -bin"},
		{"wrk without script", options{binDir: "/x", workDir: t.TempDir(), wrk: "/usr/bin/wrk"}, "-lua"},
		{"orgs-only without orgs", options{binDir: "/x", workDir: t.TempDir(), orgsOnly: true}, "-orgs-only needs -orgs"},
		{"fewer orgs than the small side", options{binDir: "/x", workDir: t.TempDir(), orgs: 5, rate: 100}, "-orgs must be at least 10"},
		{"orgs without a rate", options{binDir: "/x", workDir: t.TempDir(), orgs: 100}, "-orgs needs a fixed rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := run(ctx, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// -orgs-only starts two cqgate processes, warms every organization of
// each (one token exchange each), spreads the fixed-rate load over them
// and reports the comparison and nothing else.
func TestRunOrgsOnly(t *testing.T) {
	bin := buildTools(t)
	cq := filepath.Join(bin, "cqgate")
	if out, err := exec.Command("go", "build", "-o", cq, "../../../cmd/cqgate").CombinedOutput(); err != nil {
		t.Fatalf("go build cqgate: %v\n%s", err, out)
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, options{
		binDir: bin, cqgateBin: cq, workDir: work, pidFile: filepath.Join(work, "pids"), targets: "direct,cqgate",
		orgs: 40, orgsOnly: true, orgHosts: 7, rounds: 2, warmup: time.Second, rate: 200, rateConns: 4, rateDuration: 2 * time.Second,
		delay: time.Millisecond, coldN: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	if len(rep.Rows) != 0 || len(rep.RateRows) != 0 || rep.Cold != nil {
		t.Errorf("-orgs-only ran more: %d rows, %d rate rows, cold start %v", len(rep.Rows), len(rep.RateRows), rep.Cold != nil)
	}
	sc := rep.Scale
	if sc == nil || sc.Few != 10 || sc.Many != 40 || sc.Hosts != 7 || len(sc.Rows) != 2 {
		t.Fatalf("scale %+v", sc)
	}
	for i, want := range []string{"cqgate, 10 organizations", "cqgate, 40 organizations"} {
		r := sc.Rows[i]
		if r.Name != want || r.Rounds != 2 || r.Requests < 300 || r.CPUPerRequest <= 0 || r.PeakRSS <= 0 {
			t.Errorf("row %d: %+v", i, r)
		}
		// Warm, over 7 partner hosts: the connections opened in the
		// warm-up are reused (a few may be opened when the load's 4
		// connections overlap on one host).
		if !r.FHIRConnsCounted || r.FHIRConnsOpened > r.Requests/20 {
			t.Errorf("row %d: %d FHIR connections opened for %d requests (counted: %v)", i, r.FHIRConnsOpened, r.Requests, r.FHIRConnsCounted)
		}
	}
	if x := sc.Ratio(); x.Median <= 0 {
		t.Errorf("ratio %+v", x)
	}
	md := rep.Markdown()
	if !strings.Contains(md, "## 10 vs 40 organizations, end to end") {
		t.Errorf("report:\n%s", md)
	}
}

func TestRunReportsAMissingCqgate(t *testing.T) {
	bin := buildTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := run(ctx, options{binDir: bin, workDir: t.TempDir(), targets: "direct,cqgate", duration: time.Second, conns: 1})
	if err == nil || !strings.Contains(err.Error(), "-cqgate is required") {
		t.Errorf("err %v", err)
	}
}

func TestWholeSeconds(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{0, 0}, {-time.Second, 0}, {100 * time.Millisecond, time.Second}, {1400 * time.Millisecond, time.Second},
		{1600 * time.Millisecond, 2 * time.Second}, {15 * time.Second, 15 * time.Second},
	} {
		if got := wholeSeconds(c.in); got != c.want {
			t.Errorf("wholeSeconds(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// startOn pins a child to the CPUs asked for, with taskset execing the
// command itself (the pid recorded is the command's).
func TestStartOnPins(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset not installed")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	sup := &supervisor{dir: t.TempDir(), taskset: taskset}
	defer sup.stopAll()
	c, err := sup.startOn("0", "sleeper", nil, sleep, "30")
	if err != nil {
		t.Fatal(err)
	}
	var status string
	for range 100 {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(c.pid()) + "/status")
		if status = string(b); strings.Contains(status, "Name:\tsleep") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(status, "Name:\tsleep") || !strings.Contains(status, "Cpus_allowed_list:\t0\n") {
		t.Errorf("child status:\n%s", status)
	}
	unpinned := &supervisor{dir: t.TempDir()}
	defer unpinned.stopAll()
	c2, err := unpinned.startOn("0", "sleeper2", nil, sleep, "30")
	if err != nil {
		t.Fatal(err)
	}
	if c2.cmd.Path != sleep {
		t.Errorf("without taskset the command is %s, want %s itself", c2.cmd.Path, sleep)
	}
}
