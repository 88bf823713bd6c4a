// Command benchrun runs the cqgate performance comparison that
// bench/run.sh builds and starts: on loopback only, it starts the bench
// upstream (directory, FHIR server, token endpoint), a bare Go reverse
// proxy, nginx and cqgate, drives the same load against each and against
// the upstream directly, fires a burst of first requests at cqgate for an
// organization it has not seen, and writes a Markdown report.
//
// It exits 1 on a functional failure (an answer that was not 2xx, or a
// cold start that did not make exactly one token exchange), 2 if the
// benchmark could not be set up, and 0 otherwise, whatever the
// performance numbers.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/load"
	"github.com/cqgate/cqgate/bench/internal/loopback"
	"github.com/cqgate/cqgate/bench/internal/proc"
	"github.com/cqgate/cqgate/bench/internal/report"
	"github.com/cqgate/cqgate/bench/internal/setup"
)

const (
	warmOID   = "2.999.7.1" // used by every target under load
	coldOID   = "2.999.7.2" // first seen by cqgate in the cold-start burst
	patientID = "1316024"
	clientID  = "bench.cqgate.test"
	// maxRun bounds the whole benchmark.
	maxRun = 15 * time.Minute
)

type options struct {
	binDir, cqgateBin, wrk, nginx, lua string
	workDir, out, command, pidFile     string
	cqgateDesc                         string
	duration, warmup                   time.Duration
	conns, threads, rounds             int
	rate                               float64
	rateConns                          int
	rateDuration                       time.Duration
	coldN                              int
	coldOnly                           bool
	coldProbe                          string
	// orgs, when positive, adds the scale comparison: cqgate serving
	// scaleFew organizations against cqgate serving orgs, at the fixed
	// rate; orgsOnly runs nothing else.
	orgs     int
	orgsOnly bool
	// orgHosts, when positive, spreads the organizations' FHIR servers
	// over that many upstream hosts (upstream -fhir-hosts).
	orgHosts int
	delay    time.Duration
	targets  string
	// taskset, when set, pins the proxy under test to proxyCPUs and the
	// upstream and wrk to loadCPUs (benchrun itself, which runs the Go
	// load generator, is pinned there by run.sh).
	taskset, proxyCPUs, loadCPUs string
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", "", "directory holding the built upstream and bareproxy commands")
	flag.StringVar(&o.cqgateBin, "cqgate", "", "the cqgate binary")
	flag.StringVar(&o.wrk, "wrk", "", "wrk binary; empty: use the built-in load generator")
	flag.StringVar(&o.nginx, "nginx", "", "nginx binary; empty: skip the nginx row")
	flag.StringVar(&o.lua, "lua", "", "bench/pct.lua (needed with -wrk)")
	flag.StringVar(&o.workDir, "workdir", "", "scratch directory (configs, keys, logs)")
	flag.StringVar(&o.out, "out", "", "write the Markdown report here (and a .json beside it)")
	flag.StringVar(&o.command, "command", "", "the command line to show in the report")
	flag.StringVar(&o.cqgateDesc, "cqgate-desc", "", "which cqgate was measured, for the report")
	flag.StringVar(&o.pidFile, "pidfile", "", "append the pid of every process started here")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured load per target, over all rounds")
	flag.IntVar(&o.rounds, "rounds", 3, "the saturating runs take turns in this many rounds, so that drift on the machine hits every target alike")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per target first")
	flag.IntVar(&o.conns, "connections", 64, "connections for the saturating runs")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.Float64Var(&o.rate, "rate", 2000, "requests per second of the fixed-rate latency runs (0: skip them)")
	flag.IntVar(&o.rateConns, "rate-connections", 64, "connections for the fixed-rate runs")
	flag.DurationVar(&o.rateDuration, "rate-duration", 10*time.Second, "length of each fixed-rate run")
	flag.IntVar(&o.coldN, "cold", 1000, "concurrent first requests in the cold-start burst (0: skip)")
	flag.BoolVar(&o.coldOnly, "cold-only", false, "skip the load passes: warm the caches, then only the cold-start burst")
	flag.IntVar(&o.orgs, "orgs", 0, "also compare cqgate serving 10 organizations with cqgate serving this many, warm, at the fixed rate, the load spread at random over them (0: skip)")
	flag.BoolVar(&o.orgsOnly, "orgs-only", false, "run only the -orgs comparison: no other target, no cold start")
	flag.IntVar(&o.orgHosts, "org-hosts", 0, "spread the organizations' FHIR servers over this many upstream hosts (loopback ports), as partners on hosts of their own; 0: all on one host, as tenants of one vendor are")
	flag.StringVar(&o.coldProbe, "cold-probe", "", "directory: give cqgate an admin listener with pprof and save its RSS timeline, heap and goroutine profiles and runtime metrics during the cold start (costs cqgate CPU; for finding out, not for reporting)")
	flag.DurationVar(&o.delay, "upstream-delay", 20*time.Millisecond, "latency the bench upstream adds to directory, metadata and token answers")
	flag.StringVar(&o.targets, "targets", "direct,bare-pool,nethttp,fasthttp,nginx,cqgate", "targets to run, in order (direct, bare, bare-pool, nethttp, fasthttp, nginx, cqgate)")
	flag.StringVar(&o.taskset, "taskset", "", "taskset binary; empty: nothing is pinned")
	flag.StringVar(&o.proxyCPUs, "proxy-cpus", "0", "CPU list (taskset -c) for the proxy under test")
	flag.StringVar(&o.loadCPUs, "load-cpus", "1", "CPU list for the upstream and wrk")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()

	rep, err := run(ctx, o)
	if rep != nil {
		md := rep.Markdown()
		fmt.Println(md)
		if o.out != "" {
			if werr := writeResults(o.out, rep, md); werr != nil {
				fmt.Fprintln(os.Stderr, "benchrun:", werr)
			} else {
				fmt.Fprintln(os.Stderr, "benchrun: wrote", o.out)
			}
		}
	}
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(2)
	case len(rep.Failures) > 0:
		fmt.Fprintln(os.Stderr, "benchrun: FAIL:", strings.Join(rep.Failures, "; "))
		os.Exit(1)
	}
}

