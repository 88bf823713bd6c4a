#!/usr/bin/env bash
# Runs a local cqgate fleet: one redis-server and three dev-mode gateways
# sharing it, all on loopback. Stops everything on Ctrl-C (or after
# FLEET_SECONDS, default 3600).
#
#   scripts/fleet.sh            # gateways on 127.0.0.1:18081..18083, Redis on 127.0.0.1:16379
#
# Each replica runs its own built-in sandbox tenant (dev mode), so their
# tokens are for three different partners; what they share is visible in
# the rate budget: the sandbox OID gets 5 requests/s for the whole fleet
# (proxy.rate_limit), not 5 per replica. Try:
#
#   for i in $(seq 30); do curl -s -o /dev/null -w '%{http_code} ' \
#     http://127.0.0.1:1808$((i % 3 + 1))/fhir/<sandbox OID>/Patient/1316024; done
#   redis-cli -p 16379 --scan          # what cqgate keeps in Redis (sealed)
#
# Needs redis-server (apt-get install redis-server) and Go.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-16379}
BASE_PORT=${BASE_PORT:-18080}
SECONDS_LIMIT=${FLEET_SECONDS:-3600}
command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install -y redis-server" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  echo "fleet stopped"
}
trap cleanup INT TERM EXIT

go build -o "$work/cqgate" ./cmd/cqgate

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)

export CQGATE_CLUSTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
CQGATE_CLUSTER_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"
export CQGATE_CLUSTER_ENCRYPTION_KEY
export CQGATE_PROXY_RATE_LIMIT_REQUESTS_PER_SECOND=5 CQGATE_PROXY_RATE_LIMIT_BURST=5 CQGATE_PROXY_RATE_LIMIT_MAX_WAIT=0s

for i in 1 2 3; do
  port=$((BASE_PORT + i))
  "$work/cqgate" -dev -listen "127.0.0.1:$port" >"$work/gw$i.out" 2>"$work/gw$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    grep -q "dev mode on" "$work/gw$i.out" 2>/dev/null && break
    sleep 0.1
  done
  head -1 "$work/gw$i.out"
done
sed -n '2,$p' "$work/gw1.out"
echo "Redis: redis://127.0.0.1:$REDIS_PORT (logs in $work); Ctrl-C stops the fleet"
sleep "$SECONDS_LIMIT" &
pids+=($!)
wait "${pids[-1]}"
