#!/usr/bin/env bash
# SFU forwarding benchmark: kaiwa vs Debian's Janus 1.1.2 (VideoRoom), in one run, with the same load from
# `kaiwa-loadgen media` (real ICE, DTLS, SRTP GCM; kaiwa over WHIP/WHEP, Janus over its WebSocket API). Builds
# nothing. Both servers and the generator run in a private network namespace this script makes (Janus gathers no
# candidates on loopback interfaces: a veth carries 127.0.0.2 for it, ../shared/docs/anchors.md); kaiwa listens on
# 127.0.0.1 with its default worker count.
#
#   bench/sfu-vs-janus.sh [--rates "500 2000 5000"] [--max-rate 15000] [--subscribers 10] [--publishers 1]
#                         [--seconds 10] [--reps 3] [--mem-subscribers 100] [--mem-join-interval MS]
#                         [--servers "kaiwa janus"] [--nice N]
#                         [--kaiwa PATH] [--loadgen PATH] [--out FILE.jsonl]
#
# For each step (each rate, then the max-rate step) and each repetition, the generator runs once against each server,
# the order alternating between repetitions. A step is N publishers x M subscribers; each publisher sends RATE video
# packets/s of 1000 bytes (30 frames/s, a keyframe every 2 s or on PLI) plus 50 audio packets/s of 160 bytes, paced on
# a 1 ms tick. The generator reads the server's utime+stime (/proc/PID/stat) and RSS over its own measured window, so
# a row has: packets forwarded per second (received by the subscribers), the server's CPU µs per forwarded packet and
# forwarded packets per second per core of server CPU, loss (by the sender's packet index, tail included), jitter
# (RFC 3550 A.8 on the sender's clock stamp) p50/p99 over the streams, one-way latency p50/p99, first packet of a
# frame after a subscriber's answer p50/max, the generator's own CPU and the whole box's busy share (others' work
# included). The memory step puts --mem-subscribers subscribers on one publisher at 100 packets/s and divides the RSS
# growth by the subscriber streams (audio + video each; --mem-join-interval spaces their joins, as viewers arrive
# over time, so that memory a transport gives back once connected serves the next one); it runs first, on fresh servers, since memory freed by an
# earlier step is reused and would hide the growth. The drops column says where loss happened: datagrams the kernel
# dropped for full receive buffers on the server's sockets / the generator's (from the namespace's /proc/net/udp),
# and kaiwa's own SFU drop counters by reason. A summary gives medians per server and step and the kaiwa/janus ratio
# of CPU per forwarded packet. Every run's JSON is kept in --out (default /tmp/sfu-vs-janus-<time>.jsonl).
#
# Janus: `apt-get install -y janus`. Needs root (unshare -n, ip link).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES="500 2000 5000" MAX_RATE=15000 SUBS=10 PUBS=1 SECONDS_=10 REPS=3 MEM_SUBS=100 MEM_JOIN=0 SERVERS="kaiwa janus" NICE=0
KAIWA=build/kaiwa LOADGEN=build/bench/kaiwa-loadgen OUT=/tmp/sfu-vs-janus-$(date -u +%Y%m%dT%H%M%S).jsonl
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) RATES="$2"; shift ;;
    --max-rate) MAX_RATE="$2"; shift ;;
    --subscribers) SUBS="$2"; shift ;;
    --publishers) PUBS="$2"; shift ;;
    --seconds) SECONDS_="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --mem-subscribers) MEM_SUBS="$2"; shift ;;
    --mem-join-interval) MEM_JOIN="$2"; shift ;;
    --servers) SERVERS="$2"; shift ;;
    --nice) NICE="$2"; shift ;;
    --kaiwa) KAIWA="$2"; shift ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$KAIWA" ] || { echo "no kaiwa binary at $KAIWA (build it, or pass --kaiwa)" >&2; exit 2; }
[ -x "$LOADGEN" ] && [ -x "$(dirname "$LOADGEN")/kaiwa-loadgen-media" ] ||
  { echo "no $LOADGEN with kaiwa-loadgen-media beside it (build kaiwa with KAIWA_BENCH=ON)" >&2; exit 2; }
if [[ " $SERVERS " == *" janus "* ]] && ! command -v janus >/dev/null; then
  echo "janus not found: apt-get install -y janus (Debian 1.1.2), or run with --servers kaiwa" >&2; exit 2
