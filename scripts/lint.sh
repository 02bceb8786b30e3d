#!/usr/bin/env bash
# Lints src/: clang-format (every file formatted as .clang-format says) and clang-tidy (the checks in .clang-tidy,
# every one an error) on the translation units of BUILD_DIR/compile_commands.json. Compiler warnings are left to the
# compilers (-Werror in every build); clang-tidy runs with them off, so only its checks speak. Exits non-zero on any
# finding.
#
#   scripts/lint.sh [BUILD_DIR]          BUILD_DIR defaults to build (configured: CMake writes compile_commands.json)
#
# Environment: LINT_JOBS (clang-tidy processes, default 2); LINT_CHANGED=REF checks with clang-tidy only the sources
# that differ from git REF (e.g. main), for a quick run while iterating; clang-format always checks every file.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
status=0

mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.hpp')
echo "== clang-format --dry-run --Werror: ${#files[@]} files"
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "clang-format: files differ from .clang-format (run clang-format -i on them)"
  status=1
fi

if [ ! -f "$build/compile_commands.json" ]; then
  echo "clang-tidy: no $build/compile_commands.json (configure the build first)"
  exit 1
fi
if [ -n "${LINT_CHANGED:-}" ]; then
  mapfile -t sources < <(git diff --name-only "$LINT_CHANGED" -- 'src/*.cpp')
else
  mapfile -t sources < <(git ls-files 'src/*.cpp')
fi
# Only what the build compiles (http/server.cpp and the app are not built without KAIWA_SERVER).
tidy=()
for f in "${sources[@]}"; do
  [ -f "$f" ] && grep -q "\"file\": \"[^\"]*/$f\"" "$build/compile_commands.json" && tidy+=("$PWD/$f")
done
echo "== clang-tidy: ${#tidy[@]} translation units, ${LINT_JOBS:-2} at a time"
if [ ${#tidy[@]} -gt 0 ]; then
  log=$(mktemp)
  printf '%s\n' "${tidy[@]}" |
    xargs -P "${LINT_JOBS:-2}" -n 1 clang-tidy -p "$build" --quiet --extra-arg=-Wno-everything >"$log" 2>&1
  tidyStatus=$?
  grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Error while processing' "$log" || true
  rm -f "$log"
  if [ "$tidyStatus" -ne 0 ]; then
    echo "clang-tidy: findings above (.clang-tidy)"
    status=1
  fi
fi
[ "$status" -eq 0 ] && echo "lint: clean"
exit "$status"
