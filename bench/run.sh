#!/usr/bin/env bash
# bench/run.sh: what cqgate costs in the hot path of a FHIR call, next to
# what a user would deploy instead, side by side in one run on this machine.
#
# On 127.0.0.1 only, it starts a fast FHIR-like upstream (which also plays
# the Carequality directory and the token endpoint), then drives the same
# load against (1) the upstream directly, (2) a pooled Go
# httputil.ReverseProxy adding a static Authorization header, (3) the best
# plain net/http forwarder the benchmark could write (the ceiling for a Go
# proxy on net/http), (4) the same forwarder on fasthttp (a reference point
# outside net/http; cqgate does not use it), (5) nginx doing the same, and
# (6) cqgate with warm directory,
# discovery and token caches; then it fires 1,000 concurrent first
# requests at cqgate for an organization it has not seen (the cold start).
#
# Fair by construction: the proxy under test is pinned to one CPU and the
# load generator and upstream to the other (taskset, util-linux), every
# pass takes turns with the other targets' (ABAB…, the fixed-rate passes
# too) over --rounds rounds, and the report gives min/median/max over the
# rounds. The headline is CPU per request at the same offered rate
# (utime+stime of the proxy process from /proc/<pid>/stat over the pass),
# beside saturated throughput. The Markdown report goes to stdout and to
# bench/results/latest.md (machine-readable: latest.json, which
# `go run ./bench/cmd/charts` draws into docs/img/*.svg).
#
# It installs nothing. wrk and nginx come from Debian (as root:
# apt-get install wrk nginx-light); without wrk the Go load generator
# drives the saturating passes, without nginx its row is skipped.
#
# Usage: bench/run.sh [options]
#   --quick              CI mode (< 1 min): 3 rounds of 1 s per pass, 16 connections, a 200-request cold start
#   --duration D         measured load per target (default 15s; env BENCH_DURATION)
#   --rounds N           split it into N turns, the targets alternating (default 3)
#   --no-pin             do not pin the proxy and the load to separate CPUs
#   --warmup D           unmeasured load per target before it (default 2s)
#   --connections N      connections of the saturating runs (default 64)
#   --threads N          wrk threads (default 2)
#   --rate R             requests/s of the fixed-rate latency runs (default 2000; 0 skips them)
#   --rate-duration D    fixed-rate load per target, over all rounds (default 15s)
#   --cold N             concurrent first requests of the cold start (default 1000; 0 skips)
#   --cold-only          skip the load passes: start the targets, warm cqgate, run only the cold start
#   --cold-probe DIR     during the cold start, save cqgate's RSS timeline, heap and goroutine
#                        profiles and Go runtime metrics into DIR (an admin listener with pprof;
#                        the sampling costs cqgate CPU, so the probe's own figures are not reported)
#   --orgs N             also compare cqgate serving 10 warm organizations with cqgate serving N
#                        (e.g. 10000), the fixed-rate load spread at random over them, in rounds of
#                        their own (issue 18: CPU per request within 10 %; default 0 skips it;
#                        env BENCH_ORGS)
#   --orgs-only          run only the --orgs comparison: no other target, no cold start
#   --org-hosts N        spread the organizations' FHIR servers over N partner hosts (loopback
#                        ports of the stub), as partners on hosts of their own; default 0 puts
#                        them all on one host, as the tenants of one vendor are (env BENCH_ORG_HOSTS)
#   --targets LIST       comma-separated subset of direct,bare,bare-pool,nethttp,fasthttp,nginx,cqgate
#                        (default direct,bare-pool,nethttp,fasthttp,nginx,cqgate; bare is ReverseProxy
#                        without a pool; fasthttp is the same forwarder as nethttp on fasthttp, a
#                        reference point outside net/http)
#   --cqgate-bin PATH    use this cqgate binary instead of building it with scripts/build.sh (as shipped)
#   --loadgen            use the built-in Go load generator even if wrk is installed
#   --out FILE           report path (default bench/results/latest.md)
#   --go-bench           afterwards, run the packages' Go benchmarks (go test -bench -benchmem:
#                        parsing, the 10,000-organization scale study, the hot path, signing)
#                        and add their "Scale" and "Go benchmarks" sections to the report
#   --go-bench-only      only the Go benchmarks: no load, no cqgate build; a report of their own
#   --go-benchtime D     go test -benchtime for them (default 1s; --quick: 200ms; env BENCH_GO_BENCHTIME)
#   --go-bench-count N   go test -count for them; the report shows each number's median (default 1)
#   --profile            afterwards, CPU-profile cqgate in-process (bench/gatewaybench)
#   --keep               keep the scratch directory (configs, logs) for inspection
#
# Exit status: 0 when every answer was 2xx and the cold start made exactly
# one token exchange (and, with --go-bench, every Go benchmark passed its
# own checks), whatever the performance numbers; 1 on such a functional
# failure; 2 when the benchmark could not be set up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-15s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
RATE=${BENCH_RATE:-2000}
RATE_DURATION=${BENCH_RATE_DURATION:-15s}
RATE_CONNECTIONS=${BENCH_RATE_CONNECTIONS:-64}
COLD=${BENCH_COLD:-1000}
ORGS=${BENCH_ORGS:-0}
ORGS_ONLY=0
ORG_HOSTS=${BENCH_ORG_HOSTS:-0}
TARGETS=${BENCH_TARGETS:-direct,bare-pool,nethttp,fasthttp,nginx,cqgate}
CQGATE_BIN=${BENCH_CQGATE_BIN:-}
OUT=${BENCH_OUT:-$ROOT/bench/results/latest.md}
USE_WRK=1
PIN=1
GO_BENCH=0
GO_BENCH_ONLY=0
GO_BENCHTIME=${BENCH_GO_BENCHTIME:-1s}
GO_BENCH_COUNT=${BENCH_GO_BENCH_COUNT:-1}
PROFILE=0
KEEP=0
COLD_ONLY=0
COLD_PROBE=""
ARGS="$*"

