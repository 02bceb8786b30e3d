#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS (default 20) on a scratch copy of its committed corpus (the committed
# corpus never grows here), one process each, one after another. Prints one line per target and a summary line;
# exits non-zero if any target crashed, leaked, timed out or failed to run. No network needed.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]        BUILD_DIR defaults to build-fuzz (configured with -DKAIWA_FUZZ=ON)
#
# Environment: FUZZ_RUNS=N runs each target for N executions instead of SECONDS (the long runs of docs/fuzzing.md:
# `FUZZ_RUNS=10000000 tests/fuzz/run.sh 1`); FUZZ_TARGETS="fuzz_jwt fuzz_http_request" to run a subset; FUZZ_ARTIFACTS=dir for crash inputs
# (default BUILD_DIR/fuzz-artifacts); FUZZ_KEEP=1 keeps the scratch corpora and logs (their path is printed);
# FUZZ_TIMEOUT=S the time one input may take (default 5; a long run beside other work needs more, as a starved
# process is not a stuck one).
set -u

SECONDS_PER_TARGET=${1:-20}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${2:-$ROOT/build-fuzz}
BIN_DIR=$BUILD_DIR/tests/fuzz
TARGETS=${FUZZ_TARGETS:-"fuzz_native_codec fuzz_native_session fuzz_http_request fuzz_jwt fuzz_stun fuzz_turn fuzz_peerjs_codec fuzz_engineio fuzz_socketio fuzz_socketio_session fuzz_ws_frame fuzz_ice fuzz_rtp fuzz_rtcp fuzz_sdp fuzz_ws_connection fuzz_record fuzz_sctp fuzz_tcp_framing fuzz_cluster_batch fuzz_cluster_load fuzz_data_relay fuzz_socketio_forward"}
ARTIFACTS=${FUZZ_ARTIFACTS:-$BUILD_DIR/fuzz-artifacts}

if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
  echo "usage: $0 [SECONDS] [BUILD_DIR]" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaiwa-fuzz.XXXXXX")
if [ -z "${FUZZ_KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; fi

passed=0
failed=0
for t in $TARGETS; do
  bin=$BIN_DIR/$t
  if [ ! -x "$bin" ]; then
    echo "$t: FAIL (no binary at $bin; build with -DKAIWA_FUZZ=ON)"
    failed=$((failed + 1))
    continue
  fi
  corpus=$WORK/$t/corpus
  mkdir -p "$corpus" "$ARTIFACTS/$t"
  [ -d "$HERE/corpus/$t" ] && cp -r "$HERE/corpus/$t/." "$corpus/"
  dict=()
  [ -f "$HERE/$t.dict" ] && dict=("-dict=$HERE/$t.dict")
  log=$WORK/$t/log
  # -timeout: one input may take FUZZ_TIMEOUT (5) s at most; -rss_limit_mb: memory per process; -print_final_stats for the summary.
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
  "$bin" "${dict[@]}" "${limit[@]}" -timeout="${FUZZ_TIMEOUT:-5}" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t/" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[bKM]?b?' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "$t: ok    ${execs:-?} execs (${rate:-?}/s), ${cov:-cov: ?}, ${corp:-corp: ?}"
    passed=$((passed + 1))
  else
    what=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|ERROR: libFuzzer: [a-z-]+|runtime error: .{0,80}|invariant violated: .{0,80}' "$log")
    input=$(grep -m1 -oE 'Test unit written to .*' "$log" | sed 's/Test unit written to //')
    echo "$t: FAIL  rc=$rc ${what:-see log} ${input:+input: $input} (log: $log)"
    failed=$((failed + 1))
    if [ -z "${FUZZ_KEEP:-}" ]; then
      cp "$log" "$ARTIFACTS/$t/last.log" && echo "  log kept at $ARTIFACTS/$t/last.log"
    fi
  fi
done
[ -n "${FUZZ_KEEP:-}" ] && echo "scratch corpora and logs: $WORK"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
