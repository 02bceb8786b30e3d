#!/usr/bin/env bash
# The newcomer's command: install what is missing, build what serving needs (the server and the web app, not the
# unit tests or the load tools: scripts/test.sh builds those), and start `kaiwa serve` on http://127.0.0.1:8080.
# Extra arguments go to `kaiwa serve` (e.g. --listen 0.0.0.0:8443 --tls-self-signed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
targets=(kaiwa)
# The web app is a target unless build/ was configured with -DKAIWA_WEB=OFF.
if [ ! -f build/build.ninja ] || ninja -C build -t targets all 2>/dev/null | grep -q '^kaiwa_web:'; then
  targets+=(kaiwa_web)
fi
bash scripts/build.sh "${targets[@]}"
exec build/kaiwa serve "$@"
