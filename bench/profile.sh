#!/usr/bin/env bash
# Profiles herald-bench-server under the chat-room load with perf:
#
#   bench/profile.sh [--build-dir DIR] [--clients N] [--payload BYTES]
#                    [--seconds S] [--out DIR]
#
# Records call graphs (frame pointers and DWARF unwinding need no rebuild:
# --call-graph dwarf) of the server for S seconds (default 5) in the middle
# of a throughput run, then prints the hottest symbols (self time) and the
# hottest Herald functions including what they call. perf comes from the
# Debian package linux-perf (apt-get install linux-perf).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

build_dir=""
clients=32
payload=0
seconds=5
out_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$build_dir" ] || build_dir="$(default_build_dir "$root")"
command -v perf >/dev/null || { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 2; }
[ -n "$out_dir" ] || out_dir="$(mktemp -d "${TMPDIR:-/tmp}/herald-profile.XXXXXX")"
mkdir -p "$out_dir"
"$build_dir/bench/herald-bench-server" --port 0 --clients "$clients" \
  >"$out_dir/server.log" 2>&1 &
spid=$!
trap 'kill -TERM $spid 2>/dev/null || true; wait $spid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's|.*ws://[^/]*:\([0-9][0-9]*\)/.*|\1|p' "$out_dir/server.log")"
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "profile.sh: the server did not start" >&2; cat "$out_dir/server.log" >&2; exit 1; }
"$build_dir/bench/herald-bench-client" --port "$port" --clients "$clients" \
  --payload "$payload" --warmup 2 --duration $((seconds + 2)) \
  --server-pid "$spid" --quiet >"$out_dir/client.log" 2>&1 &
cpid=$!
sleep 3
perf record -q -F 499 --call-graph dwarf,16384 -p "$spid" \
  -o "$out_dir/perf.data" -- sleep "$seconds" 2>/dev/null
wait "$cpid" || true
grep '^RESULT' "$out_dir/client.log" || true

echo
echo "== self time (top symbols)"
perf report -i "$out_dir/perf.data" --no-children --sort dso,sym --stdio \
  --percent-limit 0.7 -g none 2>/dev/null | grep -E '^ +[0-9]' | head -40
echo
echo "== Herald and CAF functions, including callees"
perf report -i "$out_dir/perf.data" --children --sort sym --stdio \
  --percent-limit 2 -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | grep -E 'herald|caf::|sendmsg|recv|malloc|free' | head -40
echo
echo "perf data: $out_dir/perf.data (perf report -i ... for call graphs)"
