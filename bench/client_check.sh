#!/usr/bin/env bash
# Shows that the load client notices a server that loses, duplicates or
# alters a delivery (CTest bench.client_check). The Node server of the
# benchmark (bench/node/server.mjs, the npm package ws) breaks its 100th
# chat message on request (--fault); the client must then fail the run
# (exit status 1, verified=0) and say which message was wrong, or that a
# round did not complete (a lost last message has no successor). A run
# without a fault must pass, so the check cannot pass by failing everything.
#
#   bench/client_check.sh [--build-dir DIR]
#
# Runs with 4 KiB messages: the client compares each of those whole on one
# of its deliveries only (head, tail and size on every one), and the corrupt
# fault changes a byte in the middle, which only the whole comparison sees.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "client_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$build_dir" ] || build_dir="$(default_build_dir "$root")"
client_bin="$build_dir/bench/herald-bench-client"
[ -x "$client_bin" ] || { echo "client_check.sh: $client_bin not found: build first" >&2; exit 2; }
[ -d "$here/node_modules/ws" ] || "$here/setup.sh" npm

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-client-check.XXXXXX")"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# run_case FAULT: runs the client against the Node server with FAULT ("" for
# none); sets status, leaves the client's output in $work/client.out.
run_case() {
  local fault="$1" port="" i
  local args=(--port 0 --clients 8)
  [ -n "$fault" ] && args+=(--fault "$fault")
  # A log of its own per case: the background child truncates its file only
  # once it runs, so a shared one could still show the last case's port.
  local log="$work/server-${fault:-none}.log"
  # Made before the child runs: under set -e a sed on a file the child has
  # not created yet would end this script.
  : >"$log"
  node "$here/node/server.mjs" "${args[@]}" >"$log" 2>&1 &
  server_pid=$!
  for i in $(seq 1 200); do
    port="$(sed -n 's|.*ws://[^/]*:\([0-9][0-9]*\)/.*|\1|p' "$log" 2>/dev/null || true)"
    [ -n "$port" ] && [ "$port" != 0 ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "client_check.sh: the Node server did not start" >&2; cat "$log" >&2; exit 1; }
  status=0
  "$client_bin" --port "$port" --clients 8 --payload 4096 --warmup 0.5 \
    --duration 2 --timeout 3 --server-pid "$server_pid" >"$work/client.out" 2>&1 || status=$?
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

failures=0
run_case ""
if [ "$status" = 0 ] && grep -q 'verified=1' "$work/client.out"; then
  echo "client_check: no fault: verified"
else
  echo "client_check: FAIL: the run without a fault was not verified (status $status)" >&2
  cat "$work/client.out" >&2
  failures=$((failures + 1))
fi

for fault in drop duplicate corrupt; do
  run_case "$fault"
  if [ "$status" = 1 ] && grep -q 'verified=0' "$work/client.out" \
     && grep -Eq 'error: (client [0-9]+: from [A-Za-z0-9]+ expected message|the last round did not complete)' "$work/client.out"; then
    echo "client_check: $fault: caught ($(grep -m1 'error:' "$work/client.out" | cut -c1-100))"
  else
    echo "client_check: FAIL: $fault went unnoticed (status $status)" >&2
    cat "$work/client.out" >&2
    failures=$((failures + 1))
  fi
done
[ "$failures" = 0 ] || exit 1
echo "client_check: passed"
