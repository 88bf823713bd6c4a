// Package report holds the benchmark's results: one row per target (the
// upstream directly, a bare Go reverse proxy, nginx, cqgate), the
// cold-start burst, and the machine they ran on; it parses wrk's output
// (as printed by bench/pct.lua) into a row and renders everything as a
// Markdown report with the cqgate ratios and the targets met or missed.
//
// It also parses `go test -bench -benchmem` output (ParseGoBench) and
// renders the report's "Scale" section (the live heap per cached
// organization and the warm lookup cost at 10, 1,000 and 10,000
// organizations, from the benchmarks named .../orgs=N) and its "Go
// benchmarks" section; the gobenchmd command does that for bench/run.sh.
package report
