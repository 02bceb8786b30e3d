#!/usr/bin/env bash
# Installs what kaiwa needs to build and test on Debian 12 (bookworm), only what is missing, and the npm packages.
# Usage: scripts/install-deps.sh [--no-browser]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build ccache pkg-config git curl
  libhiredis-dev  # the cluster's Redis client (docs/cluster.md)
  redis-server  # only for the cluster's tests; its service is kept off below
  libboost1.81-dev libboost-json1.81-dev libssl-dev libcli11-dev libspdlog-dev libfmt-dev
  libidn-dev  # stringprep's SASLprep profile, for TURN credentials
  libsrtp2-dev  # the reference the SFU's SRTP is tested against
  libwebm-dev  # its WebM parser reads back the recorder's files in the unit tests
  libusrsctp-dev  # SCTP for the SFU's data channels
  libgtest-dev clang libclang-rt-14-dev clang-format clang-tidy  # clang-format and clang-tidy: scripts/lint.sh
  coturn)  # only for its client tools (turnutils_*) in the TURN interop tests and bench; its daemon stays off
# The e2e tests drive both browsers, GStreamer's webrtcbin as a native WHIP publisher (tests/e2e/sfu-gstreamer) and
# ffprobe.
[ "${1:-}" = "--no-browser" ] || packages+=(chromium firefox-esr
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice
  python3-gi gir1.2-gst-plugins-bad-1.0 iproute2 util-linux
  ffmpeg)  # ffprobe checks the recordings' files (tests/e2e/recording)
# Node.js 20+ with npm, from Debian only if there is none already (it may have been installed another way).
if ! command -v node >/dev/null || ! command -v npm >/dev/null ||
   ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # RUNLEVEL=1: no package service (coturn's turnserver) is started by the install.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian enables coturn.service on install: keep it from starting (now and at boot) and from holding port 3478,
# which kaiwa's TURN uses by default.
if dpkg-query -W -f='${Status}' coturn 2>/dev/null | grep -q "install ok installed"; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now coturn >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/coturn ]; then
    $sudo /etc/init.d/coturn stop >/dev/null 2>&1 || true
  fi
fi
# redis-server is for the tests, which start their own on a free port: the packaged service stays off.
if dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "install ok installed"; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/redis-server ]; then
    $sudo /etc/init.d/redis-server stop >/dev/null 2>&1 || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
