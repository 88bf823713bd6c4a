package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/bench/internal/report"
)

const out = `pkg: github.com/cqgate/cqgate/tenant
BenchmarkResolveWarm/orgs=10-2   	  300000	      4000 ns/op	    2840 B/op	      30 allocs/op
BenchmarkResolveWarm/orgs=10000-2	  300000	      4400 ns/op	      3139 B/org	    2840 B/op	      30 allocs/op
`

func TestRunAppendsAndWritesJSON(t *testing.T) {
	dir := t.TempDir()
	in, md, js := filepath.Join(dir, "gobench.txt"), filepath.Join(dir, "latest.md"), filepath.Join(dir, "gobench.json")
	if err := os.WriteFile(in, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte("# load report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	res, err := run(in, md, true, js, "go test -bench . ./tenant/", &stdout)
	if err != nil || len(res.Benchmarks) != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	got, _ := os.ReadFile(md)
	if !strings.HasPrefix(string(got), "# load report\n") || !strings.HasSuffix(string(got), stdout.String()) ||
		!strings.Contains(stdout.String(), "## Scale") || !strings.Contains(stdout.String(), "`go test -bench . ./tenant/`") {
		t.Errorf("report:\n%s\nstdout:\n%s", got, stdout.String())
	}
	var back report.GoBenchResult
	raw, _ := os.ReadFile(js)
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Benchmarks) != 2 || back.Benchmarks[1].Metrics["B/org"] != 3139 {
		t.Errorf("JSON %s: %v", raw, err)
	}
}

func TestRunWritesAReportOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	in, md := filepath.Join(dir, "gobench.txt"), filepath.Join(dir, "latest.md")
	if err := os.WriteFile(in, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte("# an old report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(in, md, false, "", "", &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	if !strings.HasPrefix(string(got), "# cqgate Go benchmark results\n") || strings.Contains(string(got), "old report") {
		t.Errorf("report:\n%s", got)
	}
}

func TestRunMissingInput(t *testing.T) {
	if _, err := run(filepath.Join(t.TempDir(), "missing"), "", false, "", "", &bytes.Buffer{}); err == nil {
		t.Fatal("no error for a missing input")
	}
}
