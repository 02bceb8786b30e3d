#!/usr/bin/env bash
# TURN relay benchmark: kaiwa vs Debian's coturn (turnserver 4.6.1), in one run, on loopback, with the same
# turnutils_uclient flags and turnutils_peer as the echo peer (../shared/docs/anchors.md). For each mode it prints
# round trips per second, loss, the server's CPU (utime+stime from /proc/PID/stat) per relayed round trip (one round
# trip = 4 datagrams through the server), and the kaiwa/coturn ratio; then memory per allocation
# ((peak RSS during the run - idle RSS) / allocations).
#
#   bench/turn-vs-coturn.sh [--clients M] [--messages N] [--interval MS] [--length BYTES] [--modes "udp tcp send tls"]
#                           [--workers W] [--nice N] [--kaiwa PATH] [--procs P]
#   bench/turn-vs-coturn.sh --loadgen PATH [--rates "10000 20000 40000"] [--allocations N] [--duration S]
#                           [--modes "udp tcp tls"] [--servers "kaiwa coturn"] [--nice N] [--kaiwa PATH]
#
# With --loadgen (build/bench/kaiwa-turn-loadgen) the generator is kaiwa-turn-loadgen instead of uclient: for each
# mode and each offered rate it runs the generator against each server in turn (it hosts its own echo peer) and prints
# its summary; a row per run then has offered/relayed rate, loss, p50/p99 round-trip time, the server's CPU per round
# trip, the generator's own CPU per round trip, UDP drops on the server's sockets and how busy the box was.
#
# --procs P runs P turnutils_uclient processes at once, each with its own M clients and its own turnutils_peer
# (offered: P x M x 1000 / MS round trips/s); one uclient thread tops out near 11k round trips/s here. Rows sum
# their counts; rt_per_s is received / the longest transmit time. box_busy is the whole machine's CPU use during the
# run in % of all cores (servers, uclients, peers, and anything else running), to show how loaded the box was, and
# steal: the time the hypervisor gave the box's vCPUs to other guests (it also inflates the per-process CPU figures).
#
# Both servers run on 127.0.0.1 with long-term credentials alice:alicepw, relay ports in separate ranges, relaying
# to loopback allowed (kaiwa: --turn-allow-peer 127.0.0.0/8; coturn: --allow-loopback-peers), TLS on another port
# with self-signed certificates (mode `tls`: uclient -t -S).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=100 MESSAGES=3000 INTERVAL=2 LENGTH=100 MODES="udp tcp send tls" WORKERS=2 NICE=0 KAIWA=build/kaiwa PROCS=1
LOADGEN="" RATES="10000 20000 40000" ALLOCATIONS=50 DURATION=10 SERVERS="kaiwa coturn" MODES_SET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift ;;
    --messages) MESSAGES="$2"; shift ;;
    --interval) INTERVAL="$2"; shift ;;
    --length) LENGTH="$2"; shift ;;
    --modes) MODES="$2"; MODES_SET=1; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --rates) RATES="$2"; shift ;;
    --allocations) ALLOCATIONS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --servers) SERVERS="$2"; shift ;;
    --workers) WORKERS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --kaiwa) KAIWA="$2"; shift ;;
    --procs) PROCS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for t in turnserver turnutils_uclient turnutils_peer; do
  command -v "$t" >/dev/null || { echo "$t not found: apt-get install coturn" >&2; exit 2; }
done
[ -x "$KAIWA" ] || { echo "no kaiwa binary at $KAIWA (build it, or pass --kaiwa)" >&2; exit 2; }

