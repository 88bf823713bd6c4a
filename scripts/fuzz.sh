#!/usr/bin/env bash
# scripts/fuzz.sh: run every Go fuzz target of the module, one at a time,
# each for a bounded time, and say plainly whether any crashed, hung or
# ran out of memory.
#
# The targets are found by grepping the module's *_test.go files for
# "func FuzzXxx(" (so a new target is picked up without editing this
# script); each runs as
#
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime $FUZZTIME -fuzzminimizetime 0s ./pkg
#
# because go test fuzzes one target per invocation. Minimization is off by
# default: go minimizes every new interesting input for up to 60 s, with
# all workers at once, and for the XML parsers that left 23 executions in
# 20 s instead of ~500,000. A crasher is then written as found, not
# minimized; --minimizetime 60s restores go's default.
#
# Bounds on each target:
#   time    `timeout` kills it after the fuzz time plus --slack seconds
#           (building the instrumented test binary, the baseline run of the
#           seed corpus, minimization); that is reported as HANG.
#   memory  GOMEMLIMIT (--gomemlimit, a soft limit that makes the garbage
#           collector work harder) for every process, and a watchdog that
#           adds up the resident memory of the whole process tree (go,
#           the test binary, its fuzz workers) every second and kills it
#           above --max-rss; that is reported as OOM, with the peak RSS.
#   hangs   go's own fuzzer fails an input that runs more than 10 s and
#           writes it out like any crasher; one that starts in the last
#           10 s is caught by the script instead: status lines showing no
#           new execution for 5 s or more (with minimization off, nothing
#           else stops every worker) are reported as a HANG.
#
# A failing input is written by go to PKG/testdata/fuzz/FuzzXxx/<hash>;
# the script prints that path and the command to reproduce it. Do not
# commit a crasher by accident: fix the bug, then commit the input as a
# regression seed on purpose. The corpus of interesting inputs go builds
# while fuzzing stays in $(go env GOCACHE)/fuzz, outside the work tree.
#
# Usage: scripts/fuzz.sh [options]
#   --fuzztime D     time per target, a Go duration (default 30s; env FUZZTIME)
#   --only REGEX     only targets whose name or package matches (grep -E)
#   --list           list the targets (package, name) and exit
#   --slack S        seconds added to the fuzz time for the hard bound (default 120)
#   --gomemlimit M   GOMEMLIMIT for every process (default 1GiB; env FUZZ_GOMEMLIMIT)
#   --max-rss MB     kill a target whose process tree holds more (default 4096)
#   --parallel N     fuzz workers per target (default: go's, GOMAXPROCS)
#   --minimizetime D go's -fuzzminimizetime (default 0s: off; env FUZZ_MINIMIZETIME)
#   --keep-logs      keep every target's full output (kept anyway on failure)
#
# Exit status: 0 when every target passed; 1 when any crashed, hung, ran
# out of memory or failed to build; 2 on a usage error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FUZZTIME=${FUZZTIME:-30s}
ONLY=""
LIST=0
SLACK=120
MEMLIMIT=${FUZZ_GOMEMLIMIT:-1GiB}
MAX_RSS_MB=4096
PARALLEL=""
MINIMIZE=${FUZZ_MINIMIZETIME:-0s}
KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "fuzz.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--fuzztime) need "$@"; FUZZTIME=$2; shift ;;
	--only) need "$@"; ONLY=$2; shift ;;
	--list) LIST=1 ;;
	--slack) need "$@"; SLACK=$2; shift ;;
	--gomemlimit) need "$@"; MEMLIMIT=$2; shift ;;
	--max-rss) need "$@"; MAX_RSS_MB=$2; shift ;;
	--parallel) need "$@"; PARALLEL=$2; shift ;;
	--minimizetime) need "$@"; MINIMIZE=$2; shift ;;
	--keep-logs) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option $1 (try --help)" ;;
	esac
	shift
