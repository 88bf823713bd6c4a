#!/usr/bin/env bash
# Builds cqgate as it ships: the Dockerfile, bench/run.sh and
# bench/soak.sh all build it here, so the benchmarks measure the
# released binary.
#
#   scripts/build.sh OUTPUT
#
# VERSION, REVISION and BUILD_TIME in the environment, when set, are
# stamped into `cqgate version` (internal/buildinfo); otherwise Go's own
# module and VCS stamps are used. Extra go build flags: GOFLAGS.
#
# -tags nomsgpack leaves gin's MessagePack binding and rendering out.
# cqgate never uses them, and they link ugorji's codec: 3.2 MB of code,
# 9 MB of the executable, about 2 MiB more resident memory in every
# process (docs/performance.md, "Bounded bursts"). -s -w drop the symbol
# table and DWARF; panics and profiles still name functions.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build.sh OUTPUT}
pkg=github.com/cqgate/cqgate/internal/buildinfo
ldflags="-s -w"
[ -z "${VERSION:-}" ] || ldflags+=" -X $pkg.version=$VERSION"
[ -z "${REVISION:-}" ] || ldflags+=" -X $pkg.revision=$REVISION"
[ -z "${BUILD_TIME:-}" ] || ldflags+=" -X $pkg.time=$BUILD_TIME"
exec go build -trimpath -tags nomsgpack -ldflags="$ldflags" -o "$out" ./cmd/cqgate
