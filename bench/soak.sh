#!/usr/bin/env bash
# bench/soak.sh: a bounded soak of cqgate on 127.0.0.1 — a steady load for
# a fixed time against an upstream whose access tokens expire every 60 s
# and whose FHIR server now and then answers 503, resets the connection
# or refuses a valid token — and a report of every answer that was not
# explained by an injected failure, of the token exchanges, and of
# cqgate's goroutines and heap at rest before and after and under load.
#
# It builds ./cmd/cqgate and bench/cmd/soak, runs the soak (the upstream
# inside the soak process, cqgate as its child, both on loopback only),
# and writes the Markdown report to stdout and bench/results/soak.md
# (and soak.json). It stops by itself: the measured phase is at most 2 h
# and the whole run is bounded by --duration plus 15 minutes.
#
# Usage: bench/soak.sh [options]
#   --duration D         measured load (default 10m; at most 2h)
#   --warmup D           load before the baseline is taken (default 20s)
#   --rate R             requests per second, open loop (default 200)
#   --oids N             organizations, used in turn (default 5)
#   --token-lifetime D   the upstream's expires_in (default 60s)
#   --refresh-margin D   cqgate tokens.refresh_margin (default 10s)
#   --refresh-ahead D    cqgate tokens.refresh_ahead (default 10s)
#   --min-interval D     cqgate tokens.min_interval (default 5s)
#   --fail-503 P         probability of an injected 503 per FHIR attempt (default 0.005)
#   --fail-reset P       ... of a connection reset (default 0.002)
#   --fail-401 P         ... of a 401 for a valid token (default 0.0005)
#   --sample-every D     read cqgate's metrics this often under load (default 30s)
#   --goroutine-slack N  goroutines allowed above the baseline (default organizations + 10)
#   --heap-factor F      heap growth allowed, end ÷ start (default 1.5)
#   --cqgate-bin PATH    use this cqgate binary instead of building ./cmd/cqgate
#   --out FILE           report path (default bench/results/soak.md)
#   --keep               keep the scratch directory (configuration, cqgate's log)
#
# Exit status: 0 PASS, 1 FAIL, 2 the soak could not be set up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=10m
CQGATE_BIN=""
OUT="$ROOT/bench/results/soak.md"
KEEP=0
PASS=()
ARGS="$*"

die() { echo "soak.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--duration) need "$@"; DURATION=$2; shift ;;
	--warmup | --rate | --oids | --token-lifetime | --refresh-margin | --refresh-ahead | --min-interval | \
		--fail-503 | --fail-reset | --fail-401 | --sample-every | --goroutine-slack | --heap-factor)
		need "$@"; PASS+=("-${1#--}" "$2"); shift ;;
	--cqgate-bin) need "$@"; CQGATE_BIN=$2; shift ;;
	--out) need "$@"; OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (try --help)" ;;
	esac
	shift
done

# The whole run's bound: the measured phase plus 15 minutes for building,
# the warm-up, the readings at rest and the report.
dur_secs=$(awk -v d="$DURATION" 'BEGIN {
	t = 0
	while (match(d, /^[0-9]+(\.[0-9]+)?(h|ms|m|s)/)) {
		u = substr(d, RSTART, RLENGTH); d = substr(d, RLENGTH + 1)
		n = u + 0
		if (u ~ /ms$/) t += n / 1000; else if (u ~ /h$/) t += n * 3600; else if (u ~ /m$/) t += n * 60; else t += n
	}
	if (d != "" || t <= 0) { print -1; exit }
	printf "%d\n", t + 0.999
}')
[ "$dur_secs" -gt 0 ] 2>/dev/null || die "--duration $DURATION is not a Go duration such as 10m"
[ "$dur_secs" -le 7200 ] || die "--duration $DURATION is longer than 2h"
BOUND=$((dur_secs + 900))

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cqgate-soak.XXXXXX")
PIDS="$TMP/pids"
: >"$PIDS"
SOAK_PID=""
cleanup() {
	local pid
	# Only what this script started, by pid: the soak, then cqgate (which
	# dies with the soak anyway: it is started with a parent-death signal).
	[ -n "$SOAK_PID" ] && kill -TERM "$SOAK_PID" 2>/dev/null || true
	while read -r pid; do
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done <"$PIDS"
	sleep 0.2
	[ -n "$SOAK_PID" ] && kill -KILL "$SOAK_PID" 2>/dev/null || true
	while read -r pid; do
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	done <"$PIDS"
	if [ "$KEEP" = 1 ]; then
		echo "soak.sh: scratch directory kept: $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak.sh: building bench/cmd/soak" >&2
mkdir -p "$TMP/bin"
go build -o "$TMP/bin/soak" ./bench/cmd/soak || die "building bench/cmd/soak failed"
if [ -z "$CQGATE_BIN" ]; then
	echo "soak.sh: building ./cmd/cqgate" >&2
	scripts/build.sh "$TMP/bin/cqgate" ||
		die "building ./cmd/cqgate failed (a package mid-edit?); pass --cqgate-bin to use a built binary"
	CQGATE_BIN="$TMP/bin/cqgate"
	CQGATE_DESC="built from this work tree"
	if rev=$(git rev-parse --short HEAD 2>/dev/null); then
		CQGATE_DESC="commit $rev"
		git diff --quiet HEAD -- . ':(exclude)bench' ':(exclude)docs' ':(exclude)scripts' 2>/dev/null ||
			CQGATE_DESC="$CQGATE_DESC with uncommitted changes"
	fi
	CQGATE_DESC="$CQGATE_DESC, $(go version | awk '{print $3}')"
else
	CQGATE_DESC="the binary $CQGATE_BIN"
fi

rc=0
timeout -k 30 "$BOUND" "$TMP/bin/soak" \
	-cqgate "$CQGATE_BIN" -cqgate-desc "$CQGATE_DESC" -workdir "$TMP" -pidfile "$PIDS" -out "$OUT" \
	-command "bench/soak.sh${ARGS:+ $ARGS}" -duration "$DURATION" "${PASS[@]}" &
SOAK_PID=$!
wait "$SOAK_PID" || rc=$?
SOAK_PID=""
[ "$rc" = 124 ] && echo "soak.sh: the soak did not end within ${BOUND}s and was killed" >&2
exit "$rc"