done

[[ $SLACK =~ ^[0-9]+$ ]] || die "--slack must be whole seconds"
[[ $MAX_RSS_MB =~ ^[0-9]+$ ]] || die "--max-rss must be whole megabytes"
[ -z "$PARALLEL" ] || [[ $PARALLEL =~ ^[1-9][0-9]*$ ]] || die "--parallel must be a positive number"

# seconds D: a Go duration (1h2m3.5s, 500ms) in whole seconds, rounded up;
# a count (1000x) has no duration and gives 0.
seconds() {
	local d=$1 total=0 n unit
	[[ $d =~ ^[0-9]+x$ ]] && { echo 0; return; }
	[[ $d =~ ^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$ ]] || return 1
	while [[ $d =~ ^([0-9]+(\.[0-9]+)?)(h|ms|m|s|us|µs|ns)(.*)$ ]]; do
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]} d=${BASH_REMATCH[4]}
		case $unit in
		h) total=$(awk -v t="$total" -v n="$n" 'BEGIN{print t + n*3600}') ;;
		m) total=$(awk -v t="$total" -v n="$n" 'BEGIN{print t + n*60}') ;;
		s) total=$(awk -v t="$total" -v n="$n" 'BEGIN{print t + n}') ;;
		*) total=$(awk -v t="$total" 'BEGIN{print t + 1}') ;; # sub-second units: round up
		esac
	done
	awk -v t="$total" 'BEGIN{printf "%d\n", (t == int(t)) ? t : int(t) + 1}'
}
FUZZSECS=$(seconds "$FUZZTIME") || die "--fuzztime $FUZZTIME is neither a Go duration (30s, 2m) nor a count (1000x)"
seconds "$MINIMIZE" >/dev/null || die "--minimizetime $MINIMIZE is neither a Go duration nor a count"
MINOFF=0
if [[ $MINIMIZE =~ ^0+(\.0*)?(h|m|s|ms|us|µs|ns|x)?$ ]]; then MINOFF=1; fi
if [ "$FUZZSECS" = 0 ]; then
	BOUND=$((600 + SLACK)) # a count of executions: allow ten minutes
else
	BOUND=$((FUZZSECS + SLACK))
fi

