#!/usr/bin/env bash
# Runs every kaiwa test: the layering and lint checks, unit tests, unit tests under ASan+UBSan, fuzzers (briefly), the
# server's integration tests over loopback (also against the ASan+UBSan server), the unit and integration tests under
# ThreadSanitizer, and the browser end-to-end suite. Installs what is missing and builds first. Ends with one line
# "N passed, N failed".
# Environment: FUZZ_SECONDS (per fuzz target, default 10), SKIP_E2E=1, SKIP_FUZZ=1, SKIP_ASAN=1, SKIP_TSAN=1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
passed=0
failed=0
failures=()
log_dir=$(mktemp -d)

stage() { echo; echo "==== $1 ($(date +%H:%M:%S))"; }
count_ctest() {  # $1 = log, $2 = suite name
  local line total bad
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$1" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); failures+=("$2: no result"); return; fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad)); failed=$((failed + bad))
  [ "$bad" -eq 0 ] || failures+=("$2: $bad failed")
}

stage "dependencies"
bash scripts/install-deps.sh || { echo "dependency installation failed"; exit 1; }

stage "layers: every module includes only the modules it declares (scripts/check-layers.sh)"
if bash scripts/check-layers.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("layers"); fi

stage "build"
bash scripts/build.sh || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

stage "lint: clang-format and clang-tidy on src/ (scripts/lint.sh)"
if bash scripts/lint.sh build; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("lint"); fi

stage "unit tests"
ctest --test-dir build -L unit --output-on-failure -j2 2>&1 | tee "$log_dir/unit.log"
count_ctest "$log_dir/unit.log" unit

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  stage "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
  if [ ! -f build-asan/build.ninja ]; then
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKAIWA_SANITIZE=ON -DKAIWA_SERVER=ON \
      -DKAIWA_WEB=OFF -DKAIWA_BENCH=OFF >/dev/null
  fi
  if cmake --build build-asan; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan --output-on-failure -j2 2>&1 | tee "$log_dir/asan.log"
    count_ctest "$log_dir/asan.log" asan
  else
    failed=$((failed + 1)); failures+=("asan: build failed")
  fi
fi

# The fuzzers' smoke run takes one core for a few minutes while the integration suite below mostly waits on its
# servers' timers, so the two run side by side (the fuzzers niced); the fuzz result is counted after the suite.
fuzz_pid=""
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  stage "fuzzers (${FUZZ_SECONDS:-10} s each, beside the integration suite)"
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAIWA_FUZZ=ON \
      -DKAIWA_SERVER=OFF -DKAIWA_TESTS=OFF -DKAIWA_WEB=OFF -DKAIWA_BENCH=OFF >/dev/null
  fi
  if cmake --build build-fuzz; then
    nice -n 10 bash tests/fuzz/run.sh "${FUZZ_SECONDS:-10}" build-fuzz >"$log_dir/fuzz.log" 2>&1 &
    fuzz_pid=$!
  else
    failed=$((failed + 1)); failures+=("fuzz: build failed")
  fi
fi

fuzz_result() {
  [ -n "$fuzz_pid" ] || return 0
  wait "$fuzz_pid"
  stage "fuzzers: result"
  cat "$log_dir/fuzz.log"
  local line p f
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log_dir/fuzz.log" | tail -1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f)); [ "$f" -eq 0 ] || failures+=("fuzz: $f failed")
  else
    failed=$((failed + 1)); failures+=("fuzz: no result")
  fi
}

node_suite() {  # $1 = name, rest = node --test arguments
  local name=$1; shift
  KAIWA_BIN="$root/build/kaiwa" node --test --test-concurrency=1 --test-reporter=tap "$@" 2>&1 | tee "$log_dir/$name.log"
  local p f c
  p=$(grep -E "^# pass [0-9]+" "$log_dir/$name.log" | tail -1 | awk '{print $3}')
  f=$(grep -E "^# fail [0-9]+" "$log_dir/$name.log" | tail -1 | awk '{print $3}')
  c=$(grep -E "^# cancelled [0-9]+" "$log_dir/$name.log" | tail -1 | awk '{print $3}')
  f=$((${f:-0} + ${c:-0}))  # a test that timed out is "cancelled": a failure too
  if [ -n "$p" ]; then
    passed=$((passed + p)); failed=$((failed + f)); [ "$f" -eq 0 ] || failures+=("$name: $f failed")
  else
    failed=$((failed + 1)); failures+=("$name: no result")
  fi
}

