#!/usr/bin/env bash
# Socket.IO signaling benchmark: kaiwa's Socket.IO front door (/socket.io/) vs the guide's socket.io server on node
# (bench/socketio-reference/server.mjs, npm socket.io 4.8 from the repo's node_modules), in one run, on loopback,
# driven by the same generator (kaiwa-loadgen --protocol socketio: direct Engine.IO v4 WebSockets, `join-room`, then
# `offer` events {to, offer:{type, sdp: 300 B}} between clients in pairs). Steps, each on a fresh server:
#   paced  200 clients in pairs, RATE msg/s in total (default 8000), DURATION s
#   sat    200 clients, closed loop (window 1): the highest rate each server sustains here (p99 must stay < 100 ms)
#   idle   N joined clients held 8 s, for each N of --idle (default 10000; the issue asks for 10000 50000 100000):
#          RSS per connection. An N that does not fit the fd limit (ulimit -Hn, per process) is skipped, and said so.
# and the bare relay floor (bench/floor_relay.cpp, kaiwa-floor-relay: one read + one write per message on one epoll
# loop, WebSocket framing, no JSON) for paced and sat. Prints, per step and server, connections held, relayed msg/s,
# p50/p99 latency, server CPU µs per relayed message, peak RSS, RSS per idle connection, the rest of the machine's
# CPU during the window, and the kaiwa/reference (and kaiwa/floor) ratios.
#
#   bench/socketio-vs-reference.sh [--rate R] [--duration S] [--idle "N ..."] [--steps "paced sat idle"] [--nice N]
#                                  [--kaiwa build/kaiwa] [--loadgen build/bench/kaiwa-loadgen]
#                                  [--floor build/bench/kaiwa-floor-relay | --no-floor]
#
# kaiwa gets --rate 0 (no per-connection rate limit: socket.io has none), --no-turn, --max-rooms for the idle steps,
# and its default 2 workers; node is one thread. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=8000 DURATION=15 IDLE=10000 STEPS="paced sat idle" NICE=0 KAIWA=build/kaiwa LOADGEN=build/bench/kaiwa-loadgen
FLOOR=build/bench/kaiwa-floor-relay
REFERENCE=bench/socketio-reference/server.mjs
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --idle) IDLE="${2//,/ }"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --kaiwa) KAIWA="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --floor) FLOOR="$2"; shift ;;
    --no-floor) FLOOR= ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$KAIWA" ] || { echo "no kaiwa binary at $KAIWA" >&2; exit 2; }
[ -x "$LOADGEN" ] || { echo "no load generator at $LOADGEN" >&2; exit 2; }
[ -z "$FLOOR" ] || [ -x "$FLOOR" ] || { echo "no floor relay at $FLOOR (--no-floor to skip it)" >&2; exit 2; }
[ -f node_modules/socket.io/package.json ] || { echo "socket.io is not in node_modules: run npm ci" >&2; exit 2; }
SIO_VERSION=$(node -p 'require("./node_modules/socket.io/package.json").version')

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

port_free() { ! ss -H -lnt "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { local p; while :; do p=$((20000 + RANDOM % 20000)); port_free "$p" && echo "$p" && return; done; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/socketio-bench.XXXXXX")
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; true' EXIT

# run NAME STEP PORT PROTOCOL PATH [N] -- server command...: starts the server, runs the step against it, stops it;
# figures in $OUT/NAME.json
run() {
  local name=$1 step=$2 port=$3 proto=$4 path=$5 n=$6; shift 7
  nice -n "$NICE" "$@" >"$OUT/$name.server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 150); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  local args
  case $step in
    paced) args=(relay --clients 200 --rate "$RATE" --duration "$DURATION") ;;
    sat) args=(relay --clients 200 --rate 0 --window 1 --duration 8) ;;
    idle) args=(idle --clients "$n" --duration 8 --ramp-concurrency 512 --setup-timeout 180
      --source-ips 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5) ;;
  esac
  nice -n "$NICE" timeout 400 "$LOADGEN" "${args[@]}" --protocol "$proto" --url "ws://127.0.0.1:$port$path" \
    --server-pid "$SERVER" --json --quiet >"$OUT/$name.out" 2>&1 || true
  grep '^{' "$OUT/$name.out" | tail -1 >"$OUT/$name.json" || true
  if ! kill -0 "$SERVER" 2>/dev/null; then echo "  ($name: the server exited during the step; see $OUT/$name.server.log)"; fi
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  sleep 1
}