# The targets: "pkgdir name" lines, sorted, from the module's test files.
# Nested modules, vendor/ and testdata/ are not part of this module.
nested=$(find . -mindepth 2 -name go.mod -not -path './.git/*' -printf '%h\n' 2>/dev/null | sed 's|^\./||')
mapfile -t TARGETS < <(
	grep -rEo --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor --exclude-dir=testdata \
		'^func Fuzz[A-Za-z0-9_]*\(' . |
		sed -E 's|^\./||; s|/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($| \1|; s|^[^/ ]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|. \1|' |
		while read -r dir name; do
			skip=0
			for m in $nested; do
				case "$dir/" in "$m"/*) skip=1 ;; esac
			done
			[ "$skip" = 1 ] || echo "$dir $name"
		done | sort -u
)
SELECTED=()
for t in "${TARGETS[@]}"; do
	read -r dir name <<<"$t"
	if [ -z "$ONLY" ] || grep -Eq -- "$ONLY" <<<"$name" || grep -Eq -- "$ONLY" <<<"$dir"; then
		SELECTED+=("$t")
	fi
done

if [ "$LIST" = 1 ]; then
	for t in "${SELECTED[@]}"; do
		read -r dir name <<<"$t"
		printf './%s\t%s\n' "$dir" "$name"
	done
	exit 0
fi
[ ${#SELECTED[@]} -gt 0 ] || die "no fuzz targets${ONLY:+ match $ONLY}"

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cqgate-fuzz.XXXXXX")
CHILD=""
WATCH=""
cleanup() {
	# Only what this script started, by pid.
	if [ -n "$WATCH" ]; then kill "$WATCH" 2>/dev/null || true; fi
	if [ -n "$CHILD" ]; then kill_tree "$CHILD" KILL; fi
}
trap cleanup EXIT
trap 'echo "fuzz.sh: interrupted" >&2; exit 130' INT TERM

# descendants PID: PID and every process below it.
descendants() {
	ps -e -o pid= -o ppid= 2>/dev/null | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = 1; q[1] = root; out = root
			for (i = 1; i <= n; i++) {
				split(kids[q[i]], k, " ")
				for (j in k) if (k[j] != "") { q[++n] = k[j]; out = out " " k[j] }
			}
			print out
		}'
}
kill_tree() {
	local pids
	pids=$(descendants "$1")
	# shellcheck disable=SC2086
	kill -"$2" $pids 2>/dev/null || true
}
# tree_rss_kb PID: resident memory of PID and its descendants, in KiB.
tree_rss_kb() {
	local pids
	pids=$(descendants "$1" | tr ' ' ',')
	ps -o rss= -p "$pids" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

# watchdog PID RSSFILE: every second, record the peak RSS of PID's tree in
# RSSFILE ("peak_kb killed"), and kill the tree above MAX_RSS_MB.
watchdog() {
	local pid=$1 file=$2 peak=0 now
	while kill -0 "$pid" 2>/dev/null; do
		now=$(tree_rss_kb "$pid")
		[ "$now" -gt "$peak" ] && peak=$now
		if [ "$now" -gt $((MAX_RSS_MB * 1024)) ]; then
			echo "$peak oom" >"$file"
			kill_tree "$pid" KILL
			return
		fi
		echo "$peak" >"$file"
		sleep 1
	done
}

human_kb() { awk -v k="$1" 'BEGIN{ if (k <= 0) print "?"; else printf "%.0f MiB", k/1024 }'; }

echo "fuzz.sh: ${#SELECTED[@]} target(s), $FUZZTIME each (hard bound ${BOUND}s), minimization $MINIMIZE, GOMEMLIMIT=$MEMLIMIT, max RSS ${MAX_RSS_MB} MiB per target" >&2
echo "fuzz.sh: $(go version), $(nproc) CPUs; full output in $LOGDIR" >&2

ROWS=()
CRASHERS=()
failed=0
for t in "${SELECTED[@]}"; do
	read -r dir name <<<"$t"
	log="$LOGDIR/$name.$(echo "$dir" | tr '/' '_').log"
	rssfile="$LOGDIR/$name.rss"
	echo "0" >"$rssfile"
	args=(test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE")
	[ -n "$PARALLEL" ] && args+=(-parallel "$PARALLEL")
	args+=("./$dir")
	echo "fuzz.sh: [$name] go ${args[*]}" >&2
	start=$(date +%s)
	set +e
	GOMEMLIMIT=$MEMLIMIT timeout -k 10 "$BOUND" go "${args[@]}" >"$log" 2>&1 &
	CHILD=$!
	watchdog "$CHILD" "$rssfile" &
	WATCH=$!
	wait "$CHILD"
	rc=$?
	set -e
	kill "$WATCH" 2>/dev/null || true
	wait "$WATCH" 2>/dev/null || true
	CHILD="" WATCH=""
	took=$(($(date +%s) - start))
	read -r peak oom <"$rssfile" || true

	execs=$(grep -Eo 'execs: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
	newc=$(grep -Eo 'new interesting: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
	crasher=$(sed -nE 's/.*Failing input written to (testdata\/fuzz\/[^ ]+).*/\1/p' "$log" | tail -1)
	# go fails an input that runs for 10 s, but not one that starts
	# hanging in the last 10 s of the fuzz time: then the run ends "ok"
	# with its exec count frozen. Status lines (every 3 s) showing no new
	# execution for 5 s or more are taken as a hang.
	stalled=$(sed -n '/now fuzzing/,$p' "$log" | sed -nE 's/^fuzz: elapsed: ([0-9hms]+), execs: ([0-9]+) .*/\1 \2/p' | awk '
		function secs(d,   t, n) {
			t = 0
			while (match(d, /^[0-9]+[hms]/)) {
				n = substr(d, 1, RLENGTH - 1) + 0
				u = substr(d, RLENGTH, 1)
				t += (u == "h") ? n * 3600 : (u == "m") ? n * 60 : n
				d = substr(d, RLENGTH + 1)
			}
			return t
		}
		{ e = secs($1); if ($2 != last) { since = e; last = $2 }; now = e }
		END { print (NR > 0 && now - since >= 5) ? now - since : 0 }')
	if [ -n "$crasher" ]; then
		CRASHERS+=("$dir/$crasher|go test -run='^${name}\$/$(basename "$crasher")\$' ./$dir")
	fi
	if [ "$oom" = oom ]; then
		result=OOM
	elif [ "$rc" = 0 ] && [ "$stalled" != 0 ] && [ "$MINOFF" = 1 ]; then
		result="HANG (no execution finished in its last ${stalled} s; no input written)"
	elif [ "$rc" = 0 ] && [ "$stalled" != 0 ]; then
		result="PASS (no execution in its last ${stalled} s: minimizing, or a hang)"
	elif [ "$rc" = 0 ]; then
		result=PASS
	elif grep -q 'fuzzing process hung or terminated unexpectedly' "$log"; then
		result="CRASH (a worker hung 10 s or exited)"
	elif [ -n "$crasher" ]; then
		result=CRASH
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		result="HANG (killed at the ${BOUND}s bound)"
	elif grep -qE '\[build failed\]|\[setup failed\]|cannot use -fuzz|no packages to test|matches more than one fuzz test' "$log"; then
		result=BUILD-FAIL
	else
		result=FAIL
	fi
	[ "$result" = PASS ] || failed=1
	ROWS+=("| \`$name\` | ./$dir | ${execs:-?} | ${newc:-?} | $(human_kb "${peak:-0}") | ${took}s | **$result** |")
	echo "fuzz.sh: [$name] $result after ${took}s, ${execs:-?} execs, peak RSS $(human_kb "${peak:-0}")" >&2
	if [ "$result" != PASS ]; then
		echo "---- last lines of $log" >&2
		tail -n 25 "$log" >&2
		echo "----" >&2
	fi
done

echo
echo "## Fuzzing: $FUZZTIME per target, $(date -u +%Y-%m-%dT%H:%MZ), $(go version | awk '{print $3}'), $(nproc) CPUs"
echo
echo "| target | package | execs | new corpus entries | peak RSS (process tree) | wall time | result |"
echo "|---|---|--:|--:|--:|--:|---|"
printf '%s\n' "${ROWS[@]}"
echo
if [ ${#CRASHERS[@]} -gt 0 ]; then
	echo "Failing inputs (written by go test; NOT committed — fix the bug, then add the input as a seed on purpose):"
	echo
	for c in "${CRASHERS[@]}"; do
		echo "* \`${c%%|*}\` — reproduce: \`${c#*|}\`"
	done
	echo
fi
# A crasher can also be left by an earlier run: list what git does not know.
stray=$(git status --porcelain --untracked-files=all -- '*/testdata/fuzz/*' 2>/dev/null | awk '$1 == "??" {print $2}')
if [ -n "$stray" ]; then
	echo "Untracked files under testdata/fuzz (crashers from this or an earlier run):"
	echo "$stray" | sed 's/^/* /'
	echo
fi
if [ "$failed" = 0 ]; then
	echo "All ${#SELECTED[@]} targets passed."
	[ "$KEEP" = 1 ] && echo "fuzz.sh: logs kept in $LOGDIR" >&2 || rm -rf "$LOGDIR"
else
	echo "Some targets did not pass; full output in $LOGDIR"
fi
exit "$failed"