fi
[ "$(id -u)" = 0 ] || { echo "needs root: it makes a network namespace with a veth for Janus" >&2; exit 2; }

# Everything below runs in a fresh network namespace: only this run's traffic, nothing reachable outside.
if [ -z "${KAIWA_SFU_BENCH_NS:-}" ]; then
  KAIWA_SFU_BENCH_NS=1 exec unshare -n "$0" "${ARGS[@]}"
fi
ip link set lo up
ip link add veth0 type veth peer name veth1
ip addr add 127.0.0.2/8 dev veth0
ip link set veth0 up
ip link set veth1 up

DIR=$(mktemp -d "${TMPDIR:-/tmp}/sfu-bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
box_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

KPORT=18080 KSFU=18081 JPORT=18188
nice -n "$NICE" "$KAIWA" serve --listen "127.0.0.1:$KPORT" --no-turn --sfu-listen "127.0.0.1:$KSFU" \
  --log-level warn >"$DIR/kaiwa.log" 2>&1 &
KPID=$!; PIDS+=("$KPID")

JPID=0
if [[ " $SERVERS " == *" janus "* ]]; then
  LIB=$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_videoroom.so$')")/..
  disable_all_but() { # folder keep: every module in the folder but `keep`, comma-separated
    find "$LIB/$1" -name 'libjanus_*.so' -printf '%f\n' | grep -v "^$2\$" | paste -sd, -
  }
  cat >"$DIR/janus.jcfg" <<EOF
general: {
  configs_folder = "$DIR"
  plugins_folder = "$LIB/plugins"
  transports_folder = "$LIB/transports"
  events_folder = "$LIB/events"
  loggers_folder = "$LIB/loggers"
  debug_level = 3
  protected_folders = []
}
certificates: {}
media: {}
nat: {
  ice_lite = true
  ice_enforce_list = "veth0"
  ignore_mdns = true
}
plugins: { disable = "$(disable_all_but plugins libjanus_videoroom.so)" }
transports: { disable = "$(disable_all_but transports libjanus_websockets.so)" }
loggers: { disable = "$(disable_all_but loggers none)" }
events: { broadcast = false }
EOF
  echo 'general: {}' >"$DIR/janus.plugin.videoroom.jcfg"
  cat >"$DIR/janus.transport.websockets.jcfg" <<EOF
general: { json = "compact" ws = true ws_port = $JPORT ws_ip = "127.0.0.2" wss = false }
admin: { admin_ws = false admin_wss = false }
EOF
  nice -n "$NICE" janus -C "$DIR/janus.jcfg" -F "$DIR" >"$DIR/janus.log" 2>&1 &
  JPID=$!; PIDS+=("$JPID")
fi
sleep 2
kill -0 "$KPID" 2>/dev/null || { echo "kaiwa did not start:"; cat "$DIR/kaiwa.log"; exit 1; }
[ "$JPID" = 0 ] || kill -0 "$JPID" 2>/dev/null || { echo "janus did not start:"; tail "$DIR/janus.log"; exit 1; }

echo "# sfu-vs-janus: $PUBS publisher(s) x $SUBS subscribers, 1000-byte video at RATE pkt/s + 50 pkt/s audio, $SECONDS_ s per run, $REPS reps, nice $NICE"
echo "# kaiwa $("$KAIWA" --version 2>/dev/null | head -1) (default workers), janus $(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo '?'); $(nproc) cores; $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %-6s %6s %9s %7s %7s %7s %7s %8s %7s %9s %7s %7s %7s %7s %7s %6s %6s %6s %s\n" step server rate fwd/s \
  lost jit50us jit99us lat50us lat99us cpu_us fwd/core ff50ms ffmaxms kfminms kf50ms kfmaxms rss_kB gen_s busy% drops

# run STEP SERVER RATE SUBSCRIBERS SECONDS: one generator run against one server; a row, its JSON kept.
run() {
  local step=$1 name=$2 rate=$3 subs=$4 secs=$5 pid target box0 box1 json extra=()
  [ "$step" = mem ] && [ "$MEM_JOIN" != 0 ] && extra=(--join-interval "$MEM_JOIN")
  if [ "$name" = kaiwa ]; then pid=$KPID; target=(--server kaiwa --http "127.0.0.1:$KPORT")
  else pid=$JPID; target=(--server janus --ws "127.0.0.2:$JPORT"); fi
  kill -0 "$pid" 2>/dev/null || { echo "# $name is gone"; return 0; }
  box0=$(box_ticks)
  json=$(timeout 300 nice -n "$NICE" "$LOADGEN" media "${target[@]}" --publishers "$PUBS" --subscribers "$subs" \
    --rate "$rate" --seconds "$secs" --server-pid "$pid" --label "$step" "${extra[@]}" 2>"$DIR/loadgen.err" |
    grep "^{") || true
  box1=$(box_ticks)
  if [ -z "$json" ]; then echo "# $step/$name/$rate: generator failed: $(head -c 300 "$DIR/loadgen.err")"; return 0; fi
  echo "$json" >>"$DIR/runs.jsonl"
  echo "$json" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
b0, b1 = [list(map(int, x.split())) for x in sys.argv[1:3]]
busy = 100.0 * (b1[0] - b0[0]) / max(1, b1[1] - b0[1])
drops = "%d/%d %s" % (r["udpDropsServer"], r["udpDropsGenerator"], r["serverDrops"])
print("%-6s %-6s %6d %9.0f %7d %7.0f %7.0f %7.0f %8.0f %7.2f %9.0f %7.0f %7.0f %7.0f %7.0f %7.0f %6.1f %6.2f %6.0f %s" % (
  r["label"], r["server"], r["rate"], r["received"] / r["seconds"], r["lost"], r["jitterP50Us"], r["jitterP99Us"],
  r["latencyP50Us"], r["latencyP99Us"], r["cpuUsPerForwarded"], r["forwardedPerCoreS"], r["firstFrameP50Ms"],
  r["firstFrameMaxMs"], r.get("firstKeyframeMinMs", 0), r["firstKeyframeP50Ms"], r["firstKeyframeMaxMs"],
  r["rssPerStreamKb"], r["loadgenCpuS"], busy, drops.strip()))' "$box0" "$box1"
}

for name in $SERVERS; do run mem "$name" 100 "$MEM_SUBS" 3; done
for ((rep = 1; rep <= REPS; rep++)); do
  order=$SERVERS
  [ $((rep % 2)) = 0 ] && order=$(echo "$SERVERS" | tr ' ' '\n' | tac | paste -sd' ')
  for rate in $RATES; do
    for name in $order; do run "p$rate" "$name" "$rate" "$SUBS" "$SECONDS_"; done
  done
  for name in $order; do run max "$name" "$MAX_RATE" "$SUBS" "$SECONDS_"; done
done

echo "# medians per server and step (rows above): CPU us per forwarded packet, forwarded/s per core, loss, first frame max"
python3 - "$DIR/runs.jsonl" "$SERVERS" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
servers = sys.argv[2].split()
steps = []
for r in runs:
    if r["label"] not in steps: steps.append(r["label"])
for step in steps:
    med = {}
    for s in servers:
        rs = [r for r in runs if r["label"] == step and r["server"] == s]
        if not rs: continue
        m = lambda k: statistics.median(r[k] for r in rs)
        med[s] = m("cpuUsPerForwarded")
        extra = ""
        if step == "mem":
            extra = ", RSS per subscriber stream %.1f kB (%d streams)" % (m("rssPerStreamKb"), rs[0]["subscriberStreams"])
        lost = sum(r["lost"] for r in rs)
        got = sum(r["receivedTotal"] for r in rs)
        print("%-6s %-6s cpu %.2f us/fwd, %.0f fwd/s per core, %.0f fwd/s, lost %d (%.2f %%, sum), jitter p99 %.0f us, "
              "first frame max %.0f ms, first keyframe max %.0f ms%s (%d runs)" % (step, s, med[s],
              m("forwardedPerCoreS"), statistics.median(r["received"] / r["seconds"] for r in rs), lost,
              100.0 * lost / max(1, lost + got), m("jitterP99Us"), max(r["firstFrameMaxMs"] for r in rs),
              max(r["firstKeyframeMaxMs"] for r in rs), extra, len(rs)))
    if "kaiwa" in med and "janus" in med and med["janus"] > 0:
        print("%-6s kaiwa/janus CPU per forwarded packet = %.2f" % (step, med["kaiwa"] / med["janus"]))
EOF
cp "$DIR/runs.jsonl" "$OUT" && echo "# every run's JSON: $OUT"
echo "# end: load average $(cut -d' ' -f1-3 /proc/loadavg); kaiwa RSS $(awk '/^VmRSS/ {print $2}' /proc/$KPID/status) kB"
