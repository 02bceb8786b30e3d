#!/usr/bin/env bash
# kaiwa's native signaling against the bare relay floor (kaiwa-floor-relay), at the same thread counts: the floor
# with T threads is laid out as kaiwa with T workers (a listener per thread, both ends of a room on the room's
# thread), so kaiwa/floor at equal T is the cost of kaiwa's own work, and floor(T)/floor(1) what T event loops cost
# on this machine before any server work.
#
#   bench/native-vs-floor.sh [--threads "1 2"] [--steps "paced sat"] [--reps 3] [--rate 8000] [--duration 8]
#                            [--kaiwa build/kaiwa] [--loadgen build/bench/kaiwa-loadgen]
#                            [--floor build/bench/kaiwa-floor-relay] [--nice 0] [--door native] [--syscalls]
#
# --threads default runs kaiwa as a user does, without --workers (one worker per core), and the floor with one thread
# per core. --syscalls counts the server's system calls (perf's syscalls:sys_enter_* tracepoints; root) during the
# measured part of each run and prints them per relayed message.
#
# --door picks kaiwa's front door for the kaiwa runs: native (/ws), socketio (/socket.io/, Engine.IO WebSockets and
# the guide's events) or peerjs (/peerjs); the generator speaks that dialect, the floor relays the same bytes.
#
# paced: 200 clients in pairs, 300-byte messages, RATE msg/s in total. sat: the closed loop (400 clients, window 1).
# Runs are interleaved (floor T, kaiwa T, for each T, REPS times) so that other work on the machine touches both
# alike. Per run it prints relayed msg/s, p50/p99 latency, the server's CPU µs per relayed message and the CPU of
# everything else on the machine (others_cpu: what neither server nor generator used); then per step and T the
# median µs/msg of each and kaiwa/floor. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="1 2" STEPS="paced sat" REPS=3 RATE=8000 DURATION=8 NICE=0 DOOR=native SYSCALLS=0
KAIWA=build/kaiwa LOADGEN=build/bench/kaiwa-loadgen FLOOR=build/bench/kaiwa-floor-relay
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --kaiwa) KAIWA="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --floor) FLOOR="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --door) DOOR="$2"; shift ;;
    --syscalls) SYSCALLS=1; shift 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for b in "$KAIWA" "$LOADGEN" "$FLOOR"; do [ -x "$b" ] || { echo "no binary at $b (build with -DKAIWA_BENCH=ON)" >&2; exit 2; }; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_free() { ! ss -H -lnt "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { local p; while :; do p=$((20000 + RANDOM % 20000)); port_free "$p" && echo "$p" && return; done; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/native-vs-floor.XXXXXX")
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; true' EXIT

# one NAME STEP T REP: one server, one generator run; the JSON result lands in $OUT/NAME-STEP-T-REP.json.
one() {
  local name=$1 step=$2 t=$3 rep=$4 port path proto
  port=$(pick_port)
  if [ "$name" = floor ]; then
    local ft=$t
    [ "$t" = default ] && ft=$(nproc)
    nice -n "$NICE" "$FLOOR" "$port" --threads "$ft" >/dev/null 2>&1 &
    path=/floor proto=floor
  else
    local workers=(--workers "$t")
    [ "$t" = default ] && workers=()
    nice -n "$NICE" "$KAIWA" serve --listen "127.0.0.1:$port" "${workers[@]}" --rate 0 --no-turn --log-level warn \
      --address-exempt 127.0.0.0/8 \
      >"$OUT/kaiwa.log" 2>&1 &
    proto=$DOOR
    case "$DOOR" in
      native) path=/ws ;;
      socketio) path=/socket.io/ ;;
      peerjs) path=/peerjs ;;
      *) echo "unknown door $DOOR" >&2; exit 2 ;;
    esac
  fi
  SERVER=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  local args=(relay --clients 200 --rate "$RATE" --duration "$DURATION")
  [ "$step" = sat ] && args=(relay --clients 400 --rate 0 --window 1 --duration "$DURATION")
  local perf_out=$OUT/$name-$step-$t-$rep.perf perf_pid=
  rm -f "$perf_out"
  if [ "$SYSCALLS" = 1 ]; then
    # The measured part of the run: from 2 s in (the clients are connected) to 1 s before its end.
    (sleep 2; exec perf stat -x, -e 'syscalls:sys_enter_*' -p "$SERVER" -o "$perf_out" -- sleep $((DURATION - 3))) \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  nice -n "$NICE" timeout 120 "$LOADGEN" "${args[@]}" --protocol "$proto" --url "ws://127.0.0.1:$port$path" \
    --server-pid "$SERVER" --json --quiet 2>&1 | grep '^{' | tail -1 >"$OUT/$name-$step-$t-$rep.json" || true
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  python3 - "$OUT/$name-$step-$t-$rep.json" "$name" "$step" "$t" "$perf_out" "$((DURATION - 3))" <<'EOF'
import json, os, sys
path, name, step, t, perf, window = sys.argv[1:7]
try:
    r = json.load(open(path))
