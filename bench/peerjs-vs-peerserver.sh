#!/usr/bin/env bash
# PeerJS signaling benchmark: kaiwa's PeerJS front door vs PeerServer (npm `peer` 1.0.2, its `peerjs` CLI), in one
# run, on loopback, driven by the same generator (kaiwa-loadgen --protocol peerjs). Steps, each on a fresh server:
#   paced  200 clients in pairs, 300-byte OFFER payloads, RATE msg/s in total (default 8000), DURATION s
#   sat    200 clients, closed loop (window 1): the highest rate each server sustains here
#   idle   N idle connected clients (default 10000) held 8 s: RSS per connection
# and prints, per step, relayed msg/s, p50/p99 latency, server CPU µs per relayed message, RSS, and kaiwa/PeerServer.
#
#   bench/peerjs-vs-peerserver.sh [--rate R] [--duration S] [--idle N] [--steps "paced sat idle"] [--nice N]
#                                  [--kaiwa build/kaiwa] [--loadgen build/bench/kaiwa-loadgen] [--peer-dir DIR]
#
# PeerServer comes from DIR/node_modules/peer (default ${TMPDIR:-/tmp}/peerserver-1.0.2; installed there with
# `npm install peer@1.0.2` when missing). Both servers get a concurrent limit of 200000; kaiwa gets --rate 0 (no
# per-connection rate limit, as PeerServer has none).
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=8000 DURATION=15 IDLE=10000 STEPS="paced sat idle" NICE=0 KAIWA=build/kaiwa LOADGEN=build/bench/kaiwa-loadgen
PEER_DIR=${TMPDIR:-/tmp}/peerserver-1.0.2
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --idle) IDLE="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --kaiwa) KAIWA="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --peer-dir) PEER_DIR="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$KAIWA" ] || { echo "no kaiwa binary at $KAIWA" >&2; exit 2; }
[ -x "$LOADGEN" ] || { echo "no load generator at $LOADGEN" >&2; exit 2; }
PEERJS_CLI=$PEER_DIR/node_modules/peer/dist/bin/peerjs.js
if [ ! -f "$PEERJS_CLI" ]; then
  mkdir -p "$PEER_DIR"
  (cd "$PEER_DIR" && { [ -f package.json ] || echo '{"private":true}' >package.json; } &&
    npm install --no-audit --no-fund peer@1.0.2 >/dev/null)
fi
ulimit -n "$(ulimit -Hn)"

port_free() { ! ss -H -lnt "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { local p; while :; do p=$((20000 + RANDOM % 20000)); port_free "$p" && echo "$p" && return; done; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/peerjs-bench.XXXXXX")
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; true' EXIT

# run NAME STEP -- server command...: starts the server, runs the step against it, stops it; figures in $OUT/NAME.json
run() {
  local name=$1 step=$2 port=$3; shift 4
  nice -n "$NICE" "$@" >"$OUT/$name.server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 150); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  local args
  case $step in
    paced) args=(relay --clients 200 --rate "$RATE" --duration "$DURATION") ;;
    sat) args=(relay --clients 200 --rate 0 --window 1 --duration 8) ;;
    idle) args=(idle --clients "$IDLE" --duration 8) ;;
  esac
  nice -n "$NICE" "$LOADGEN" "${args[@]}" --protocol peerjs --url "ws://127.0.0.1:$port/peerjs" --server-pid "$SERVER" \
    --json --quiet >"$OUT/$name.out" 2>&1 || true
  grep '^{' "$OUT/$name.out" | tail -1 >"$OUT/$name.json" || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  sleep 1
}

field() { grep -oE "\"$2\":[-0-9.e+]+" "$OUT/$1.json" | head -1 | cut -d: -f2; }
row() {
  local n=$1
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$(field "$n" established)" "$(field "$n" relayed_per_s)" \
    "$(field "$n" lost)" "$(field "$n" p50)" "$(field "$n" p99)" "$(field "$n" cpu_us_per_msg)" \
    "$(awk -v k="$(field "$n" hwm_kb)" 'BEGIN { printf "%.1f", k / 1024 }')" "$(field "$n" rss_per_conn_kb)"
}

echo "# kaiwa: $KAIWA; PeerServer: $PEERJS_CLI; loadgen: $LOADGEN; nice $NICE; results in $OUT"
echo
echo '| run | clients | relayed msg/s | lost | p50 µs | p99 µs | server CPU µs/msg | peak RSS MB | RSS kB/conn (idle) |'
echo '|---|---|---|---|---|---|---|---|---|'
for step in $STEPS; do
  kp=$(pick_port)
  run "kaiwa-$step" "$step" "$kp" -- "$KAIWA" serve --listen "127.0.0.1:$kp" --log-level warn \
    --peerjs-concurrent-limit 200000 --rate 0 --address-exempt 127.0.0.0/8
  pp=$(pick_port)
  run "peerserver-$step" "$step" "$pp" -- node "$PEERJS_CLI" --port "$pp" --host 127.0.0.1 --key peerjs --path / \
    --concurrent_limit 200000
  row "kaiwa-$step"
  row "peerserver-$step"
done
echo
echo "(full generator reports: $OUT/*.out)"
