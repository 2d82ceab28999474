#!/usr/bin/env bash
# Counts what one event costs a server: system calls (strace -c), futex
# calls and context switches per WebSocket handshake and per delivery.
#
#   bench/per_event.sh [--build-dir DIR] [--servers LIST] [--seconds S]
#                      [--herald-bin NAME=PATH]... [--out DIR] [--pin]
#
# Two modes of herald-bench-client, each against every server in turn:
# `handshake` (32 parallel connect/upgrade/reset loops) and `latency`
# (1,000 subscribers, a publish every 10 ms). For each: one run with
# strace -f -c attached to the server for S seconds (default 5) of the
# measured window, one without it that reads the server's context switches
# (/proc/PID/task/*/status) over the same window. Events in the traced
# window: handshakes = the server's successful accept calls in the trace;
# deliveries = the client's rate x S (a publish every 10 ms). Servers: herald, bun (default both), and any
# other Herald build given as --herald-bin NAME=PATH (e.g. the commit
# before a change). --pin runs every server on CPUs of its own and the
# client on the last CPU, as bench/run.sh --pin. See bench/README.md,
# "Per-event costs".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

build_dir=""
servers="herald,bun"
seconds=5
out_dir=""
extra=()
pin=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --servers) servers="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --herald-bin) extra+=("$2"); shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    --pin) pin=1; shift ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "per_event.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$build_dir" ] || build_dir="$(default_build_dir "$root")"
command -v strace >/dev/null || { echo "per_event.sh: strace not found (apt-get install strace)" >&2; exit 2; }
[ -n "$out_dir" ] || out_dir="$(mktemp -d "${TMPDIR:-/tmp}/herald-per-event.XXXXXX")"
mkdir -p "$out_dir"
client="$build_dir/bench/herald-bench-client"
bun_bin="$here/node_modules/.bin/bun"
ulimit -n 20000 2>/dev/null || true

server_pin=()
client_pin=()
if [ "$pin" = 1 ]; then
  read -r -a cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
  if [ ${#cpus[@]} -lt 2 ]; then
    echo "per_event.sh: --pin needs at least 2 CPUs" >&2
    exit 2
  fi
  server_pin=(taskset -c "$(IFS=,; echo "${cpus[*]:0:${#cpus[@]}-1}")")
  client_pin=(taskset -c "${cpus[${#cpus[@]}-1]}")
fi

declare -A bins=([herald]="$build_dir/bench/herald-bench-server")
names=()
IFS=, read -r -a names <<<"$servers"
for e in ${extra[@]+"${extra[@]}"}; do
  bins[${e%%=*}]="${e#*=}"
  names+=("${e%%=*}")
done

# start NAME CLIENTS LOG: sets pid and port.
start() {
  case "$1" in
    bun) ${server_pin[@]+"${server_pin[@]}"} "$bun_bin" "$here/bun/server.mjs" --port 0 --clients "$2" >"$3" 2>&1 & ;;
    *) ${server_pin[@]+"${server_pin[@]}"} "${bins[$1]}" --port 0 --clients "$2" >"$3" 2>&1 & ;;
  esac
  pid=$!
  port=""
  for _ in $(seq 1 100); do
    port="$(sed -n 's|.*ws://[^/]*:\([0-9][0-9]*\)/.*|\1|p' "$3" | head -1)"
    [ -n "$port" ] && [ "$port" != 0 ] && return 0
    sleep 0.1
  done
  echo "per_event.sh: $1 did not start (see $3)" >&2
  return 1
}

ctxsw() {
  cat /proc/"$1"/task/*/status 2>/dev/null \
    | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}

# run NAME MODE STRACE(0|1): prints "rate syscalls futex" or "rate ctxsw".
run() {
  local name="$1" mode="$2" traced="$3" tag="$out_dir/$1-$2-$3"
  local clients=32 expected=1000000000 warm=3
  # Latency: the 1,000 connections are made within the warm-up (a publish
  # reaches the same number of subscribers every 10 ms from then on).
  if [ "$mode" = latency ]; then clients=1000; expected=1000; warm=5; fi
  start "$name" "$expected" "$tag.server.log"
  ${client_pin[@]+"${client_pin[@]}"} "$client" --port "$port" --mode "$mode" --clients "$clients" \
    --warmup "$warm" --duration "$seconds" --quiet >"$tag.client.log" 2>&1 &
  local cpid=$!
  sleep "$warm"
  if [ "$traced" = 1 ]; then
    timeout -s INT "$seconds" strace -f -c -p "$pid" -o "$tag.strace" \
      >/dev/null 2>&1 || true
  else
    local a b
    a="$(ctxsw "$pid")"; sleep "$seconds"; b="$(ctxsw "$pid")"
    echo $((b - a)) >"$tag.ctxsw"
  fi
  wait "$cpid" || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local rate
  rate="$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' "$tag.client.log" | head -1)"
  # (latency: the client's rate counts deliveries)
  if [ "$traced" = 1 ]; then
    # Handshakes: counted in the trace itself (successful accepts), as the
    # trace's window is not exactly the client's. Deliveries: the client's
    # rate (a fixed one) times the window.
    awk -v r="$rate" -v s="$seconds" -v m="$mode" '
      $NF == "total" {total = $(NF-2)}
      $NF == "futex" {futex = $4}
      $NF ~ /^accept4?$/ {acc += $4 - (NF == 6 ? $5 : 0)}
      END {n = m == "handshake" ? acc : r * s
           printf "%.2f %.2f\n", total / n, futex / n}' "$tag.strace"
  else
    awk -v r="$rate" -v s="$seconds" -v c="$(cat "$tag.ctxsw")" \
      'BEGIN{printf "%.0f %.3f\n", r, c / (r * s)}'
  fi
}

printf '%-16s %-9s %12s %14s %14s %14s\n' server mode "events/s" \
  "syscalls/ev" "futex/ev" "ctxsw/ev"
for mode in handshake latency; do
  for name in "${names[@]}"; do
    read -r rate cs < <(run "$name" "$mode" 0)
    read -r sc fx < <(run "$name" "$mode" 1)
    printf '%-16s %-9s %12s %14s %14s %14s\n' "$name" "$mode" "$rate" \
      "$sc" "$fx" "$cs"
  done
done
echo "logs in $out_dir"
