// Command soak runs cqgate for a bounded time under a steady load against
// an upstream that expires its access tokens every minute and fails now
// and then, and reports whether cqgate answered every request as it
// should and kept its goroutines and heap flat. bench/soak.sh builds and
// starts it; see bench/internal/soak for the classification and the
// verdict.
//
// Everything is on 127.0.0.1: the upstream (bench/internal/fhirstub: the
// directory, the metadata, the token endpoint and the FHIR server, in this
// process), cqgate (a child process, killed when soak ends however it
// ends) and the load. The phases:
//
//  1. cqgate starts and becomes ready; the load runs for -warmup.
//  2. At rest: the load stops, idle connections are closed on both
//     sides, and cqgate's metrics are read once its goroutine count is
//     steady (the baseline).
//  3. The measured load runs for -duration, cqgate's metrics are read
//     every -sample-every.
//  4. At rest again (the final reading); every answer that was not a
//     200 is classified against the upstream's records, and the report
//     is written.
//
// Exit status: 0 PASS, 1 FAIL, 2 the soak could not run.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cqgate/cqgate/bench/internal/fhirstub"
	"github.com/cqgate/cqgate/bench/internal/loopback"
	"github.com/cqgate/cqgate/bench/internal/setup"
	"github.com/cqgate/cqgate/bench/internal/soak"
)

const (
	clientID  = "soak.cqgate.test"
	patientID = "1316024"
	// maxResponses bounds the non-200 answers kept for classification.
	maxResponses = 2_000_000
)

type options struct {
	cqgateBin, cqgateDesc, workDir, out, pidFile, command string
	duration, warmup, sampleEvery, timeout                time.Duration
	rate                                                  float64
	oids, maxInFlight, goroutineSlack                     int
	tokenLifetime, refreshMargin, refreshAhead            time.Duration
	minInterval                                           time.Duration
	fail503, failReset, fail401, heapFactor               float64
}

func main() {
	var o options
	flag.StringVar(&o.cqgateBin, "cqgate", "", "the cqgate binary (required)")
	flag.StringVar(&o.cqgateDesc, "cqgate-desc", "", "which cqgate this is, for the report")
	flag.StringVar(&o.workDir, "workdir", "", "scratch directory for cqgate's configuration, key and log (required)")
	flag.StringVar(&o.out, "out", "", "write the Markdown report here (and a .json beside it)")
	flag.StringVar(&o.pidFile, "pidfile", "", "append the pid of cqgate here, for the calling script's trap")
	flag.StringVar(&o.command, "command", "", "the command line to show in the report")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "measured load, at most "+soak.MaxDuration.String())
	flag.DurationVar(&o.warmup, "warmup", 20*time.Second, "load before the baseline is taken")
	flag.DurationVar(&o.sampleEvery, "sample-every", 30*time.Second, "read cqgate's metrics this often under load")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on one request")
	flag.Float64Var(&o.rate, "rate", 200, "requests per second (open loop)")
	flag.IntVar(&o.oids, "oids", 5, "organizations, used in turn")
	flag.IntVar(&o.maxInFlight, "max-inflight", 256, "requests waiting for an answer at most; one due beyond is not sent and counts as unexpected")
	flag.DurationVar(&o.tokenLifetime, "token-lifetime", time.Minute, "expires_in of the upstream's access tokens")
	flag.DurationVar(&o.refreshMargin, "refresh-margin", 10*time.Second, "cqgate tokens.refresh_margin")
	flag.DurationVar(&o.refreshAhead, "refresh-ahead", 10*time.Second, "cqgate tokens.refresh_ahead")
	flag.DurationVar(&o.minInterval, "min-interval", 5*time.Second, "cqgate tokens.min_interval")
	flag.Float64Var(&o.fail503, "fail-503", 0.005, "probability of an injected 503 per FHIR attempt")
	flag.Float64Var(&o.failReset, "fail-reset", 0.002, "probability of an injected connection reset per FHIR attempt")
	flag.Float64Var(&o.fail401, "fail-401", 0.0005, "probability of an injected 401 for a valid token per FHIR attempt")
	flag.IntVar(&o.goroutineSlack, "goroutine-slack", -1, "goroutines allowed above the baseline at the end (default: organizations + 10)")
	flag.Float64Var(&o.heapFactor, "heap-factor", soak.DefaultHeapFactor, "heap growth allowed (end ÷ start)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := run(ctx, o)
	if rep != nil {
		md := rep.Markdown()
		fmt.Println(md)
		if o.out != "" {
			if werr := writeResults(o.out, rep, md); werr != nil {
				fmt.Fprintln(os.Stderr, "soak:", werr)
			} else {
				fmt.Fprintln(os.Stderr, "soak: wrote", o.out)
			}
		}
	}
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	case !rep.Pass():
		fmt.Fprintln(os.Stderr, "soak: FAIL")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "soak: PASS")
}