func writeResults(out string, rep *report.Report, md string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(strings.TrimSuffix(out, filepath.Ext(out))+".json", js, 0o644)
}

// target is one thing the load is driven against.
type target struct {
	key, name string
	url       string
	// urls, when set, are what the load is spread over instead of url.
	urls    []string
	base    string      // cqgate's "http://host:port"
	header  http.Header // sent by the load generator
	proxy   *child      // the proxy process, nil for direct
	admin   string      // cqgate's admin listener (with -cold-probe), "http://host:port"
	metrics string      // cqgate's metrics URL
	skipped string
}

func run(ctx context.Context, o options) (*report.Report, error) {
	if o.workDir == "" || o.binDir == "" {
		return nil, errors.New("-workdir and -bin are required")
	}
	if o.wrk != "" && o.lua == "" {
		return nil, errors.New("-wrk needs -lua (bench/pct.lua)")
	}
	if o.orgsOnly && o.orgs <= 0 {
		return nil, errors.New("-orgs-only needs -orgs")
	}
	if o.orgs > 0 && o.orgs < scaleFew {
		return nil, fmt.Errorf("-orgs must be at least %d", scaleFew)
	}
	if o.orgs > 0 && o.rate <= 0 {
		return nil, errors.New("-orgs needs a fixed rate (-rate)")
	}
	if o.orgHosts < 0 || o.orgHosts > maxOrgHosts {
		return nil, fmt.Errorf("-org-hosts must be between 0 and %d", maxOrgHosts)
	}
	o.rounds = max(o.rounds, 1)
	perRound := wholeSeconds(o.duration / time.Duration(o.rounds))
	o.duration = perRound * time.Duration(o.rounds)
	o.warmup = wholeSeconds(o.warmup)
	tool := "loadgen"
	if o.wrk != "" {
		tool = "wrk"
	}
	rep := &report.Report{
		When: time.Now(), Command: o.command, Cqgate: o.cqgateDesc, Machine: describeMachine(o.wrk, o.nginx),
		Connections: o.conns, Threads: o.threads, Duration: o.duration, Rounds: o.rounds, Warmup: o.warmup,
	}
	if o.wrk == "" {
		rep.Threads = 0
		rep.Notes = append(rep.Notes, "wrk was not used (not installed, or --loadgen): the saturating runs used the built-in Go load generator (bench/cmd/loadgen), which costs more CPU per request than wrk and so lowers every row's throughput on a 2-CPU machine.")
	}
	if o.taskset != "" {
		rep.Pinning = fmt.Sprintf("proxy under test pinned to CPU %s; load generator and upstream pinned to CPU %s (taskset); nginx runs one worker per pinned CPU and Go sets GOMAXPROCS from the affinity", o.proxyCPUs, o.loadCPUs)
	} else {
		rep.Pinning = "not pinned: the proxy, the load generator and the upstream share every CPU"
		rep.Notes = append(rep.Notes, "Nothing was pinned (taskset missing, or fewer than 2 CPUs): every process competed for every CPU, so CPU per request includes the cost of that competition.")
	}
	sup := &supervisor{dir: o.workDir, pidFile: o.pidFile, taskset: o.taskset}
	defer sup.stopAll()

	// The upstream: directory, FHIR servers and token endpoints.
	apiKey := randomHex(16)
	upAddrFile := filepath.Join(o.workDir, "upstream.addr")
	up, err := sup.startOn(o.loadCPUs, "upstream", []string{"BENCH_DIRECTORY_API_KEY=" + apiKey}, filepath.Join(o.binDir, "upstream"),
		"-listen", "127.0.0.1:0", "-addr-file", upAddrFile, "-delay", o.delay.String(), "-max-lifetime", maxRun.String(),
		"-fhir-hosts", strconv.Itoa(o.orgHosts))
	if err != nil {
		return nil, err
	}
	startCtx, startCancel := context.WithTimeout(ctx, 30*time.Second)
	defer startCancel()
	upAddr, err := up.waitFile(startCtx, upAddrFile)
	if err != nil {
		return nil, err
	}
	upBase := "http://" + upAddr
	if err := up.waitHTTP(startCtx, upBase+"/_stats", http.StatusOK); err != nil {
		return nil, err
	}
	token, err := fhirstub.FetchToken(startCtx, nil, upBase, warmOID)
	if err != nil {
		return nil, err
	}
	auth := "Bearer " + token
	fhirPath := "/o/" + warmOID + "/fhir/Patient/" + patientID

	var targets []*target
	keys := strings.Split(o.targets, ",")
	if o.orgsOnly {
		keys = nil
	}
	for _, key := range keys {
		t := &target{key: strings.TrimSpace(key)}
		switch t.key {
		case report.Direct:
			t.name, t.url, t.header = "upstream directly", upBase+fhirPath, http.Header{"Authorization": {auth}}
		case report.Bare:
			t.name = "bare Go ReverseProxy"
			err = startBare(startCtx, sup, o, t, upBase, auth, fhirPath, "-buffer-pool=false")
		case report.BarePool:
			t.name = "Go ReverseProxy + BufferPool"
			err = startBare(startCtx, sup, o, t, upBase, auth, fhirPath, "-buffer-pool=true")
		case report.NetHTTP:
			t.name = "best net/http forwarder"
			err = startBare(startCtx, sup, o, t, upBase, auth, fhirPath, "-forwarder")
		case report.FastHTTP:
			t.name = "fasthttp forwarder (reference)"
			err = startBare(startCtx, sup, o, t, upBase, auth, fhirPath, "-fasthttp")
		case report.Nginx:
			t.name = fmt.Sprintf("nginx (%d worker%s)", nginxWorkers(o), map[bool]string{true: "s"}[nginxWorkers(o) > 1])
			err = startNginx(startCtx, sup, o, t, upAddr, auth, fhirPath)
		case report.Cqgate:
			t.name = "cqgate"
			err = startCqgate(startCtx, sup, o, t, upBase, apiKey)
		default:
			return nil, fmt.Errorf("unknown target %q", key)
		}
		if err != nil {
			return rep, err
		}
		targets = append(targets, t)
	}
	if o.orgs > 0 && o.cqgateBin == "" {
		return rep, errors.New("-cqgate is required for -orgs")
	}
	startCancel()

	// Every pass takes turns (ABAB…): in each round every target's
	// saturating pass, then every target's fixed-rate pass, so that a
	// slow phase of the machine hits every target alike.
	ratePerRound := wholeSeconds(o.rateDuration / time.Duration(o.rounds))
	o.rateDuration = ratePerRound * time.Duration(o.rounds)
	rounds := make([][]report.Row, len(targets))
	rateRounds := make([][]report.Row, len(targets))
	for r := 0; r < o.rounds && !o.coldOnly; r++ {
		warmup := o.warmup
		if r > 0 {
			warmup = 0
		}
		for i, t := range targets {
			rounds[i] = append(rounds[i], measure(ctx, o, t, up, tool, 0, o.conns, perRound, warmup))
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
		if o.rate <= 0 {
			continue
		}
		for i, t := range targets {
			rateRounds[i] = append(rateRounds[i], measure(ctx, o, t, up, "loadgen", o.rate, o.rateConns, ratePerRound, 0))
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	for _, rs := range rounds {
		if len(rs) > 0 {
			rep.Rows = append(rep.Rows, report.Merge(rs))
		}
	}
	if o.rate > 0 && !o.coldOnly {
		rep.Rate, rep.RateConnections, rep.RateDuration = o.rate, o.rateConns, o.rateDuration
		for _, rs := range rateRounds {
			rep.RateRows = append(rep.RateRows, report.Merge(rs))
		}
	}

	// The scale comparison: its two cqgate processes start now, so that
	// neither they nor their warm-up run beside the passes above, take
	// turns in rounds of their own at the fixed rate, and stop.
	if o.orgs > 0 {
		scaleCtx, scaleCancel := context.WithTimeout(ctx, 30*time.Second)
		scale, err := startScale(scaleCtx, ctx, sup, o, upBase, apiKey)
		scaleCancel()
		if err != nil {
			return rep, err
		}
		scaleRounds := make([][]report.Row, len(scale))
		for r := 0; r < o.rounds; r++ {
			warmup := time.Duration(0)
			if r == 0 {
				warmup = o.warmup
			}
			for i, t := range scale {
				scaleRounds[i] = append(scaleRounds[i], measure(ctx, o, t, up, "loadgen", o.rate, o.rateConns, ratePerRound, warmup))
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
			}
		}
		rep.Scale = &report.Scale{Few: scaleFew, Many: o.orgs, Hosts: o.orgHosts, Rate: o.rate, Connections: o.rateConns, Duration: o.rateDuration}
		for i, rs := range scaleRounds {
			rep.Scale.Rows = append(rep.Scale.Rows, report.Merge(rs))
			scale[i].proxy.stop()
		}
	}

	// The cold start: a burst of first requests for an organization
	// cqgate has not resolved yet.
	for _, t := range targets {
		if t.key == report.Cqgate && t.skipped == "" && o.coldN > 0 {
			cold, err := coldStart(ctx, o, t, upBase)
			if err != nil {
				return rep, err
			}
			rep.Cold = cold
		}
	}
	rep.CheckFunctional()
	return rep, nil
}

// nginxWorkers is one worker per CPU the proxy may use: 1 when pinned,
// 2 (the machine's) when not.
func nginxWorkers(o options) int {
	if o.taskset != "" {
		return max(1, len(strings.Split(o.proxyCPUs, ",")))
	}
	return 2
}

func startBare(ctx context.Context, sup *supervisor, o options, t *target, upBase, auth, path, mode string) error {
	addrFile := filepath.Join(o.workDir, t.key+".addr")
	c, err := sup.startOn(o.proxyCPUs, t.key, []string{"BENCH_AUTHORIZATION=" + auth}, filepath.Join(o.binDir, "bareproxy"),
		"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-target", upBase, "-max-lifetime", maxRun.String(), mode)
	if err != nil {
		return err
	}
	addr, err := c.waitFile(ctx, addrFile)
	if err != nil {
		return err
	}
	t.proxy, t.url = c, "http://"+addr+path
	return c.waitHTTP(ctx, t.url, http.StatusOK)
}

func startNginx(ctx context.Context, sup *supervisor, o options, t *target, upAddr, auth, path string) error {
	if o.nginx == "" {
		t.skipped = "nginx is not installed (Debian package nginx or nginx-light)"
		return nil
	}
	dir := filepath.Join(o.workDir, "nginx")
	listen, err := loopback.FreeAddr()
	if err != nil {
		return err
	}
	conf, err := setup.WriteNginxConf(dir, listen, upAddr, auth, nginxWorkers(o))
	if err != nil {
		return err
	}
	c, err := sup.startOn(o.proxyCPUs, "nginx", nil, o.nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log"), "-g", "daemon off;")
	if err != nil {
		t.skipped = "nginx did not start: " + err.Error()
		return nil
	}
	c.tree = true
	t.proxy, t.url = c, "http://"+listen+path
	if err := c.waitHTTP(ctx, t.url, http.StatusOK); err != nil {
		t.skipped = "nginx did not answer: " + firstLine(err.Error())
		t.proxy = nil
		return nil
	}
	// Wait until the workers are up, and record them so that run.sh's
	// trap can end them even if the master dies first.
	for i := 0; i < 100; i++ {
		if kids, _ := proc.Children(c.pid()); len(kids) >= nginxWorkers(o) {
			for _, k := range kids {
				sup.recordPID(k)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func startCqgate(ctx context.Context, sup *supervisor, o options, t *target, upBase, apiKey string) error {
	if o.cqgateBin == "" {
		return errors.New("-cqgate is required for the cqgate target")
	}
	if err := startCqgateFor(ctx, sup, o, t, upBase, apiKey, []string{warmOID, coldOID}); err != nil {
		return err
	}
	t.url = t.base + "/fhir/" + warmOID + "/Patient/" + patientID
	// Warm the directory, discovery and token caches.
	return t.proxy.waitHTTP(ctx, t.url, http.StatusOK)
}

// startCqgateFor starts a cqgate named t.key, configured for oids, and
// waits until it is ready.
func startCqgateFor(ctx context.Context, sup *supervisor, o options, t *target, upBase, apiKey string, oids []string) error {
	// Each cqgate has its own key: they watch their files.
	keyDir := filepath.Join(o.workDir, t.key+"-key")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return err
	}
	certFile, keyFile, err := setup.WriteSelfSigned(keyDir, clientID)
	if err != nil {
		return err
	}
	listen, err := loopback.FreeAddr()
	if err != nil {
		return err
	}
	conf := filepath.Join(o.workDir, t.key+".yaml")
	opts := setup.CqgateOptions{Listen: listen, DirectoryURL: upBase + "/directory", CertFile: certFile, KeyFile: keyFile,
		ClientID: clientID, OIDs: oids}
	ready := "http://" + listen + "/readyz"
	if o.coldProbe != "" {
		if opts.Admin, err = loopback.FreeAddr(); err != nil {
			return err
		}
		t.admin = "http://" + opts.Admin
		ready = t.admin + "/readyz"
	}
	yaml := setup.CqgateConfig(opts)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		return err
	}
	c, err := sup.startOn(o.proxyCPUs, t.key, []string{"CQGATE_DIRECTORY_API_KEY=" + apiKey}, o.cqgateBin, "-config", conf)
	if err != nil {
		return err
	}
	t.proxy, t.base = c, "http://"+listen
	t.metrics = t.base + "/metrics"
	if t.admin != "" {
		t.metrics = t.admin + "/metrics"
	}
	return c.waitHTTP(ctx, ready, http.StatusOK)
}

// measure runs the load against t: first warmup unmeasured, then the
// measured run, accounting the proxy's and the upstream's CPU to it.
func measure(ctx context.Context, o options, t *target, up *child, tool string, rate float64, conns int, dur, warmup time.Duration) report.Row {
	row := report.Row{Key: t.key, Name: t.name, Skipped: t.skipped, Tool: tool}
	if t.skipped != "" {
		return row
	}
	fmt.Fprintf(os.Stderr, "benchrun: %s: %d connections, %s", t.name, conns, dur)
	if rate > 0 {
		fmt.Fprintf(os.Stderr, " at %.0f requests/s", rate)
	}
	fmt.Fprintln(os.Stderr)
	if warmup > 0 {
		var scratch report.Row
		if _, err := drive(ctx, o, t, tool, rate, conns, warmup, &scratch); err != nil {
			row.Skipped = "warm-up failed: " + err.Error()
			return row
		}
	}
	// Read before the CPU samples and after them: the scrape's CPU is
	// not the requests'.
	connsBefore, cerr := fhirConnsOpened(ctx, t.metrics)
	before, berr := sampleOf(t.proxy)
	upBefore, uerr := up.sample()
	sysBefore, serr := proc.ReadSystem()
	t0 := time.Now()
	genCPU, err := drive(ctx, o, t, tool, rate, conns, dur, &row)
	if err != nil {
		row.Skipped = "run failed: " + err.Error()
		return row
	}
	wall := time.Since(t0)
	sysAfter, serr2 := proc.ReadSystem()
	after, aerr := sampleOf(t.proxy)
	upAfter, uerr2 := up.sample()
	if connsAfter, cerr2 := fhirConnsOpened(ctx, t.metrics); cerr == nil && cerr2 == nil {
		row.FHIRConnsOpened, row.FHIRConnsCounted = connsAfter-connsBefore, true
	}
	var proxyCPU, upCPU time.Duration
	if t.proxy != nil && berr == nil && aerr == nil {
		proxyCPU = after.CPU - before.CPU
		row.PeakRSS = after.HWM
	}
	if uerr == nil && uerr2 == nil {
		upCPU = upAfter.CPU - upBefore.CPU
	}
	if row.Requests > 0 {
		row.CPUPerRequest = proxyCPU / time.Duration(row.Requests)
		row.UpstreamCPUPerRequest = upCPU / time.Duration(row.Requests)
	}
	if serr == nil && serr2 == nil && wall > 0 {
		other := sysAfter.Busy - sysBefore.Busy - proxyCPU - upCPU - genCPU
		row.OtherCPU = max(0, other.Seconds()/wall.Seconds())
		row.Steal = (sysAfter.Steal - sysBefore.Steal).Seconds() / wall.Seconds()
	}
	return row
}

// drive runs one load with wrk or the built-in generator into row, and
// returns the CPU time the load generator used.
func drive(ctx context.Context, o options, t *target, tool string, rate float64, conns int, dur time.Duration, row *report.Row) (time.Duration, error) {
	if tool == "wrk" {
		return runWrk(ctx, o, t, conns, dur, row)
	}
	self, serr := proc.Read(os.Getpid())
	res, err := load.Run(ctx, load.Config{URL: t.url, URLs: t.urls, Header: t.header, Connections: conns, Duration: dur, Rate: rate})
	if err != nil {
		return 0, err
	}
	var cpu time.Duration
	if after, aerr := proc.Read(os.Getpid()); serr == nil && aerr == nil {
		cpu = after.CPU - self.CPU
	}
	row.Requests, row.Duration = res.Requests, res.Duration
	row.Non2xx, row.SocketErrors = res.Non2xx(), res.Errors
	l := res.Latency
	row.P50, row.P75, row.P90, row.P99, row.P999, row.Max = l.P50, l.P75, l.P90, l.P99, l.P999, l.Max
	return cpu, nil
}

func runWrk(ctx context.Context, o options, t *target, conns int, dur time.Duration, row *report.Row) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	threads := min(o.threads, conns)
	name, args := o.wrk, []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(dur/time.Second)) + "s", "--timeout", "10s", "--latency", "-s", o.lua, t.url}
	if o.taskset != "" {
		name, args = o.taskset, append([]string{"-c", o.loadCPUs, o.wrk}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = os.Environ()
	if a := t.header.Get("Authorization"); a != "" {
		cmd.Env = append(cmd.Env, "BENCH_AUTHORIZATION="+a)
	} else {
		cmd.Env = append(cmd.Env, "BENCH_AUTHORIZATION=")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w: %s", err, firstLine(string(out)))
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return cpu, report.ParseWrk(string(out), row)
}

func coldStart(ctx context.Context, o options, t *target, upBase string) (*report.ColdStart, error) {
	fmt.Fprintf(os.Stderr, "benchrun: cold start: %d concurrent first requests for %s\n", o.coldN, coldOID)
	before, err := fhirstub.FetchStats(ctx, nil, upBase)
	if err != nil {
		return nil, err
	}
	url := strings.Replace(t.url, "/fhir/"+warmOID+"/", "/fhir/"+coldOID+"/", 1)
	var probe *coldProbe
	probeCtx, probeStop := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	if o.coldProbe != "" && t.admin != "" {
		if probe, err = newColdProbe(o.coldProbe, t.proxy.pid(), t.admin); err != nil {
			probeStop()
			return nil, err
		}
		go func() { defer close(probeDone); probe.run(probeCtx) }()
	} else {
		close(probeDone)
	}
	res, err := load.Burst(ctx, load.BurstConfig{URL: url, N: o.coldN, Timeout: 60 * time.Second})
	probeStop()
	<-probeDone
	if probe != nil {
		if werr := probe.write(); werr != nil {
			fmt.Fprintln(os.Stderr, "benchrun: cold probe:", werr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	after, err := fhirstub.FetchStats(ctx, nil, upBase)
	if err != nil {
		return nil, err
	}
	c := &report.ColdStart{
		OID: coldOID, N: res.N, Status: res.Status, Errors: res.Errors, FirstError: res.FirstError,
		Connect: res.Connect, First: res.First, Median: res.Median, Max: res.Last,
		Directory:     after.Directory[coldOID] - before.Directory[coldOID],
		Metadata:      after.Metadata[coldOID] - before.Metadata[coldOID],
		Token:         after.Token[coldOID] - before.Token[coldOID],
		Other:         after.Other[coldOID] - before.Other[coldOID],
		UpstreamDelay: o.delay,
	}
	if s, err := t.proxy.sample(); err == nil {
		c.PeakRSS = s.HWM
	}
	return c, nil
}

func sampleOf(c *child) (s proc.Sample, err error) {
	if c == nil {
		return s, errors.New("no process")
	}
	return c.sample()
}

func wholeSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return max(time.Second, d.Round(time.Second))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