stage "integration: the server over loopback (protocol, limits, auth, resume, shutdown, HTTP)"
node_suite integration --experimental-websocket tests/integration/
fuzz_result

# The integration suite against a sanitized server, in the background: `san_start NAME BINARY ENV...` (ENV: the
# sanitizer's options, each given a log_path under a fresh directory); `san_finish NAME` waits and counts it. A report
# is a failure even when the tests passed (they do not see the server's exit). The ASan and TSan runs go side by side:
# the suite mostly waits on its servers' timers, and every server it starts listens on ports of its own.
declare -A san_pid san_dir
san_start() {
  local name=$1 bin=$2
  shift 2
  local dir env=()
  dir=$(mktemp -d)
  for e in "$@"; do env+=("$e:log_path=$dir/${e%%_OPTIONS=*}"); done
  env "${env[@]}" KAIWA_WEB_ROOT="$root/build/web" KAIWA_BIN="$bin" KAIWA_SANITIZED=1 \
    node --test --test-concurrency=1 --test-reporter=tap --experimental-websocket tests/integration/ \
    >"$log_dir/$name-integration.log" 2>&1 &
  san_pid[$name]=$!
  san_dir[$name]=$dir
}
san_finish() {
  local name=$1
  local dir=${san_dir[$name]} log="$log_dir/$name-integration.log" reports fails
  wait "${san_pid[$name]}"
  stage "integration against the server under $name: result"
  tail -5 "$log"
  reports=$(find "$dir" -type f | wc -l)
  fails=$(grep -E "^# (fail|cancelled) [0-9]+" "$log" | awk '{s += $3} END {print s + 0}')
  if [ "$reports" -eq 0 ] && [ "$fails" -eq 0 ] && grep -qE "^# pass [0-9]+" "$log"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failures+=("integration under $name: $reports sanitizer reports, $fails failed tests")
    grep -E "^not ok" "$log" | head -10
    for f in $(find "$dir" -type f | head -3); do echo "---- $f"; head -60 "$f"; done
  fi
  rm -rf "$dir"
}

tsan_base="halt_on_error=0:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
tsan_built=0
if [ "${SKIP_TSAN:-0}" != 1 ]; then
  # Workers hand connections, rooms' events and TURN sockets to each other: ThreadSanitizer checks those hand-overs
  # on the unit tests and on the whole integration suite run against the instrumented server. tests/tsan.supp lists
  # the proven false positives (uninstrumented libraries only).
  stage "unit tests under ThreadSanitizer"
  if [ ! -f build-tsan/build.ninja ]; then
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKAIWA_TSAN=ON -DKAIWA_SERVER=ON \
      -DKAIWA_WEB=OFF -DKAIWA_BENCH=OFF >/dev/null
  fi
  # Only the server and the unit binaries whose tests start threads or worker pools (the loop, the hub, the PeerJS
  # service, metrics, TURN's reload, the relay): the sans-I/O protocol cores (SDP, RTP, ICE, DTLS, SRTP, the router)
  # are single-threaded by design, and the integration suite covers the media path's threads in the real server.
  # ctest -L unit then runs the binaries built here (an unbuilt one's placeholder test has no label).
  if cmake --build build-tsan --target kaiwa kaiwa_unit_tests kaiwa_turn_tests kaiwa_signal_alloc_tests; then
    TSAN_OPTIONS="$tsan_base" ctest --test-dir build-tsan -L unit --output-on-failure -j2 2>&1 | tee "$log_dir/tsan.log"
    count_ctest "$log_dir/tsan.log" tsan
    tsan_built=1
  else
    failed=$((failed + 1)); failures+=("tsan: build failed")
  fi
fi

stage "integration against the servers under AddressSanitizer + UndefinedBehaviorSanitizer and ThreadSanitizer"
if [ "${SKIP_ASAN:-0}" != 1 ] && [ -x build-asan/kaiwa ]; then
  # Every connection path, the shutdown and the exit, against the server built with ASan+UBSan (the web app from
  # build/).
  san_start asan "$root/build-asan/kaiwa" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
fi
[ "$tsan_built" = 1 ] && san_start tsan "$root/build-tsan/kaiwa" "TSAN_OPTIONS=$tsan_base"
[ -n "${san_pid[asan]:-}" ] && san_finish asan
[ -n "${san_pid[tsan]:-}" ] && san_finish tsan

if [ "${SKIP_E2E:-0}" != 1 ]; then
  stage "end-to-end in headless Chromium and Firefox"
  node_suite e2e tests/e2e/
fi

echo
echo "==== summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
rm -rf "$log_dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