func (o *options) check() error {
	var errs []error
	if o.cqgateBin == "" || o.workDir == "" {
		errs = append(errs, errors.New("-cqgate and -workdir are required"))
	}
	if o.duration <= 0 || o.duration > soak.MaxDuration {
		errs = append(errs, fmt.Errorf("-duration must be in (0, %s]", soak.MaxDuration))
	}
	if o.warmup < 0 || o.warmup > 10*time.Minute {
		errs = append(errs, errors.New("-warmup must be in [0, 10m]"))
	}
	if !(o.rate > 0 && o.rate <= soak.MaxRate) {
		errs = append(errs, fmt.Errorf("-rate must be in (0, %d]", soak.MaxRate))
	}
	if o.oids < 1 || o.oids > 1000 {
		errs = append(errs, errors.New("-oids must be in [1, 1000]"))
	}
	if o.sampleEvery < time.Second {
		errs = append(errs, errors.New("-sample-every must be at least 1s"))
	}
	if o.tokenLifetime < time.Second || o.refreshMargin < 0 || o.refreshAhead < 0 || o.minInterval < 0 {
		errs = append(errs, errors.New("-token-lifetime must be at least 1s, the tokens settings not negative"))
	}
	if o.heapFactor < 1 {
		errs = append(errs, errors.New("-heap-factor must be at least 1"))
	}
	if err := o.faults().Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.goroutineSlack < 0 {
		o.goroutineSlack = soak.DefaultGoroutineSlack(o.oids)
	}
	return errors.Join(errs...)
}

func (o *options) faults() fhirstub.Faults {
	return fhirstub.Faults{Unavailable: o.fail503, Reset: o.failReset, Unauthorized: o.fail401}
}

func writeResults(out string, rep *soak.Report, md string) error {
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

// collector keeps the answers of one phase.
type collector struct {
	mu     sync.Mutex
	ok     int64
	others []soak.Response
	lost   int64 // not kept: maxResponses reached
	behind int64
}

func (c *collector) add(r soak.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Err == soak.ErrBehind.Error() {
		c.behind++
	}
	if r.Status == http.StatusOK && r.Err == "" {
		c.ok++
		return
	}
	if len(c.others) >= maxResponses {
		c.lost++
		return
	}
	c.others = append(c.others, r)
}

func (c *collector) tally(cl *soak.Classifier) *soak.Tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := soak.NewTally()
	t.AddOK(c.ok)
	for _, r := range c.others {
		t.Add(cl, r)
	}
	return t
}