die() { echo "run.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick)
		DURATION=3s ROUNDS=3 WARMUP=1s CONNECTIONS=16 RATE=1000 RATE_DURATION=3s RATE_CONNECTIONS=16 COLD=200 GO_BENCHTIME=200ms
		;;
	--duration) need "$@"; DURATION=$2; shift ;;
	--rounds) need "$@"; ROUNDS=$2; shift ;;
	--warmup) need "$@"; WARMUP=$2; shift ;;
	--connections) need "$@"; CONNECTIONS=$2; shift ;;
	--threads) need "$@"; THREADS=$2; shift ;;
	--rate) need "$@"; RATE=$2; shift ;;
	--rate-duration) need "$@"; RATE_DURATION=$2; shift ;;
	--cold) need "$@"; COLD=$2; shift ;;
	--cold-only) COLD_ONLY=1 ;;
	--orgs) need "$@"; ORGS=$2; shift ;;
	--orgs-only) ORGS_ONLY=1 ;;
	--org-hosts) need "$@"; ORG_HOSTS=$2; shift ;;
	--cold-probe) need "$@"; COLD_PROBE=$2; shift ;;
	--targets) need "$@"; TARGETS=$2; shift ;;
	--cqgate-bin) need "$@"; CQGATE_BIN=$2; shift ;;
	--out) need "$@"; OUT=$2; shift ;;
	--loadgen) USE_WRK=0 ;;
	--no-install) ;; # accepted for old scripts: nothing is ever installed
	--no-pin) PIN=0 ;;
	--go-bench) GO_BENCH=1 ;;
	--go-bench-only) GO_BENCH=1 GO_BENCH_ONLY=1 ;;
	--go-benchtime) need "$@"; GO_BENCHTIME=$2; shift ;;
	--go-bench-count) need "$@"; GO_BENCH_COUNT=$2; shift ;;
	--profile) PROFILE=1 ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (try --help)" ;;
	esac
	shift
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cqgate-bench.XXXXXX")
PIDS="$TMP/pids"
: >"$PIDS"
cleanup() {
	local pid
	# Every process the benchmark started, by pid (benchrun appends them).
	while read -r pid; do
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done <"$PIDS"
	sleep 0.2
	while read -r pid; do
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	done <"$PIDS"
	if [ "$KEEP" = 1 ]; then
		echo "run.sh: scratch directory kept: $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rc=0
mkdir -p "$(dirname "$OUT")"
if [ "$GO_BENCH_ONLY" = 0 ]; then
	# wrk and nginx come from Debian's packages; the harness installs
	# nothing itself.
	find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
	if ! command -v wrk >/dev/null || [ -z "$(find_nginx)" ]; then
		echo "run.sh: wrk or nginx is missing; to compare with them, install Debian's packages: apt-get install wrk nginx-light" >&2
	fi
	# Pinning: the proxy under test on one CPU, the load generator and
	# the upstream on another.
	TASKSET="" PROXY_CPUS="" LOAD_CPUS=""
	if [ "$PIN" = 1 ]; then
		if ! command -v taskset >/dev/null; then
			echo "run.sh: WARNING: taskset (util-linux) is not installed: nothing is pinned, and every process competes for every CPU" >&2
		else
			mapfile -t CPUS < <(taskset -cp $$ | sed 's/.*: //' | tr ',' '\n' |
				awk -F- '{ if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1 }')
			if [ "${#CPUS[@]}" -lt 2 ]; then
				echo "run.sh: WARNING: only ${#CPUS[@]} CPU available: nothing is pinned" >&2
			else
				TASKSET=$(command -v taskset) PROXY_CPUS=${CPUS[0]} LOAD_CPUS=${CPUS[1]}
				echo "run.sh: the proxy under test runs on CPU $PROXY_CPUS, the load generator and the upstream on CPU $LOAD_CPUS" >&2
			fi
		fi
	fi
	WRK=""
	if [ "$USE_WRK" = 1 ] && command -v wrk >/dev/null; then WRK=$(command -v wrk); fi
	[ -n "$WRK" ] || echo "run.sh: wrk not used: the built-in Go load generator drives the saturating runs" >&2
	NGINX=$(find_nginx)
	[ -n "$NGINX" ] || echo "run.sh: nginx is not installed: its row is skipped" >&2

	echo "run.sh: building the bench tools" >&2
	mkdir -p "$TMP/bin"
	go build -o "$TMP/bin/" ./bench/cmd/upstream ./bench/cmd/bareproxy ./bench/cmd/benchrun ||
		die "building bench/cmd failed"
	if [ -z "$CQGATE_BIN" ]; then
		echo "run.sh: building ./cmd/cqgate" >&2
		scripts/build.sh "$TMP/bin/cqgate" ||
			die "building ./cmd/cqgate failed (a package mid-edit?); pass --cqgate-bin to use a built binary"
		CQGATE_BIN="$TMP/bin/cqgate"
		CQGATE_DESC="built from this work tree"
		if rev=$(git rev-parse --short HEAD 2>/dev/null); then
			CQGATE_DESC="commit $rev"
			git diff --quiet HEAD -- . ':(exclude)bench' ':(exclude)docs' 2>/dev/null ||
				CQGATE_DESC="$CQGATE_DESC with uncommitted changes"
		fi
	else
		CQGATE_DESC="the binary $CQGATE_BIN"
	fi

	# The cold start holds ~2 file descriptors per request in cqgate.
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((2 * COLD + 256)) ]; then
		echo "run.sh: only $(ulimit -n) open files allowed; the cold start may fail with $COLD requests" >&2
	fi

	PINNED=()
	if [ -n "$TASKSET" ]; then PINNED=("$TASKSET" -c "$LOAD_CPUS"); fi
	"${PINNED[@]}" "$TMP/bin/benchrun" \
		-taskset "$TASKSET" -proxy-cpus "$PROXY_CPUS" -load-cpus "$LOAD_CPUS" \
		-bin "$TMP/bin" -cqgate "$CQGATE_BIN" -wrk "$WRK" -nginx "$NGINX" -lua "$ROOT/bench/pct.lua" \
		-workdir "$TMP" -pidfile "$PIDS" -out "$OUT" -command "bench/run.sh${ARGS:+ $ARGS}" \
		-duration "$DURATION" -rounds "$ROUNDS" -warmup "$WARMUP" -connections "$CONNECTIONS" -threads "$THREADS" \
		-rate "$RATE" -rate-duration "$RATE_DURATION" -rate-connections "$RATE_CONNECTIONS" \
		-cold "$COLD" -cold-only="$([ "$COLD_ONLY" = 1 ] && echo true || echo false)" -cold-probe "$COLD_PROBE" -targets "$TARGETS" -cqgate-desc "$CQGATE_DESC" \
		-orgs "$ORGS" -org-hosts "$ORG_HOSTS" -orgs-only="$([ "$ORGS_ONLY" = 1 ] && echo true || echo false)" || rc=$?
