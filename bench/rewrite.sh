#!/usr/bin/env bash
# bench/rewrite.sh: the cost of rewriting partner URLs in a searchset
# Bundle (proxy/fhirurl) against plain pass-through, for a 1 MiB and a
# 100 MiB Bundle generated as it is read (never held in memory), every
# entry carrying three URLs that map.
#
#   BenchmarkBundle       in process: io.Copy of the generated Bundle,
#                         straight (pass) or through the JSON rewriter
#   BenchmarkProxyBundle  through an httputil.ReverseProxy on 127.0.0.1
#                         (upstream → proxy → client, all in this
#                         process), ModifyResponse rewriting or not
#   through cqgate        bench/cmd/rewritebench: the same Bundles from an
#                         upstream through a real cqgate process, served
#                         as application/octet-stream (passed untouched)
#                         and as application/fhir+json (rewritten), a
#                         fresh process each: cqgate's CPU per MiB (from
#                         /proc) and its peak RSS (VmHWM)
#
# It prints go test's lines, then per size the ratio rewrite ÷ pass of
# wall time (ns/op) and of process CPU time (cpu-ns/MiB, user + system,
# from getrusage: on a shared machine the honest figure), and the peak
# HeapInuse seen (peak-heap-MiB). Target: CPU ratio ≤ 1.5 through the
# proxy, flat heap (a few MiB) at 100 MiB.
#
# Usage: bench/rewrite.sh [-benchtime 3x] [-count 1] [-no-cqgate]
# Runs well under a minute on an idle two-core machine.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCHTIME=3x
COUNT=1
THROUGH_CQGATE=1
while [ $# -gt 0 ]; do
	case "$1" in
	-benchtime) BENCHTIME=$2; shift 2 ;;
	-count) COUNT=$2; shift 2 ;;
	-no-cqgate) THROUGH_CQGATE=0; shift ;;
	*) echo "usage: $0 [-benchtime N] [-count N] [-no-cqgate]" >&2; exit 2 ;;
	esac
done
out=$(go test -run '^$' -bench 'Bundle$' -benchtime "$BENCHTIME" -count "$COUNT" ./proxy/fhirurl)
echo "$out"
echo
echo "$out" | awk '
/^Benchmark/ {
	split($1, part, "/"); bench = part[1]; size = part[2]; mode = part[3]; sub(/-[0-9]+$/, "", mode)
	key = bench "/" size
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ns/op") ns[key, mode] += $i
		if ($(i+1) == "cpu-ns/MiB") cpu[key, mode] += $i
		if ($(i+1) == "peak-heap-MiB" && $i > heap[key, mode]) heap[key, mode] = $i
	}
	n[key, mode]++
	if (!(key in seen)) { seen[key] = 1; order[++k] = key }
}
END {
	printf "%-28s %10s %10s %12s %12s %12s %12s\n", "benchmark", "wall ×", "cpu ×", "pass cpu/MiB", "rw cpu/MiB", "rw MiB/cpu-s", "peak heap"
	for (j = 1; j <= k; j++) {
		key = order[j]
		if (ns[key, "pass"] == 0 || cpu[key, "pass"] == 0) continue
		mbs = 1e9 / (cpu[key, "rewrite"] / n[key, "rewrite"])
		printf "%-28s %10.2f %10.2f %9.2f ms %9.2f ms %12.0f %8.1f MiB\n", key,
			ns[key, "rewrite"] / ns[key, "pass"], cpu[key, "rewrite"] / cpu[key, "pass"],
			cpu[key, "pass"] / n[key, "pass"] / 1e6, cpu[key, "rewrite"] / n[key, "rewrite"] / 1e6,
			mbs, heap[key, "rewrite"]
	}
}'

if [ "$THROUGH_CQGATE" = 1 ]; then
	echo
	echo "Through cqgate (bench/cmd/rewritebench):"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	go build -o "$tmp/cqgate" ./cmd/cqgate
	go run ./bench/cmd/rewritebench -cqgate "$tmp/cqgate"
fi