func run(ctx context.Context, o options) (*soak.Report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	oids := make([]string, o.oids)
	for i := range oids {
		oids[i] = fmt.Sprintf("%s%d", fhirstub.DefaultOIDPrefix, i+1)
	}

	// The upstream, in this process.
	apiKey := randomHex(16)
	stub := fhirstub.New(fhirstub.Config{APIKey: apiKey, TokenLifetime: o.tokenLifetime, Faults: o.faults()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	upSrv := &http.Server{Handler: stub, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = upSrv.Serve(ln) }()
	defer upSrv.Close()
	upBase := "http://" + ln.Addr().String()

	// cqgate.
	certFile, keyFile, err := setup.WriteSelfSigned(o.workDir, clientID)
	if err != nil {
		return nil, err
	}
	listen, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(o.workDir, "cqgate.yaml")
	yaml := setup.CqgateConfig(setup.CqgateOptions{
		Listen: listen, DirectoryURL: upBase + "/directory", CertFile: certFile, KeyFile: keyFile,
		ClientID: clientID, OIDs: oids,
		RefreshMargin: o.refreshMargin, RefreshAhead: o.refreshAhead, MinInterval: o.minInterval,
	})
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	gw, err := startCqgate(o, conf, apiKey)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	base := "http://" + listen
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := gw.waitReady(startCtx, base+"/readyz"); err != nil {
		return nil, err
	}
	metricsURL := base + "/metrics"

	rep := &soak.Report{
		Setup: soak.Setup{
			Command: o.command, Machine: describeMachine(), Cqgate: o.cqgateDesc,
			Duration: o.duration, Warmup: o.warmup, Rate: o.rate, OIDs: oids,
			TokenLifetime: o.tokenLifetime, RefreshMargin: o.refreshMargin, RefreshAhead: o.refreshAhead, MinInterval: o.minInterval,
			Fail503: o.fail503, FailReset: o.failReset, Fail401: o.fail401,
			SampleEvery: o.sampleEvery, GoroutineSlack: o.goroutineSlack, HeapFactor: o.heapFactor,
		},
	}
	client := soak.NewClient(o.maxInFlight, o.timeout)
	drive := func(onResponse func(soak.Response), d time.Duration, prefix string) (soak.DriveResult, error) {
		return soak.Drive(ctx, soak.DriveConfig{
			BaseURL: base, OIDs: oids, PatientID: patientID, Rate: o.rate, Duration: d,
			MaxInFlight: o.maxInFlight, Timeout: o.timeout, IDPrefix: prefix, Client: client, OnResponse: onResponse,
		})
	}

	// 1. Warm-up.
	warm := &collector{}
	if o.warmup > 0 {
		logf("warm-up: %s at %.0f requests/s", o.warmup, o.rate)
		if _, err := drive(warm.add, o.warmup, "warm"); err != nil {
			return nil, gw.failure("warm-up", err)
		}
	}
	// 2. At rest: the baseline.
	rep.Baseline, err = atRest(ctx, client, upSrv, metricsURL)
	if err != nil {
		return nil, gw.failure("baseline", err)
	}
	logf("at rest: %.0f goroutines, heap in use %.1f MiB", rep.Baseline.Goroutines, rep.Baseline.HeapInuse/(1<<20))
	before := stub.Stats()

	// 3. The measured load, sampled.
	meas := &collector{}
	rep.Started = time.Now()
	lat := soak.NewLatencies(gw.cmd.Process.Pid, os.Getpid())
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samples := make(chan []soak.Sample, 1)
	go func() { samples <- sample(sampleCtx, metricsURL, o.sampleEvery, rep.Started, lat) }()
	logf("measured load: %s at %.0f requests/s over %d organizations", o.duration, o.rate, len(oids))
	res, derr := drive(func(r soak.Response) { meas.add(r); lat.Add(r) }, o.duration, "soak")
	rep.Elapsed = time.Since(rep.Started)
	end := time.Now()
	stopSampling()
	rep.Samples = <-samples
	if derr != nil {
		return nil, gw.failure("measured load", derr)
	}
	if gw.exited() {
		return nil, gw.failure("measured load", errors.New("cqgate exited"))
	}
	after := stub.Stats()

	// 4. At rest again, then the report.
	rep.Final, err = atRest(ctx, client, upSrv, metricsURL)
	if err != nil {
		return nil, gw.failure("final reading", err)
	}
	logf("at rest: %.0f goroutines, heap in use %.1f MiB", rep.Final.Goroutines, rep.Final.HeapInuse/(1<<20))

	records := stub.Records()
	cl := soak.NewClassifier(records, o.minInterval)
	rep.Warmup = warm.tally(cl)
	rep.Measured = meas.tally(cl)
	rep.Warmup.Recovered = soak.Recovered(records, "warm")
	rep.Measured.Recovered = soak.Recovered(records, "soak")
	rep.Behind = res.Behind
	rep.Injected = fhirstub.InjectedCounts{
		Unavailable:    after.Injected.Unavailable - before.Injected.Unavailable,
		Reset:          after.Injected.Reset - before.Injected.Reset,
		Unauthorized:   after.Injected.Unauthorized - before.Injected.Unauthorized,
		RecordsDropped: after.Injected.RecordsDropped,
		Unrecorded:     after.Injected.Unrecorded,
	}
	rep.ExpiredTokens = after.PatientExpired - before.PatientExpired
	rep.UnknownTokens = (after.PatientUnauthorized - after.PatientExpired) - (before.PatientUnauthorized - before.PatientExpired)
	rep.Exchanges.Made = sum(after.Token) - sum(before.Token)
	rep.Exchanges.Success = rep.Final.Exchanges["success"] - rep.Baseline.Exchanges["success"]
	rep.AccountExchanges(records, rep.Started, end)
	rep.Slowest = lat.Slowest()
	rep.LogLines = gw.logSummary()
	if warm.lost+meas.lost > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d answers that were not 200 were not kept (more than %d); they are missing from the tables.", warm.lost+meas.lost, maxResponses))
	}
	rep.Evaluate()
	if warm.lost+meas.lost > 0 {
		rep.Checks = append(rep.Checks, soak.Check{Name: "every answer classified", Detail: fmt.Sprintf("%d not kept", warm.lost+meas.lost)})
	}
	return rep, nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// sample reads the metrics every interval until ctx ends, each with the
// load's window since the previous one.
func sample(ctx context.Context, url string, every time.Duration, start time.Time, lat *soak.Latencies) []soak.Sample {
	var out []soak.Sample
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		win := lat.Take()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := soak.Scrape(sctx, nil, url)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				logf("metrics: %v", err)
			}
			continue
		}
		s.Window = &win
		out = append(out, s)
		logf("%s: %.0f goroutines, heap in use %.1f MiB, heap goal %.1f MiB, RSS %.1f MiB, %.0f exchanges; p99 %s, max %s, %d slow, %d behind; CPUs: cqgate %.2f, soak %.2f, others %.2f",
			s.At.Sub(start).Round(time.Second), s.Goroutines, s.HeapInuse/(1<<20), s.NextGC/(1<<20), s.RSS/(1<<20), s.Exchanges["success"],
			win.P99.Round(time.Microsecond), win.Max.Round(time.Microsecond), win.Slow, win.Behind, win.CPUCqgate, win.CPUSoak, win.CPUOther)
	}
}

