#!/usr/bin/env bash
# The soak: one kaiwa at its defaults (default worker count), loaded for --duration seconds through all three
# signaling doors and TURN at once, with clients joining and leaving all along. Samples the server every 10 s
# (RSS, open descriptors, threads, rooms, peers, connections) and checks at the end:
#   - RSS flat: the last sample within ±5 % of the sample after warm-up (60 s);
#   - no message lost: each generator's lost count is 0, and every churn message reached its room;
#   - no descriptor growth: after the clients are gone the server holds what it held before they came.
# Usage: bench/soak.sh [--duration S] [--native R] [--socketio R] [--peerjs R] [--turn R] [--kaiwa PATH]
#                      [--loadgen PATH] [--turn-loadgen PATH]
# Rates are messages (TURN: round trips) per second. The defaults add up to ~80 % of the paced signaling capacity
# measured on a 2-core machine (bench/README.md). All traffic is on loopback; each generator's 200 clients come from 8
# addresses (127.0.0.10-37, 25 each) so that the per-address limits (docs/configuration.md) see what they would see
# from real users, at their defaults.
set -uo pipefail
cd "$(dirname "$0")/.."
DURATION=600 NATIVE=4500 SIO=3500 PEERJS=2500 TURN=2000
KAIWA=build/kaiwa LOADGEN=build/bench/kaiwa-loadgen TURN_LOADGEN=build/bench/kaiwa-turn-loadgen
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --native) NATIVE=$2; shift ;;
    --socketio) SIO=$2; shift ;;
    --peerjs) PEERJS=$2; shift ;;
    --turn) TURN=$2; shift ;;
    --kaiwa) KAIWA=$2; shift ;;
    --loadgen) LOADGEN=$2; shift ;;
    --turn-loadgen) TURN_LOADGEN=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for b in "$KAIWA" "$LOADGEN" "$TURN_LOADGEN"; do [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 2; }; done
OUT=$(mktemp -d "${TMPDIR:-/tmp}/kaiwa-soak.XXXXXX")
PORT=$((20000 + RANDOM % 20000)) TPORT=$((PORT + 1))
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

"$KAIWA" serve --listen "127.0.0.1:$PORT" --turn-listen "127.0.0.1:$TPORT" --turn-realm example.test \
  --turn-user alice:alicepw --turn-allow-peer 127.0.0.0/8 --turn-ports 50000-59999 --turn-user-quota 1000 \
  --log-level warn >"$OUT/kaiwa.log" 2>&1 &
KPID=$!; PIDS+=("$KPID")
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
sleep 0.5

sample() {  # t rss_kb fds threads rooms peers connections
  local m; m=$(curl -s "http://127.0.0.1:$PORT/metrics")
  printf "%s %s %s %s %s %s %s\n" "$1" "$(awk '/^VmRSS/ {print $2}' /proc/$KPID/status)" \
    "$(ls /proc/$KPID/fd | wc -l)" "$(awk '/^Threads/ {print $2}' /proc/$KPID/status)" \
    "$(awk '$1 == "kaiwa_rooms" {print $2}' <<<"$m")" "$(awk '$1 == "kaiwa_peers" {print $2}' <<<"$m")" \
    "$(awk '$1 == "kaiwa_connections" {print $2}' <<<"$m")"
}
# A first few connections make what each worker makes once, lazily (its WebSocket poller's epoll descriptor): the
# baseline is taken after them, so that "descriptors back to start" compares like with like.
"$LOADGEN" idle --url "ws://127.0.0.1:$PORT/ws" --clients 16 --duration 1 --quiet >/dev/null 2>&1
sleep 1
sample before | tee "$OUT/samples.txt"
FD_BEFORE=$(ls /proc/$KPID/fd | wc -l)
CPU0=$(awk '{print $14 + $15}' /proc/$KPID/stat)

gen() {  # name protocol path rate ips
  "$LOADGEN" relay --protocol "$2" --url "ws://127.0.0.1:$PORT$3" --clients 200 --rate "$4" --warmup 5 \
    --duration "$DURATION" --drain 3 --source-ips "$5" --setup-timeout 60 --json --quiet >"$OUT/$1.out" 2>&1
}
ips() { local out=(); for i in $(seq "$1" "$2"); do out+=("127.0.0.$i"); done; local IFS=,; echo "${out[*]}"; }
gen native native /ws "$NATIVE" "$(ips 10 17)" & PIDS+=($!)         # 25 clients per address, as from users
gen socketio socketio /socket.io/ "$SIO" "$(ips 20 27)" & PIDS+=($!)
gen peerjs peerjs /peerjs "$PEERJS" "$(ips 30 37)" & PIDS+=($!)
# kaiwa-turn-loadgen refreshes neither its allocations nor its permissions (RFC 8656: a permission lasts 300 s), so a
# run longer than that loses everything after it, rightly: TURN runs in segments of 240 s, each with new allocations.
turn_segments() {
  local left=$DURATION n=0
  while [ "$left" -gt 0 ]; do
    local d=$(( left < 240 ? left : 240 ))
    "$TURN_LOADGEN" --mode udp --server "127.0.0.1:$TPORT" --user alice --password alicepw --rate "$TURN" \
      --allocations 20 --duration "$d" --warmup 2 --json >"$OUT/turn.$n.out" 2>&1
    left=$(( left - d )); n=$(( n + 1 ))
  done
}
turn_segments & PIDS+=($!)
node --experimental-websocket bench/churn.mjs --url "ws://127.0.0.1:$PORT/ws" --duration "$DURATION" --rate 20 \
  >"$OUT/churn.out" 2>&1 & CHURN=$!; PIDS+=("$CHURN")