except Exception:
    print(f"{step:6} {name:6} {t:>2} (no result)")
    sys.exit(0)
lat = r["latency_us"]
print(f'{step:6} {name:6} {t:>2} {r["relayed_per_s"]:9.0f} {lat["p50"]:8.0f} {lat["p99"]:8.0f} '
      f'{r["server"]["cpu_us_per_msg"]:8.2f} {r["others_cpu_pct"]:7.0f}% {r["lost"]:6}')
if os.path.exists(perf):
    msgs = r["relayed_per_s"] * float(window)
    counts = {}
    for line in open(perf):
        f = line.strip().split(",")
        if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit() and int(f[0]) > 0:
            counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
    total = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    with open(path[:-5] + ".sys", "w") as out:
        out.write(f"{total / msgs if msgs else 0:.3f}\n")
    print(f'       syscalls per relayed message: {total / msgs if msgs else 0:.2f} = ' +
          ' + '.join(f'{k} {v / msgs:.2f}' for k, v in top))
EOF
  sleep 0.5
}

echo "# native-vs-floor: kaiwa door $DOOR, threads [$THREADS], steps [$STEPS], $REPS reps, paced $RATE msg/s, $DURATION s per run"
echo "# $(nproc) cores; $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %-6s %2s %9s %8s %8s %8s %8s %6s\n" step server T msg_per_s p50_us p99_us cpu_us others lost
for step in $STEPS; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for t in $THREADS; do
      one floor "$step" "$t" "$rep"
      one kaiwa "$step" "$t" "$rep"
    done
  done
done

echo
echo "# medians over $REPS runs: server CPU µs per relayed message (msg/s for sat)"
python3 - "$OUT" "$STEPS" "$THREADS" <<'EOF'
import glob, json, os, statistics, sys
out, steps, threads = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def med(name, step, t, key):
    vals = []
    for p in glob.glob(os.path.join(out, f"{name}-{step}-{t}-*.json")):
        try:
            r = json.load(open(p))
            vals.append(r["server"]["cpu_us_per_msg"] if key == "cpu" else r["relayed_per_s"])
        except Exception:
            pass
    return statistics.median(vals) if vals else float("nan")
print(f'{"step":6} {"T":>2} {"floor_us":>9} {"kaiwa_us":>9} {"kaiwa/floor":>11} {"floor_msg/s":>11} {"kaiwa_msg/s":>11}')
for step in steps:
    for t in threads:
        f, k = med("floor", step, t, "cpu"), med("kaiwa", step, t, "cpu")
        fr, kr = med("floor", step, t, "rate"), med("kaiwa", step, t, "rate")
        line = f'{step:6} {t:>2} {f:9.2f} {k:9.2f} {k / f if f else float("nan"):10.2f}× {fr:11.0f} {kr:11.0f}'
        sysf = [float(open(p).read()) for p in glob.glob(os.path.join(out, f"floor-{step}-{t}-*.sys"))]
        sysk = [float(open(p).read()) for p in glob.glob(os.path.join(out, f"kaiwa-{step}-{t}-*.sys"))]
        if sysf and sysk:
            line += f'   syscalls/msg floor {statistics.median(sysf):.2f} kaiwa {statistics.median(sysk):.2f}'
        print(line)
EOF
echo "# raw results: $OUT"