fi

if [ "$GO_BENCH" = 1 ]; then
	# The packages that have benchmarks, with their names as written:
	# parsing (directory, discovery), the scale study (directory,
	# discovery, tenant: .../orgs=10|1000|10000 with B/org), signing and
	# the token cache (assertion), the hot path (proxy, api).
	PKGS=()
	for p in directory discovery tenant assertion proxy api; do
		if grep -qs '^func Benchmark' "$p"/*_test.go; then PKGS+=("./$p/"); fi
	done
	# And the whole gateway handler as gateway.New builds it, in memory
	# (bench/gatewaybench's BenchmarkHandler; its loopback load
	# benchmarks are --profile's).
	GO_BENCH_FLAGS=(-run=NONE -benchmem -benchtime="$GO_BENCHTIME" -count="$GO_BENCH_COUNT")
	GOBENCH_CMD="go test -run=NONE -bench=. -benchmem -benchtime=$GO_BENCHTIME -count=$GO_BENCH_COUNT ${PKGS[*]}; go test -run=NONE -bench=BenchmarkHandler -benchmem -benchtime=$GO_BENCHTIME -count=$GO_BENCH_COUNT ./bench/gatewaybench/"
	if [ ${#PKGS[@]} -gt 0 ]; then
		echo "run.sh: $GOBENCH_CMD" >&2
		# Progress to stderr; the sections go to stdout and the report.
		{
			go test "${GO_BENCH_FLAGS[@]}" -bench=. -timeout=60m "${PKGS[@]}" 2>&1 || true
			go test "${GO_BENCH_FLAGS[@]}" -bench=BenchmarkHandler -timeout=10m ./bench/gatewaybench/ 2>&1 || true
		} | tee "$(dirname "$OUT")/gobench.txt" >&2
		APPEND=(-append)
		if [ "$GO_BENCH_ONLY" = 1 ]; then APPEND=(); fi
		grc=0
		go run ./bench/cmd/gobenchmd -in "$(dirname "$OUT")/gobench.txt" -out "$OUT" "${APPEND[@]}" \
			-json "$(dirname "$OUT")/gobench.json" -command "$GOBENCH_CMD" || grc=$?
		if [ "$grc" = 1 ]; then
			# A benchmark failed its own checks (or did not build).
			echo "run.sh: some Go benchmarks failed; see the report's Go benchmarks section" >&2
			if [ "$rc" = 0 ]; then rc=1; fi
		elif [ "$grc" != 0 ]; then
			echo "run.sh: could not render the Go benchmarks (exit $grc)" >&2
			if [ "$rc" = 0 ]; then rc=2; fi
		fi
	else
		echo "run.sh: no package has Go benchmarks yet" >&2
	fi
fi

if [ "$PROFILE" = 1 ]; then
	echo "run.sh: CPU profile of cqgate's handler under load (bench/gatewaybench)" >&2
	(cd bench/gatewaybench &&
		go test -run=NONE -bench=BenchmarkGateway -benchtime=10s -cpuprofile "$TMP/cpu.prof" -o "$TMP/gatewaybench.test" . &&
		echo "== cqgate's share of all samples (the rest: load generator, stub, unlabelled runtime work)" &&
		{ go tool pprof -top -nodecount=1000000 -nodefraction=0 -tagfocus=role=gateway "$TMP/gatewaybench.test" "$TMP/cpu.prof" | grep 'Showing nodes' || true; } &&
		echo "== flat (go tool pprof -top -tagfocus=role=gateway)" &&
		go tool pprof -top -nodecount=30 -tagfocus=role=gateway "$TMP/gatewaybench.test" "$TMP/cpu.prof" &&
		echo "== cumulative (go tool pprof -top -cum -tagfocus=role=gateway)" &&
		go tool pprof -top -cum -nodecount=60 -tagfocus=role=gateway "$TMP/gatewaybench.test" "$TMP/cpu.prof") |
		tee "$(dirname "$OUT")/profile.txt" || true
fi
exit "$rc"