start=$(date +%s)
while :; do
  sleep 10
  t=$(( $(date +%s) - start ))
  kill -0 "$KPID" 2>/dev/null || { echo "kaiwa exited during the soak: $(tail -3 "$OUT/kaiwa.log")"; exit 1; }
  sample "$t" | tee -a "$OUT/samples.txt"
  [ "$t" -ge $((DURATION + 20)) ] && break
  jobs -r | grep -q . || break
done
wait "$CHURN" 2>/dev/null
for p in "${PIDS[@]:1}"; do wait "$p" 2>/dev/null; done
sleep 3  # let the server close what the generators left
CPU1=$(awk '{print $14 + $15}' /proc/$KPID/stat)
sample after | tee -a "$OUT/samples.txt"
FD_AFTER=$(ls /proc/$KPID/fd | wc -l)

echo
echo "# soak: $DURATION s; native $NATIVE, socketio $SIO, peerjs $PEERJS msg/s, TURN $TURN rt/s, churn; $(nproc) cores; results in $OUT"
for g in native socketio peerjs; do
  python3 - "$OUT/$g.out" "$g" <<'EOF'
import json, sys
line = next((l for l in open(sys.argv[1]) if l.startswith('{')), None)
if not line:
    print(f"{sys.argv[2]:9s} generator failed: " + open(sys.argv[1]).read()[-300:]); sys.exit()
r = json.loads(line)
g = lambda *k: next((r[x] for x in k if x in r), '?')
lat = r.get('latency_us', {})
print(f"{sys.argv[2]:9s} sent {r['sent']} received {r['received']} lost {r['lost']}; latency p50 {lat.get('p50', 0) / 1000:.2f} ms"
      f" p99 {lat.get('p99', 0) / 1000:.1f} ms; generator slip {r['schedule_slip']}; connections dropped {r['dropped']}"
      f"; server errors {r['server_errors'] or 'none'}")
EOF
done
python3 - "$OUT"/turn.*.out <<'EOF'
import json, sys
runs = []
for f in sys.argv[1:]:
    line = next((l for l in open(f) if l.startswith('{')), None)
    if not line: print(f"turn      a segment's generator failed: " + open(f).read()[-300:]); continue
    runs.append(json.loads(line))
if runs:
    sent, got, lost = (sum(r[k] for r in runs) for k in ('sent', 'received', 'lost'))
    p99 = max(r['rtt_p99_us'] for r in runs)
    print(f"turn      {len(runs)} segments: sent {sent} received {got} lost {lost}; rtt p99 (worst segment) {p99 / 1000:.1f} ms")
EOF
echo "churn     $(tail -1 "$OUT/churn.out")"
python3 - "$OUT/samples.txt" "$FD_BEFORE" "$FD_AFTER" "$CPU0" "$CPU1" "$DURATION" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
timed = [r for r in rows if r[0].isdigit()]
warm = next((r for r in timed if int(r[0]) >= 60), timed[0])
last = [r for r in timed if int(r[0]) <= int(sys.argv[6])][-1]
rss0, rss1 = int(warm[1]), int(last[1])
drift = (rss1 - rss0) / rss0 * 100
peak = max(int(r[1]) for r in timed)
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / 100
print(f"RSS after warm-up ({warm[0]} s) {rss0 / 1024:.1f} MB, at {last[0]} s {rss1 / 1024:.1f} MB: {drift:+.1f} %; peak {peak / 1024:.1f} MB")
print(f"descriptors before {sys.argv[2]}, during {min(int(r[2]) for r in timed)}-{max(int(r[2]) for r in timed)}, after {sys.argv[3]}")
print(f"server CPU {cpu:.0f} s over the run ({cpu / max(1, int(sys.argv[6])) * 100:.0f} % of one core)")
print("verdict: RSS " + ("flat" if abs(drift) <= 5 else "NOT flat") + ", descriptors " +
      ("back to start" if int(sys.argv[3]) <= int(sys.argv[2]) else "GREW"))
EOF
