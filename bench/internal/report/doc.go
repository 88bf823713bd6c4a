// Package report holds the benchmark's results: one row per target (the
// upstream directly, a bare Go reverse proxy, nginx, cqgate), the
// cold-start burst, and the machine they ran on; it parses wrk's output
// (as printed by bench/pct.lua) into a row and renders everything as a
// Markdown report with the cqgate ratios and the targets met or missed.
package report