# One table row per run, then a ratio row; all figures from the generator's JSON line.
row() {
  python3 - "$OUT" "$@" <<'EOF'
import json, os, sys
out, name, label = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    r = json.load(open(os.path.join(out, name + ".json")))
except Exception:
    print(f"| {label} | (no result: see {out}/{name}.out) |||||||||")
    sys.exit(0)
s, lat, relay = r["server"], r["latency_us"], r["mode"] == "relay"
held = f'{r["held"]} / {r["clients"]}'
if r["failed"] or r["dropped"]:
    held += f' (failed {r["failed"]} {r["fail_reasons"]}, dropped {r["dropped"]} {r["drop_reasons"]})'
errs = "" if r["server_errors"] == {} else f' errors {r["server_errors"]}'
flag = " (p99 ≥ 100 ms)" if relay and lat["p99"] >= 100000 else ""
if relay:
    print(f'| {label} | {held} | {r["relayed_per_s"]:.0f} | {r["lost"]}{errs} | {lat["p50"]:.0f} | {lat["p99"]:.0f}{flag} '
          f'| {s["cpu_us_per_msg"]:.1f} | {s["hwm_kb"]/1024:.1f} | | {r["others_cpu_pct"]:.0f} % |')
else:
    print(f'| {label} | {held} | | | | | | {s["hwm_kb"]/1024:.1f} | {s["rss_per_conn_kb"]:.2f} | {r["others_cpu_pct"]:.0f} % |')
EOF
}
ratio() {  # ratio A B LABEL: A/B of the figures that matter for the step
  python3 - "$OUT" "$@" <<'EOF'
import json, os, sys
out, a, b, label = sys.argv[1:5]
try:
    ra = json.load(open(os.path.join(out, a + ".json")))
    rb = json.load(open(os.path.join(out, b + ".json")))
except Exception:
    sys.exit(0)
def q(x, y, fmt="{:.2f}"):
    return fmt.format(x / y) + "×" if y else "–"
if ra["mode"] == "relay":
    print(f'| {label} | | {q(ra["relayed_per_s"], rb["relayed_per_s"])} | | {q(ra["latency_us"]["p50"], rb["latency_us"]["p50"])} '
          f'| {q(ra["latency_us"]["p99"], rb["latency_us"]["p99"])} | {q(ra["server"]["cpu_us_per_msg"], rb["server"]["cpu_us_per_msg"])} '
          f'| {q(ra["server"]["hwm_kb"], rb["server"]["hwm_kb"])} | | |')
else:
    print(f'| {label} | | | | | | | {q(ra["server"]["hwm_kb"], rb["server"]["hwm_kb"])} '
          f'| {q(ra["server"]["rss_per_conn_kb"], rb["server"]["rss_per_conn_kb"])} | |')
EOF
}

kaiwa() {  # kaiwa NAME STEP N [extra server args]
  local kp; kp=$(pick_port)
  run "$1" "$2" "$kp" socketio /socket.io/ "$3" -- "$KAIWA" serve --listen "127.0.0.1:$kp" --log-level warn --rate 0 \
    --no-turn --address-exempt 127.0.0.0/8 "${@:4}"
}
reference() {  # reference NAME STEP N
  local rp; rp=$(pick_port)
  run "$1" "$2" "$rp" socketio /socket.io/ "$3" -- node "$REFERENCE" "$rp"
}
floor() {  # floor NAME STEP
  local fp; fp=$(pick_port)
  run "$1" "$2" "$fp" floor /floor 0 -- "$FLOOR" "$fp"
}

echo "# kaiwa: $KAIWA; reference: node $(node --version) $REFERENCE (socket.io $SIO_VERSION); floor: ${FLOOR:-none}"
echo "# loadgen: $LOADGEN; nice $NICE; fd limit $FD_LIMIT; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
echo
echo '| run | held / clients | relayed msg/s | lost | p50 µs | p99 µs | server CPU µs/msg | peak RSS MB | RSS kB/conn (idle) | others CPU |'
echo '|---|---|---|---|---|---|---|---|---|---|'
for step in $STEPS; do
  case $step in
    paced | sat)
      kaiwa "kaiwa-$step" "$step" 0
      reference "reference-$step" "$step" 0
      [ -z "$FLOOR" ] || floor "floor-$step" "$step"
      row "kaiwa-$step" "kaiwa $step"
      row "reference-$step" "reference $step"
      [ -z "$FLOOR" ] || row "floor-$step" "floor $step"
      ratio "kaiwa-$step" "reference-$step" "kaiwa/reference $step"
      [ -z "$FLOOR" ] || ratio "kaiwa-$step" "floor-$step" "kaiwa/floor $step"
      ;;
    idle)
      for n in $IDLE; do
        # Each process holds one fd per connection plus its own (the generator also its epoll/timer fds).
        if (( n + 64 > FD_LIMIT )); then
          echo "| idle $n | skipped: $n connections need more than the fd limit of $FD_LIMIT per process (ulimit -Hn $(ulimit -Hn), not raisable here: about $((FD_LIMIT - 64)) fit) |||||||||"
          continue
        fi
        kaiwa "kaiwa-idle-$n" idle "$n" --max-rooms $((n / 2 + 1000))
        reference "reference-idle-$n" idle "$n"
        row "kaiwa-idle-$n" "kaiwa idle $n"
        row "reference-idle-$n" "reference idle $n"
        ratio "kaiwa-idle-$n" "reference-idle-$n" "kaiwa/reference idle $n"
      done
      ;;
    *) echo "unknown step $step" >&2 ;;
  esac
done
echo
echo "(ratios: relayed msg/s, p50, p99, CPU µs/msg, peak RSS, RSS/conn of the first over the second; 'others CPU' is"
echo " what the rest of the machine used during the window, in % of one core of $(nproc): above ~20 % the latency"
echo " figures are skewed. Full generator reports: $OUT/*.out)"
