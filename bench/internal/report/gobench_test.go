package report

import (
	"strings"
	"testing"
)

const goBenchOut = `goos: linux
goarch: amd64
pkg: github.com/cqgate/cqgate/directory
cpu: AMD EPYC
BenchmarkParseOrganization/R4-JSON/sphd-fixture-2         	   45088	     26690 ns/op	 240.44 MB/s	   22584 B/op	     288 allocs/op
BenchmarkLookupWarm/orgs=10-2         	 5000000	       250.0 ns/op	      48 B/op	       1 allocs/op
BenchmarkLookupWarm/orgs=1000-2       	 5000000	       260.0 ns/op	      1500 B/org	      48 B/op	       1 allocs/op
BenchmarkLookupWarm/orgs=10000-2      	 4000000	       300.0 ns/op	      1445 B/org	      48 B/op	       1 allocs/op
PASS
ok  	github.com/cqgate/cqgate/directory	12.3s
goos: linux
pkg: github.com/cqgate/cqgate/tenant
BenchmarkResolveWarm/orgs=10-2         	  300000	      4000 ns/op	    2840 B/op	      30 allocs/op
BenchmarkResolveWarm/orgs=10-2         	  300000	      3000 ns/op	    2840 B/op	      30 allocs/op
BenchmarkResolveWarm/orgs=10-2         	  300000	      5000 ns/op	    2840 B/op	      30 allocs/op
BenchmarkResolveWarm/orgs=1000-2       	  300000	      4400 ns/op	      3228 B/org	    2840 B/op	      30 allocs/op
BenchmarkResolveWarm/orgs=10000-2      	  300000	      6000 ns/op	      3139 B/org	    2840 B/op	      30 allocs/op
BenchmarkNoMem-2      	  300000	      6000 ns/op
--- FAIL: BenchmarkBroken
    bench_test.go:12: boom
FAIL
FAIL	github.com/cqgate/cqgate/tenant	30.1s
FAIL	github.com/cqgate/cqgate/proxy [build failed]
`

func TestParseGoBench(t *testing.T) {
	r := ParseGoBench(goBenchOut)
	if len(r.Benchmarks) != 8 {
		t.Fatalf("%d benchmarks: %+v", len(r.Benchmarks), r.Benchmarks)
	}
	p := r.Find("BenchmarkParseOrganization/R4-JSON/sphd-fixture")
	if p == nil || p.Package != "github.com/cqgate/cqgate/directory" || p.N != 45088 || p.NsPerOp != 26690 ||
		p.BytesPerOp != 22584 || p.AllocsPerOp != 288 || p.Metrics[UnitMBPerS] != 240.44 {
		t.Errorf("parse benchmark: %+v", p)
	}
	rw := r.Find("BenchmarkResolveWarm/orgs=10")
	if rw == nil || rw.Runs != 3 || rw.NsPerOp != 4000 || rw.Package != "github.com/cqgate/cqgate/tenant" {
		t.Errorf("median of three runs: %+v", rw)
	}
	if nm := r.Find("BenchmarkNoMem"); nm == nil || nm.BytesPerOp != -1 || nm.AllocsPerOp != -1 {
		t.Errorf("without -benchmem: %+v", nm)
	}
	wantFail := []string{"--- FAIL: BenchmarkBroken", "FAIL", "FAIL\tgithub.com/cqgate/cqgate/tenant\t30.1s", "FAIL\tgithub.com/cqgate/cqgate/proxy [build failed]"}
	if strings.Join(r.Failures, "|") != strings.Join(wantFail, "|") {
		t.Errorf("failures %q, want %q", r.Failures, wantFail)
	}
}

func TestParseGoBenchSkipsMalformedLines(t *testing.T) {
	for _, line := range []string{
		"BenchmarkX-2",
		"BenchmarkX-2 notanumber 5 ns/op",
		"BenchmarkX-2 0 5 ns/op",
		"BenchmarkX-2 10 NaN ns/op",
		"BenchmarkX-2 10 5",
		"BenchmarkX-2 10 5 B/op 3 allocs/op",
		"Benchmarking is fun",
	} {
		if r := ParseGoBench(line + "\n"); len(r.Benchmarks) != 0 {
			t.Errorf("%q parsed as %+v", line, r.Benchmarks)
		}
	}
}

func TestScaleAndMarkdown(t *testing.T) {
	r := ParseGoBench(goBenchOut)
	rows := r.Scale()
	if len(rows) != 2 || rows[0].Benchmark != "BenchmarkLookupWarm" || rows[1].Benchmark != "BenchmarkResolveWarm" {
		t.Fatalf("scale rows %+v", rows)
	}
	if f := rows[0].Flatness(); f != 1.2 {
		t.Errorf("lookup flatness %v, want 1.2", f)
	}
	if f := rows[1].Flatness(); f != 1.5 {
		t.Errorf("resolve flatness %v, want 1.5 (median 4000 at 10)", f)
	}
	md := r.Markdown("go test -bench . ./directory/ ./tenant/")
	for _, want := range []string{
		"## Scale: 10,000 cached organizations",
		"| directory cache (`directory.Resolver.Lookup`) — `LookupWarm` | 1500 B | 1445 B | 250 | 260 | 300 | 1.20× |",
		"| tenant resolution over both (`tenant.Resolver.Resolve`) — `ResolveWarm` | 3228 B | 3139 B | 4,000 | 4,400 | 6,000 | 1.50× |",
		"Target ≤ 2048 B per cached organization (directory + discovery caches, kept for their TTL): 3139 B at 10,000 — **missed**, by 1091 B (53%).",
		"is 1.50× the cost at 10",
		"## Go benchmarks",
		"`go test -bench . ./directory/ ./tenant/`",
		"| directory | ParseOrganization/R4-JSON/sphd-fixture | 26,690 | 22,584 | 288 | 240.4 MB/s |",
		"| tenant | NoMem | 6,000 | – | – |  |",
		"| tenant | ResolveWarm/orgs=10000 | 6,000 | 2,840 | 30 | 3,139 B/org |",
		"- FAIL: `FAIL\tgithub.com/cqgate/cqgate/proxy [build failed]`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownWithoutBenchmarks(t *testing.T) {
	md := ParseGoBench("").Markdown("")
	if !strings.Contains(md, "No scale benchmarks ran") || !strings.Contains(md, "No benchmark results.") {
		t.Errorf("empty Markdown:\n%s", md)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 100000: "100,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFmtNs(t *testing.T) {
	for v, want := range map[float64]string{0.5: "0.50", 7.126: "7.13", 71.34: "71.3", 100: "100", 4499.6: "4,500", 1234567: "1,234,567"} {
		if got := fmtNs(v); got != want {
			t.Errorf("fmtNs(%v) = %q, want %q", v, got, want)
		}
	}
}
