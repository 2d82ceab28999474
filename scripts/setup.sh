#!/usr/bin/env bash
# Installs what Herald needs on Debian 12 (only what is missing) and builds.
#   scripts/setup.sh deps          install system packages
#   scripts/setup.sh build [DIR]   configure and build (default build/)
#   scripts/setup.sh node          install the npm test clients
#   scripts/setup.sh browser       install Debian's Chromium and playwright-core
#                                  (the chat page's end-to-end test, tests/e2e)
#   scripts/setup.sh fuzz          install clang and libFuzzer (tests/fuzz)
# Used by scripts/chat.sh and scripts/test.sh; runs as root or with sudo.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

deps() {
  install_missing g++ make cmake ccache pkg-config libcaf-dev libboost1.81-dev zlib1g-dev \
    libhiredis-dev redis-server ca-certificates
}

node_deps() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_missing nodejs npm
  fi
  (cd "$here/tests/integration" && npm ci --no-audit --no-fund --loglevel=error)
}

# Debian's chromium (the e2e test drives /usr/bin/chromium; no browser is
# downloaded) and an emoji font for the screenshots; playwright-core from npm.
browser_deps() {
  install_missing chromium fonts-noto-color-emoji
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_missing nodejs npm
  fi
  (cd "$here/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)
}

# Debian's clang with libFuzzer and the sanitizer runtimes (the harnesses
# in tests/fuzz; scripts/fuzz.sh builds and runs them).
fuzz_deps() {
  install_missing clang libclang-rt-14-dev
}

build() {
  local dir="${1:-$here/build}"
  shift || true
  cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

case "${1:-}" in
  deps) deps ;;
  node) node_deps ;;
  browser) browser_deps ;;
  fuzz) fuzz_deps ;;
  build) shift; build "$@" ;;
  *) echo "usage: $0 deps|node|browser|fuzz|build [DIR] [cmake args...]" >&2; exit 2 ;;
esac
