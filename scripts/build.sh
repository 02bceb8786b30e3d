#!/usr/bin/env bash
# Configures and builds kaiwa in build/: every target (server, web app, unit tests, load tools), or only the targets
# named (scripts/dev.sh builds `kaiwa kaiwa_web`; scripts/test.sh builds everything).
#   scripts/build.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if [ $# -eq 0 ]; then
  cmake --build build
else
  cmake --build build --target "$@"
fi
