#!/usr/bin/env bash
# The soak: churn under steady publish load against herald-pubsub-test-server,
# every delivery verified, resident memory and open descriptors sampled once
# a minute; both must return to their baselines once the load stops. Not run
# by CI (30 minutes). See bench/README.md, "Soak".
#
#   bench/soak.sh [options]
#
# Options:
#   --build-dir DIR   CMake build directory with the tests built (default
#                     build/, as scripts/setup.sh build makes it); the server
#                     is DIR/tests/integration/herald-pubsub-test-server
#   --duration SECS   soak after the warm-up (default 1800)
#   --warmup SECS     the same load before the baseline is taken (default 60)
#   --out FILE        keep the samples and summary as JSON there
#   --help            this text
# Any other option goes to bench/soak.mjs as it is (--rate, --churn,
# --topics, --payload, --idle-timeout, --backpressure-limit, ...; see the
# top of that file).
#
# Exits non-zero when a delivery was lost, duplicated, reordered or
# unaccounted for, a half-open client was not reaped, the server's close
# counts differ from the clients', or descriptors or memory did not return.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build_dir=""
pass=()
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    --*) [ $# -ge 2 ] || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
         pass+=("$1" "$2"); shift 2 ;;
    *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$build_dir" ] || build_dir="$root/build"
server="$build_dir/tests/integration/herald-pubsub-test-server"
if [ ! -x "$server" ]; then
  echo "soak.sh: $server not found: build first (scripts/setup.sh build)" >&2
  exit 2
fi
if [ ! -d "$here/node_modules/ws" ] && [ ! -d "$root/tests/integration/node_modules/ws" ]; then
  "$here/setup.sh" npm
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== herald soak"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "herald $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), node $(node --version), server $server"
exec node "$here/soak.mjs" --server "$server" ${pass[@]+"${pass[@]}"}
