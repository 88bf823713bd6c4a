// Command gobenchmd turns `go test -bench -benchmem` output into the
// "Scale" and "Go benchmarks" sections of the benchmark report
// (bench/internal/report), prints them, and appends them to the report
// file or writes a report of its own. bench/run.sh --go-bench runs it.
//
//	gobenchmd -in gobench.txt -out bench/results/latest.md -append -json bench/results/gobench.json
//
// It exits 1 when the output records failed benchmarks or packages that
// did not build, 2 when it cannot read or write its files.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/cqgate/cqgate/bench/internal/report"
)

func main() {
	in := flag.String("in", "", "go test -bench output to read (default: standard input)")
	out := flag.String("out", "", "report file to write the sections to (none: only print them)")
	appendTo := flag.Bool("append", false, "append to -out (the load benchmark's report) instead of writing a report of its own")
	jsonOut := flag.String("json", "", "also write the parsed results here as JSON")
	command := flag.String("command", "", "the go test command, shown in the report")
	flag.Parse()

	res, err := run(*in, *out, *appendTo, *jsonOut, *command, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobenchmd:", err)
		os.Exit(2)
	}
	if len(res.Failures) > 0 {
		fmt.Fprintf(os.Stderr, "gobenchmd: %d benchmark failure line(s)\n", len(res.Failures))
		os.Exit(1)
	}
}

func run(in, out string, appendTo bool, jsonOut, command string, stdout io.Writer) (*report.GoBenchResult, error) {
	var raw []byte
	var err error
	if in == "" {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	} else {
		raw, err = os.ReadFile(in)
	}
	if err != nil {
		return nil, err
	}
	res := report.ParseGoBench(string(raw))
	md := res.Markdown(command)
	if _, err := io.WriteString(stdout, md); err != nil {
		return nil, err
	}
	if out != "" {
		if err := write(out, appendTo, md); err != nil {
			return nil, err
		}
	}
	if jsonOut != "" {
		js, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(jsonOut, js, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func write(path string, appendTo bool, md string) error {
	if !appendTo {
		header := fmt.Sprintf("# cqgate Go benchmark results\n\n- When: %s\n- Machine: %d CPUs (GOMAXPROCS %d), %s/%s\n- Go: %s\n",
			time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
		return os.WriteFile(path, []byte(header+md), 0o644)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, md); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
