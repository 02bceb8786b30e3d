#!/usr/bin/env bash
# The newcomer's command: install what is missing, build, and start `kaiwa serve` on http://127.0.0.1:8080.
# Extra arguments go to `kaiwa serve` (e.g. --listen 0.0.0.0:8443 --tls-self-signed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec build/kaiwa serve "$@"
