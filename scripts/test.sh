#!/usr/bin/env bash
# The test command: installs what the suite needs that Go modules do not
# bring (Debian's redis-server, for the Redis-backed tests in
# internal/cluster and the fleet tests), then runs every test with the
# race detector. Extra arguments go to `go test` (e.g. -run, -v).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "== installing redis-server (Debian package) for the Redis-backed tests"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
  else
    echo "== redis-server not found and no apt-get: the Redis-backed tests will say they are skipped (install redis-server to run them)"
  fi
fi
# Without redis-server the Redis tests skip, and say why; under CI they fail.
exec go test -race -count=1 "$@" ./...
