// Command loadgen is the benchmark's own load generator (package
// bench/internal/load), for machines without wrk and for fixed-rate and
// burst runs wrk cannot do. It prints its result as JSON (durations in
// nanoseconds).
//
//	loadgen -c 64 -d 15s [-rate 5000] URL          closed loop, or a fixed rate
//	loadgen -burst 1000 URL                        N first requests released together
//	loadgen -c 64 -d 15s -rate 2000 -urls FILE     spread over FILE's URLs, one per line
//
// The Authorization header comes from the environment variable named by
// -authorization-env (BENCH_AUTHORIZATION), never from the command line.
// Only loopback http URLs are accepted.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cqgate/cqgate/bench/internal/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run() error {
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 15*time.Second, "duration")
	rate := flag.Float64("rate", 0, "total requests per second (0: as fast as answers come)")
	burst := flag.Int("burst", 0, "send this many concurrent first requests instead of a timed run")
	timeout := flag.Duration("timeout", load.DefaultTimeout, "per-request timeout (burst: for the whole burst)")
	urlsFile := flag.String("urls", "", "file of loopback URLs on one host, one per line: spread the timed run over them instead of URL")
	authEnv := flag.String("authorization-env", "BENCH_AUTHORIZATION", "environment variable with an Authorization header value to send")
	flag.Parse()
	var url string
	var urls []string
	switch {
	case *urlsFile != "" && flag.NArg() == 0 && *burst == 0:
		b, err := os.ReadFile(*urlsFile)
		if err != nil {
			return err
		}
		urls = strings.Fields(string(b))
		if len(urls) == 0 {
			return fmt.Errorf("%s lists no URL", *urlsFile)
		}
	case *urlsFile == "" && flag.NArg() == 1:
		url = flag.Arg(0)
	default:
		return fmt.Errorf("want exactly one URL, or -urls FILE (not with -burst)")
	}
	header := http.Header{}
	if v := os.Getenv(*authEnv); v != "" {
		header.Set("Authorization", v)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if *burst > 0 {
		res, err := load.Burst(ctx, load.BurstConfig{URL: url, Header: header, N: *burst, Timeout: *timeout})
		if err != nil {
			return err
		}
		return enc.Encode(res)
	}
	res, err := load.Run(ctx, load.Config{URL: url, URLs: urls, Header: header, Connections: *conns, Duration: *dur, Timeout: *timeout, Rate: *rate})
	if res != nil {
		if eerr := enc.Encode(struct {
			*load.Result
			RPS    float64
			Non2xx int64
		}{res, res.RPS(), res.Non2xx()}); eerr != nil {
			return eerr
		}
	}
	return err
}
