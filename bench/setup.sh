#!/usr/bin/env bash
# Prepares the chat-room benchmark (bench/README.md):
#   bench/setup.sh [BUILD_DIR]   system packages, Bun and ws from npm, and a
#                                RelWithDebInfo build of herald-bench-server and
#                                herald-bench-client (default BUILD_DIR:
#                                build-bench/ at the root)
#   bench/setup.sh npm           only Bun and ws (npm ci in bench/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

npm_deps() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    "$root/scripts/setup.sh" deps >/dev/null
    command -v npm >/dev/null || {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    }
  fi
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  # Bun's package puts its binary in place in a postinstall script; run it
  # if the installer skipped it.
  if ! "$here/node_modules/.bin/bun" --version >/dev/null 2>&1; then
    (cd "$here/node_modules/bun" && node install.js)
  fi
  echo "bench/setup.sh: bun $("$here/node_modules/.bin/bun" --version), ws $(node -p 'require(process.argv[1]).version' "$here/node_modules/ws/package.json")"
}

build() {
  local dir="$1"
  "$root/scripts/setup.sh" deps
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_BUILD_TESTS=OFF >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target herald-bench-server herald-bench-client
}

case "${1:-}" in
  npm) npm_deps ;;
  -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *)
    npm_deps
    build "${1:-$root/build-bench}"
    ;;
esac
