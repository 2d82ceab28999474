#!/usr/bin/env bash
# Cross-node throughput: the chat-room benchmark (bench/README.md) with one
# Herald instance, then with two instances on this machine that share the
# room through one redis-server (started here on a free loopback port, no
# persistence), the clients split evenly across them.
#
#   bench/crossnode.sh [--build-dir DIR] [--clients N] [--messages M]
#                      [--duration SECS] [--warmup SECS] [--runs N] [--rt]
#
# --rt runs servers and Redis at real-time priority (chrt -f 20, as root) and
# the client above them (chrt -f 30), as bench/run.sh --rt does on a shared
# machine.
#
# Prints the client's RESULT line per run. In the two-node runs every
# message is published to Redis once by its origin node and delivered by
# both nodes: half of the deliveries (those to the other node's clients)
# have crossed nodes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build_dir="$root/build"
clients=32
messages=50
duration=10
warmup=2
runs=3
prio=()
client_prio=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --messages) messages="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --rt) prio=(chrt -f 20); client_prio=(chrt -f 30); shift ;;
    --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "crossnode.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
server_bin="$build_dir/bench/herald-bench-server"
client_bin="$build_dir/bench/herald-bench-client"
command -v redis-server >/dev/null || { echo "crossnode.sh: redis-server missing (apt-get install redis-server)" >&2; exit 2; }
out="$(mktemp -d)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start LOG ARGS...: a bench server on a free port; sets $port.
start() {
  local log="$1"; shift
  ${prio[@]+"${prio[@]}"} "$server_bin" --port 0 "$@" >"$log" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 1 200); do
    if grep -q "listening on" "$log"; then
      port="$(sed -n 's|.*ws://[^/]*:\([0-9][0-9]*\)/.*|\1|p' "$log" | head -1)"
      return 0
    fi
    sleep 0.05
  done
  echo "crossnode.sh: server did not start" >&2; cat "$log" >&2; return 1
}

stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

rport="$(free_port)"
${prio[@]+"${prio[@]}"} redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$out" --daemonize no >"$out/redis.log" 2>&1 &
redis_pid=$!
for i in $(seq 1 100); do
  grep -q "Ready to accept" "$out/redis.log" && break
  sleep 0.05
done
url="redis://127.0.0.1:$rport"
half=$((clients / 2))
load=(--clients "$clients" --messages "$messages" --duration "$duration"
      --warmup "$warmup" --quiet)

for run in $(seq 1 "$runs"); do
  start "$out/one.log" --clients "$clients"
  echo -n "one node:  "
  ${client_prio[@]+"${client_prio[@]}"} "$client_bin" --port "$port" "${load[@]}" | grep '^RESULT'
  stop_all

  start "$out/a.log" --clients "$half" --redis "$url"
  p1="$port"
  start "$out/b.log" --clients "$((clients - half))" --redis "$url"
  p2="$port"
  echo -n "two nodes: "
  ${client_prio[@]+"${client_prio[@]}"} "$client_bin" --port "$p1" --port2 "$p2" "${load[@]}" \
    | grep '^RESULT'
  stop_all
done
kill -TERM "$redis_pid" 2>/dev/null || true
wait "$redis_pid" 2>/dev/null || true