port_free() { ! ss -H -lntu "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { local p; while :; do p=$((20000 + RANDOM % 20000)); port_free "$p" && echo "$p" && return; done; }
KPORT=$(pick_port); CPORT=$(pick_port); KTLS=$(pick_port); CTLS=$(pick_port)
PPORTS=(); for ((i = 0; i < PROCS; i++)); do PPORTS+=("$(pick_port)"); done
DIR=$(mktemp -d "${TMPDIR:-/tmp}/turn-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)
box_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9}' /proc/stat; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

nice -n "$NICE" "$KAIWA" serve --only turn --workers "$WORKERS" --turn-listen "127.0.0.1:$KPORT" \
  --turn-tls-listen "127.0.0.1:$KTLS" \
  --turn-realm example.test --turn-user alice:alicepw --turn-allow-peer 127.0.0.0/8 --turn-ports 50000-59999 \
  --turn-unauthenticated-rate 0 --turn-user-quota 1000000 --turn-max-allocations 1000000 --log-level warn >"$DIR/kaiwa.log" 2>&1 &
KPID=$!; PIDS+=("$KPID")
touch "$DIR/turndb"
# coturn's TLS listener needs a certificate (kaiwa makes its own self-signed one); the tools do not verify it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
nice -n "$NICE" turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$CPORT" \
  --min-port=40000 --max-port=49999 --lt-cred-mech --user=alice:alicepw --realm=example.test \
  --tls-listening-port="$CTLS" --cert="$DIR/cert.pem" --pkey="$DIR/key.pem" \
  --no-dtls --no-cli --allow-loopback-peers --userdb="$DIR/turndb" \
  --pidfile="$DIR/ts.pid" --log-file="$DIR/ts.log" --simple-log >/dev/null 2>&1 &
CPID=$!; PIDS+=("$CPID")
for p in "${PPORTS[@]}"; do
  turnutils_peer -L 127.0.0.1 -p "$p" >/dev/null 2>&1 &
  PIDS+=($!)
done
sleep 1.5
kill -0 "$KPID" 2>/dev/null || { echo "kaiwa did not start:"; cat "$DIR/kaiwa.log"; exit 1; }
kill -0 "$CPID" 2>/dev/null || { echo "turnserver did not start:"; tail "$DIR/ts.log"; exit 1; }

if [ -n "$LOADGEN" ]; then
  [ -x "$LOADGEN" ] || { echo "no generator at $LOADGEN" >&2; exit 2; }
  [ "$MODES_SET" = 1 ] || MODES="udp tcp tls"
  echo "# turn-vs-coturn with kaiwa-turn-loadgen: $ALLOCATIONS allocations, ${LENGTH}-byte payloads, $DURATION s per run, kaiwa workers $WORKERS"
  echo "# $(nproc) cores; $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  printf "%-5s %-7s %8s %8s %8s %7s %7s %8s %9s %9s %9s %12s %s\n" mode server offered relayed lost p50_us p99_us \
    cpu_us_rt gen_us_rt srv_drops busy/steal loadavg flags
  for mode in $MODES; do
    for rate in $RATES; do
      for name in $SERVERS; do
        if [ "$name" = kaiwa ]; then pid=$KPID; port=$KPORT; [ "$mode" = tls ] && port=$KTLS
        else pid=$CPID; port=$CPORT; [ "$mode" = tls ] && port=$CTLS; fi
        kill -0 "$pid" 2>/dev/null || { echo "# $name is gone"; continue; }
        json=$(nice -n "$NICE" "$LOADGEN" --mode "$mode" --server "127.0.0.1:$port" --rate "$rate" \
          --allocations "$ALLOCATIONS" --size "$LENGTH" --duration "$DURATION" --server-pid "$pid" --json \
          2>"$DIR/loadgen.err" | grep '^{' || true)
        if [ -z "$json" ]; then echo "# $name/$mode/$rate: generator failed: $(head -c 300 "$DIR/loadgen.err")"; continue; fi
        echo "$json" >>"$DIR/runs.jsonl"
        echo "$json" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
flags = ("GENERATOR-BOUND " if r["generator_bound"] else "") + ("slip=%d " % r["slipped"] if r["slipped"] else "")
print("%-5s %-7s %8.0f %8.0f %8d %7.0f %7.0f %8.2f %9.2f %9d %5.0f%%/%.0f%% %12s %s" % (
  r["mode"], sys.argv[1], r["offered"], r["relayed_per_s"], r["lost"], r["rtt_p50_us"], r["rtt_p99_us"],
  r["server_us_per_rt"], r["generator_us_per_rt"], r["drops_server_port"] + r["drops_relay_ports"],
  r["box_busy_pct"], r["steal_pct"], r["loadavg"].split()[0], flags))' "$name"
      done
    done
  done
  exit 0
fi

echo "# turn-vs-coturn: $PROCS x $CLIENTS clients x $MESSAGES messages, every $INTERVAL ms, $LENGTH bytes, kaiwa workers $WORKERS"
echo "# offered: $((PROCS * CLIENTS * 1000 / INTERVAL)) round trips/s; $(nproc) cores; $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %-7s %10s %10s %8s %12s %14s %12s %11s\n" mode server sent received lost rt_per_s cpu_us_per_rt mem_kb_per_alloc busy/steal

# run NAME PID PORT MODE: one uclient run against one server; prints a row and sets LAST_US.
run() {
  local name=$1 pid=$2 port=$3 mode=$4 flags=()
  case "$mode" in
    udp) flags=() ;;
    tcp) flags=(-t) ;;
    send) flags=(-s) ;;
    tcp-send) flags=(-t -s) ;;
    tls) flags=(-t -S) ;;
  esac
  local rss0 cpu0 cpu1 peak=0 r out box0 box1
  rss0=$(rss_kb "$pid"); cpu0=$(cpu_ticks "$pid"); box0=$(box_ticks)
  local upids=() i
  for ((i = 0; i < PROCS; i++)); do
    nice -n "$NICE" timeout -s INT 300 turnutils_uclient "${flags[@]}" -u alice -w alicepw -e 127.0.0.1 \
      -r "${PPORTS[$i]}" -m "$CLIENTS" -n "$MESSAGES" -z "$INTERVAL" -l "$LENGTH" -c -p "$port" 127.0.0.1 \
      >"$DIR/$name.$mode.$i.out" 2>&1 &
    upids+=($!)
  done
  local alive=1
  while [ "$alive" = 1 ]; do
    alive=0
    for u in "${upids[@]}"; do kill -0 "$u" 2>/dev/null && alive=1; done
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    [ "$alive" = 1 ] && sleep 0.2
  done
  for u in "${upids[@]}"; do wait "$u" || true; done
  cpu1=$(cpu_ticks "$pid"); box1=$(box_ticks)
  local sent=0 recv=0 lost=0 ttime=0 s v l t
  for ((i = 0; i < PROCS; i++)); do
    out=$DIR/$name.$mode.$i.out
    s=$(sed -nE 's/.*start_mclient: tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+).*/\1/p' "$out" | tail -1)
    v=$(sed -nE 's/.*start_mclient: tot_send_msgs=([0-9]+), tot_recv_msgs=([0-9]+).*/\2/p' "$out" | tail -1)
    l=$(sed -nE 's/.*Total lost packets ([0-9]+).*/\1/p' "$out" | tail -1)
    t=$(sed -nE 's/.*Total transmit time is ([0-9]+).*/\1/p' "$out" | tail -1)
    sent=$((sent + ${s:-0})); recv=$((recv + ${v:-0})); lost=$((lost + ${l:-0})); [ "${t:-0}" -gt "$ttime" ] && ttime=${t:-0}
    if grep -q "ERROR" "$out"; then
      echo "#   $name/$mode (uclient $i): uclient reported errors:"; grep -m3 ERROR "$out" | sed 's/^/#   /'
    fi
  done
  local busy; busy=$(echo "$box0 $box1" | awk '{ if ($5 > $2) printf "%.0f%%/%.0f%%", ($4 - $1) * 100 / ($5 - $2), ($6 - $3) * 100 / ($5 - $2); else print "?" }')
  local ticks=$((cpu1 - cpu0))
  LAST_US=$(awk -v t="$ticks" -v hz="$TCK" -v n="$recv" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')
  local rate; rate=$(awk -v n="$recv" -v s="$ttime" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "nan" }')
  local mem; mem=$(awk -v p="$peak" -v r="$rss0" -v m="$((PROCS * CLIENTS))" 'BEGIN { printf "%.1f", (p - r) / m }')
  printf "%-6s %-7s %10s %10s %8s %12s %14s %12s %11s\n" "$mode" "$name" "$sent" "$recv" "$lost" "$rate" "$LAST_US" "$mem" "$busy"
  return 0
}

for mode in $MODES; do
  kill -0 "$KPID" 2>/dev/null || { echo "# kaiwa is gone"; exit 1; }
  kp=$KPORT; cp=$CPORT
  if [ "$mode" = tls ]; then kp=$KTLS; cp=$CTLS; fi
  run kaiwa "$KPID" "$kp" "$mode"; k=$LAST_US
  kill -0 "$CPID" 2>/dev/null || { echo "# turnserver is gone (killed?)"; exit 1; }
  run coturn "$CPID" "$cp" "$mode"; c=$LAST_US
  awk -v k="$k" -v c="$c" -v m="$mode" 'BEGIN { if (c > 0 && k > 0) printf "#   %s: kaiwa/coturn CPU per round trip = %.2f\n", m, k / c }'
done
echo "# idle RSS now: kaiwa $(rss_kb "$KPID") KB, coturn $(rss_kb "$CPID") KB"