// atRest closes idle connections on both sides of cqgate, again at every
// reading, and returns its metrics once the goroutine count has stayed
// within one of the same value for restSteady (at most restMax). The closing is repeated
// because a connection that was dialed but never used is not idle to
// the upstream's server until it is 5 s old (net/http: Server.
// SetKeepAlivesEnabled(false) closes StateNew connections only then).
func atRest(ctx context.Context, client *http.Client, up *http.Server, url string) (soak.Sample, error) {
	const (
		every      = 500 * time.Millisecond
		restSteady = 6 * time.Second
		restMax    = 40 * time.Second
	)
	defer up.SetKeepAlivesEnabled(true)
	deadline := time.Now().Add(restMax)
	var low soak.Sample
	var ref float64
	var since time.Time
	for {
		client.CloseIdleConnections()
		up.SetKeepAlivesEnabled(false) // closes the upstream's idle connections
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := soak.Scrape(sctx, nil, url)
		cancel()
		if err != nil {
			return soak.Sample{}, err
		}
		// The scrape itself is counted, and the previous scrape's
		// connection is sometimes not gone yet: a count one above the
		// window's first is jitter, not change. The window's lowest
		// sample is returned.
		if since.IsZero() || math.Abs(s.Goroutines-ref) > 1 {
			since, ref, low = s.At, s.Goroutines, s
		}
		if s.Goroutines < low.Goroutines {
			low = s
		}
		if s.At.Sub(since) >= restSteady {
			return low, nil
		}
		if time.Now().After(deadline) {
			logf("at rest: goroutines still changing after %s; taking %.0f", restMax, s.Goroutines)
			return s, nil
		}
		select {
		case <-ctx.Done():
			return soak.Sample{}, ctx.Err()
		case <-time.After(every):
		}
	}
}

// gateway is the cqgate child process.
type gateway struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startCqgate(o options, conf, apiKey string) (*gateway, error) {
	logPath := filepath.Join(o.workDir, "cqgate.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.cqgateBin, "-config", conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "CQGATE_DIRECTORY_API_KEY="+apiKey)
	// If soak dies, so does cqgate.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting cqgate: %w", err)
	}
	g := &gateway{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		g.err = cmd.Wait()
		lf.Close()
		close(g.done)
	}()
	if o.pidFile != "" {
		if f, err := os.OpenFile(o.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, cmd.Process.Pid)
			f.Close()
		}
	}
	return g, nil
}

func (g *gateway) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// stop ends cqgate: SIGTERM, then SIGKILL after 10 s.
func (g *gateway) stop() {
	if g.exited() {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

func (g *gateway) waitReady(ctx context.Context, url string) error {
	if _, err := loopback.CheckURL(url); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return g.failure("waiting for /readyz", ctx.Err())
		case <-g.done:
			return g.failure("waiting for /readyz", errors.New("cqgate exited"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (g *gateway) failure(what string, err error) error {
	state := "running"
	if g.exited() {
		state = fmt.Sprintf("exited: %v", g.err)
	}
	tail := ""
	if b, rerr := os.ReadFile(g.log); rerr == nil {
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		tail = strings.TrimSpace(string(b))
	}
	return fmt.Errorf("%s: %w (cqgate %s); log %s:\n%s", what, err, state, g.log, tail)
}

// logSummary counts cqgate's JSON log lines by level and message.
func (g *gateway) logSummary() map[string]int64 {
	f, err := os.Open(g.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := make(map[string]int64)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg == "" {
			out["(not JSON)"]++
			continue
		}
		out[line.Level+": "+line.Msg]++
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
}

// describeMachine says what the soak ran on.
func describeMachine() string {
	parts := []string{fmt.Sprintf("%d CPUs (nproc)", runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				parts = append(parts, strings.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			parts = append(parts, fmt.Sprintf("%.0f GiB memory", float64(kb)/(1<<20)))
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	parts = append(parts, "soak built with "+runtime.Version())
	return strings.Join(parts, ", ")
}
