#!/usr/bin/env bash
# A big herald-chat room under load (bench/README.md, "Chat rooms"; not run
# by CI): starts herald-chat on a free loopback port and runs
# herald-chat-load against it: 10,000 members join one room, then 100 chat
# messages per second go into it for 30 s.
#
#   bash bench/chat_load.sh [--build-dir DIR] [--rt|--rt-same] [--linger MS]
#                           [client options...]
#
# Client options (passed on): --members N, --rate R, --duration S,
# --senders N, --connect-parallel N, --timeout S. --rt runs the server at
# SCHED_FIFO 20 and the client at 30, as bench/run.sh --rt does; --rt-same
# runs both at 20 (the client then never preempts the server). --linger
# is herald-chat's (20 ms by default).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
rt=0
linger=()
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --rt) rt=1; shift ;;
    --rt-same) rt=2; shift ;;
    --linger) linger=(--linger "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done

chat="$build/app/herald-chat"
load="$build/bench/herald-chat-load"
if [ ! -x "$chat" ] || [ ! -x "$load" ]; then
  cmake --build "$build" -j"$(nproc)" --target herald-chat herald-chat-load
fi

# 10,000 sockets on each side.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 10100 ]; then
  echo "chat_load.sh: ulimit -n is $(ulimit -n); 10,100 or more needed" >&2
  exit 2
fi

prio_server=()
prio_client=()
if [ "$rt" = 1 ]; then
  prio_server=(chrt -f 20)
  prio_client=(chrt -f 30)
elif [ "$rt" = 2 ]; then
  prio_server=(chrt -f 20)
  prio_client=(chrt -f 20)
fi

log="$(mktemp)"
HERALD_LOG=warn "${prio_server[@]}" "$chat" --port 0 --host 127.0.0.1 \
  --public "$root/app/chat/public" "${linger[@]}" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 100); do
  port="$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$log")"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "chat_load.sh: herald-chat did not start" >&2; cat "$log" >&2; exit 2; }

echo "herald-chat pid $server port $port; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
"${prio_client[@]}" "$load" --port "$port" --server-pid "$server" "${pass[@]}"
