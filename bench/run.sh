#!/usr/bin/env bash
# The chat-room benchmark: Herald, Bun (Bun.serve) and Node (ws), run one
# after another with the same load client. See bench/README.md.
#
#   bench/run.sh [options] [suite...]
#
# Suites (default: all of them, in this order):
#   throughput   deliveries/s and server CPU per delivery: 32 clients,
#                512 clients, 32 clients with 4 KiB messages
#   latency      publish-to-delivery time, 1,000 subscribers on one topic
#   idle         resident memory per idle connection, 10,000 connections
#                (read once the server's memory is stable)
#   idle-steps   the same connections opened in quarters, 250 upgrades in
#                flight, memory read 2 s after each quarter (a new user's
#                method; not part of the default suites)
#   handshake    WebSocket handshakes per second; for Herald also with a
#                deferred fetch (every upgrade completed by an actor)
#
# Options:
#   --build-dir DIR   CMake build directory (default: build-bench/ made by
#                     bench/setup.sh, else build/); the programs are
#                     DIR/bench/herald-bench-{server,client}
#   --runs N          runs per server and scenario, alternating servers
#                     (default 3)
#   --duration SECS   measured seconds per run (default 10)
#   --warmup SECS     unmeasured seconds before (default 2)
#   --servers LIST    comma-separated subset of herald,bun,node
#   --clients LIST    throughput client counts (default 32,512)
#   --idle-conns N    connections of the idle suite (default 10000)
#   --subscribers N   subscribers of the latency suite (default 1000)
#   --out DIR         keep logs and raw results there (default: a temp dir)
#   --quiet-wait SECS before each run, wait up to SECS for the machine to be
#                     idle (under 10% CPU busy over one second), so that
#                     other work does not distort the figures (default 900;
#                     0: do not wait)
#   --nice N          run servers and client at this nice level (as root, a
#                     negative one gives them priority over other work on
#                     a shared machine; default 0)
#   --rt              run servers and client with real-time priority (as
#                     root): on a machine shared with other work, they then
#                     run as soon as they are woken, which nice alone does
#                     not give them. Servers get chrt -f 20, the client
#                     chrt -f 30: the client preempts the server under test
#                     whenever it has work, so a server cannot make the run
#                     measure its load client by taking the client's CPU
#                     (see bench/README.md, "Sixth round")
#   --pin             pin the server and the client to CPUs of their own
#                     (taskset), every server alike: the client gets the
#                     last CPU, the server all the others (2 cores: server
#                     CPU 0, client CPU 1). Neither then shares a core
#                     with the other, as with a client on another machine;
#                     unpinned (the default), the kernel may run a
#                     single-threaded server and its woken client on one
#                     core (see bench/README.md, "Per-event costs")
#   --node-max-clients N  skip Node in throughput scenarios with more clients
#                     (default 128: one 512-client round is 13.1 million
#                     deliveries, minutes for Node)
#   --herald-args "ARGS"  extra arguments for herald-bench-server, e.g.
#                     "--send-buffer 262144" (default none)
#   --tls             wss://: Herald and Bun serve TLS (Bun.serve's own `tls`)
#                     on one self-signed EC P-256 certificate made with the
#                     openssl CLI; the client connects with TLS (full
#                     handshakes, no resumption). Not with node or latency.
#                     The TLS comparison of bench/README.md:
#                       bench/run.sh --tls --servers herald,bun --clients 32 \
#                         throughput handshake
#   --smoke           CI: a few seconds per server, no timing checks; fails
#                     only when a run was not verified (loss, duplication,
#                     errors) or delivered nothing
#   --help            this text
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

build_dir=""
runs=3
duration=10
warmup=2
servers="herald,bun,node"
client_counts="32,512"
idle_conns=10000
subscribers=1000
out_dir=""
quiet_wait=900
node_max_clients=128
nice_level=0
rt=0
pin=0
smoke=0
tls=0
herald_args=()
suites=()

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --servers) servers="$2"; shift 2 ;;
    --clients) client_counts="$2"; shift 2 ;;
    --idle-conns) idle_conns="$2"; shift 2 ;;
    --subscribers) subscribers="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    --quiet-wait) quiet_wait="$2"; shift 2 ;;
    --node-max-clients) node_max_clients="$2"; shift 2 ;;
    --nice) nice_level="$2"; shift 2 ;;
    --rt) rt=1; shift ;;
    --pin) pin=1; shift ;;
    --herald-args) read -ra herald_args <<< "$2"; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --help|-h) usage; exit 0 ;;
    --tls) tls=1; shift ;;
    throughput|latency|idle|idle-steps|handshake) suites+=("$1"); shift ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#suites[@]} -gt 0 ] || suites=(throughput latency idle handshake)
IFS=, read -r -a server_list <<<"$servers"
IFS=, read -r -a count_list <<<"$client_counts"

if [ "$smoke" = 1 ]; then
  runs=1; duration=1; warmup=0.5; quiet_wait=0
  count_list=(32)
  idle_conns=200
  subscribers=50
fi

if [ "$pin" = 1 ]; then
  # The CPUs this script may use (it may itself run under taskset).
  read -r -a cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
  if [ ${#cpus[@]} -lt 2 ]; then
    echo "run.sh: --pin needs at least 2 CPUs" >&2
    exit 2
  fi
  client_cpus="${cpus[${#cpus[@]}-1]}"
  server_cpus="$(IFS=,; echo "${cpus[*]:0:${#cpus[@]}-1}")"
  echo "pinned: servers on CPU $server_cpus, client on CPU $client_cpus"
fi

[ -n "$build_dir" ] || build_dir="$(default_build_dir "$root")"
server_bin="$build_dir/bench/herald-bench-server"
client_bin="$build_dir/bench/herald-bench-client"
for f in "$server_bin" "$client_bin"; do
  if [ ! -x "$f" ]; then
    echo "run.sh: $f not found: build first (bench/setup.sh)" >&2
    exit 2
  fi
done

# Bun and ws come from npm (bench/package.json); install them when missing.
bun_bin="$here/node_modules/.bin/bun"
need_npm=0
for s in "${server_list[@]}"; do
  case "$s" in
    bun) [ -x "$bun_bin" ] && "$bun_bin" --version >/dev/null 2>&1 || need_npm=1 ;;
    node) [ -d "$here/node_modules/ws" ] || need_npm=1 ;;
    herald) ;;
    *) echo "run.sh: unknown server $s" >&2; exit 2 ;;
  esac
done
if [ "$need_npm" = 1 ]; then
  "$here/setup.sh" npm
fi

# 10,000 connections need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_conns + 1000)) ]; then
  ulimit -n $((idle_conns * 2 + 1000)) 2>/dev/null || {
    echo "run.sh: cannot raise the descriptor limit (ulimit -n) to $((idle_conns * 2))" >&2
    exit 2
  }
fi

if [ -z "$out_dir" ]; then
  out_dir="$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")"
  [ "$smoke" = 1 ] && remove_out=1
fi
mkdir -p "$out_dir"
results="$out_dir/results.tsv"
: >"$results"

# --tls: one certificate for every server; the client flag for every run.
server_tls=()
client_tls=()
if [ "$tls" = 1 ]; then
  for s in "${server_list[@]}" "${suites[@]}"; do
    case "$s" in
      node|latency) echo "run.sh: --tls: not with $s" >&2; exit 2 ;;
    esac
  done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out_dir/tls.key" -out "$out_dir/tls.crt" -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    2>/dev/null
  server_tls=(--tls-cert "$out_dir/tls.crt" --tls-key "$out_dir/tls.key")
  client_tls=(--tls)
fi

port=0
server_pid=""
failures=0
remove_out=${remove_out:-0}

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap 'cleanup' INT TERM
trap 'cleanup; if [ "$remove_out" = 1 ]; then rm -rf "$out_dir"; fi' EXIT

# prio server|client CMD...: replaces the (sub)shell with CMD at the chosen
# priority, so that `prio server CMD &` leaves CMD's own PID in $!. Call it
# in a subshell.
prio() {
  local role="$1"
  shift
  if [ "$pin" = 1 ]; then
    set -- taskset -c "$([ "$role" = client ] && echo "$client_cpus" || echo "$server_cpus")" "$@"
  fi
  if [ "$rt" = 1 ]; then
    # FIFO threads of equal priority never preempt each other: the client
    # sits above the servers so that it is never the one left waiting.
    exec chrt -f "$([ "$role" = client ] && echo 30 || echo 20)" nice -n "$nice_level" "$@"
  else
    exec nice -n "$nice_level" "$@"
  fi
}

# start_server NAME EXPECTED_CLIENTS LOG: starts it on a free port (port 0:
# the kernel picks one, the server prints it) and waits until it listens;
# sets server_pid and port.
start_server() {
  local name="$1" expected="$2" log="$3"
  case "$name" in
    herald) prio server "$server_bin" --port 0 --clients "$expected" ${server_tls[@]+"${server_tls[@]}"} ${herald_args[@]+"${herald_args[@]}"} >"$log" 2>&1 & ;;
    # Herald whose fetch hands every upgrade to an actor (deferred fetch).
    herald-deferred) prio server "$server_bin" --port 0 --clients "$expected" --defer ${server_tls[@]+"${server_tls[@]}"} ${herald_args[@]+"${herald_args[@]}"} >"$log" 2>&1 & ;;
    bun) prio server "$bun_bin" "$here/bun/server.mjs" --port 0 --clients "$expected" ${server_tls[@]+"${server_tls[@]}"} >"$log" 2>&1 & ;;
    node) prio server node "$here/node/server.mjs" --port 0 --clients "$expected" >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  local i line
  for i in $(seq 1 200); do
    line="$(grep -m1 "listening on" "$log" 2>/dev/null || true)"
    if [ -n "$line" ]; then
      port="$(sed -n 's|.*wss\{0,1\}://[^/]*:\([0-9][0-9]*\)/.*|\1|p' <<<"$line")"
      if [ -n "$port" ] && [ "$port" != 0 ]; then
        return 0
      fi
      echo "run.sh: $name server printed no port: $line" >&2
      return 1
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "run.sh: $name server exited:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "run.sh: $name server did not start" >&2
  cat "$log" >&2
  return 1
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

# Fraction of all cores busy over the next second.
busy_fraction() {
  local a b
  a=$(head -1 /proc/stat)
  sleep 1
  b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    busy = 0; total = 0
    for (i = 2; i <= 9; i++) { d = y[i] - x[i]; total += d; if (i != 5 && i != 6) busy += d }
    printf "%.3f", (total > 0 ? busy / total : 0) }'
}

# Waits (up to --quiet-wait seconds) until the machine is idle.
wait_quiet() {
  [ "$quiet_wait" -gt 0 ] || return 0
  local start=$SECONDS b said=0
  while :; do
    b=$(busy_fraction)
    if awk -v b="$b" 'BEGIN { exit !(b <= 0.10) }'; then
      return 0
    fi
    if [ $((SECONDS - start)) -ge "$quiet_wait" ]; then
      echo "  (machine still $(awk -v b="$b" 'BEGIN{printf "%d", b*100}')% busy after ${quiet_wait}s: running anyway; see other_util)" >&2
      return 0
    fi
    if [ "$said" = 0 ]; then
      echo "  (waiting for the machine to be idle: $(awk -v b="$b" 'BEGIN{printf "%d", b*100}')% busy)" >&2
      said=1
    fi
    sleep 4
  done
}

# run_one SCENARIO SERVER RUN EXPECTED CLIENT_ARGS...: one server, one client
# run; appends "scenario server run key=value..." to the results.
run_one() {
  local scenario="$1" name="$2" run="$3" expected="$4"
  shift 4
  local tag="$scenario.$name.$run"
  wait_quiet
  if ! start_server "$name" "$expected" "$out_dir/$tag.server.log"; then
    failures=$((failures + 1))
    printf '%s\t%s\t%s\t%s\n' "$scenario" "$name" "$run" "verified=0" >>"$results"
    return 0
  fi
  local rc=0
  (prio client "$client_bin" --port "$port" --server-pid "$server_pid" --quiet ${client_tls[@]+"${client_tls[@]}"} "$@") \
    >"$out_dir/$tag.client.log" 2>&1 || rc=$?
  stop_server
  local line
  line="$(grep '^RESULT ' "$out_dir/$tag.client.log" | tail -1 || true)"
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    failures=$((failures + 1))
    echo "run.sh: $scenario $name run $run FAILED (client exit $rc):" >&2
    tail -n 15 "$out_dir/$tag.client.log" >&2
    [ -n "$line" ] || line="RESULT verified=0"
  fi
  printf '%s\t%s\t%s\t%s\n' "$scenario" "$name" "$run" "${line#RESULT }" >>"$results"
  printf '  %-14s %-7s run %s: %s\n' "$scenario" "$name" "$run" "$(summary "$line")"
}

# A one-line summary of a RESULT line.
summary() {
  local line="$1"
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $line"; }
  case "$(get mode)" in
    throughput) printf '%s deliveries/s, server %s ns/delivery (%s in the kernel; %s cores busy), client %s cores, other %s cores, verified=%s' \
                  "$(get rate)" "$(get server_cpu_ns)" "$(get server_sys_ns)" "$(get server_util)" "$(get client_util)" "$(get other_util)" "$(get verified)" ;;
    latency) printf 'p50 %s us, p99 %s us (%s samples), verified=%s' \
               "$(get p50_us)" "$(get p99_us)" "$(get samples)" "$(get verified)" ;;
    idle) printf 'RSS %s -> %s KiB, %s bytes/connection, verified=%s' \
            "$(get rss_before_kib)" "$(get rss_after_kib)" "$(get bytes_per_conn)" "$(get verified)" ;;
    idle-steps) printf 'RSS %s -> %s KiB, bytes/connection by quarter %s %s %s %s, verified=%s' \
                  "$(get rss_before_kib)" "$(get rss_after_kib)" "$(get q1_bytes_per_conn)" "$(get q2_bytes_per_conn)" \
                  "$(get q3_bytes_per_conn)" "$(get q4_bytes_per_conn)" "$(get verified)" ;;
    handshake) printf '%s handshakes/s, server %s ns/handshake, client %s cores, verified=%s' \
                 "$(get rate)" "$(get server_cpu_ns)" "$(get client_util)" "$(get verified)" ;;
    *) printf 'FAILED' ;;
  esac
}

# Runs a scenario: `runs` rounds, each server once per round (alternating).
scenario() {
  local scenario="$1" expected="$2"
  shift 2
  local r s
  for r in $(seq 1 "$runs"); do
    for s in "${server_list[@]}"; do
      if [ "$s" = node ] && [[ "$scenario" == chat-* ]] && [ "$expected" -gt "$node_max_clients" ]; then
        [ "$r" = 1 ] && echo "  $scenario node skipped (--node-max-clients $node_max_clients)"
        continue
      fi
      run_one "$scenario" "$s" "$r" "$expected" "$@"
    done
  done
}

# stats SCENARIO SERVER KEY: "mean sd min max n" of KEY over the runs.
stats() {
  awk -F'\t' -v sc="$1" -v sv="$2" -v key="$3" '
    $1 == sc && $2 == sv {
      n_f = split($4, kv, " ")
      for (i = 1; i <= n_f; i++) {
        split(kv[i], p, "=")
        if (p[1] == key && p[2] != "") { x[++n] = p[2] + 0 }
      }
    }
    END {
      if (n == 0) { print "nan nan nan nan 0"; exit }
      s = 0; for (i = 1; i <= n; i++) s += x[i]; m = s / n
      v = 0; for (i = 1; i <= n; i++) v += (x[i] - m) ^ 2
      sd = n > 1 ? sqrt(v / (n - 1)) : 0
      lo = x[1]; hi = x[1]
      for (i = 1; i <= n; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
      printf "%.6g %.6g %.6g %.6g %d\n", m, sd, lo, hi, n
    }' "$results"
}

# fmt MEAN SD: "mean ± sd" with sensible rounding.
fmt() {
  awk -v m="$1" -v sd="$2" 'BEGIN {
    if (m == "nan") { print "-"; exit }
    if (m >= 100) printf "%.0f ± %.0f", m, sd
    else if (m >= 10) printf "%.1f ± %.1f", m, sd
    else printf "%.2f ± %.2f", m, sd }'
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "-"; else printf "%.2f", a / b }'
}

# table SCENARIO KEY LABEL [KEY2 LABEL2...]: one row per server.
table() {
  local scenario="$1"
  shift
  local -a keys=() labels=()
  while [ $# -gt 0 ]; do keys+=("$1"); labels+=("$2"); shift 2; done
  printf '\n%s\n' "$scenario"
  printf '  %-8s' "server"
  local l
  for l in "${labels[@]}"; do printf ' | %-24s' "$l"; done
  printf '\n'
  local s k
  for s in "${server_list[@]}"; do
    printf '  %-8s' "$s"
    for k in "${keys[@]}"; do
      read -r m sd _ _ _ < <(stats "$scenario" "$s" "$k")
      printf ' | %-24s' "$(fmt "$m" "$sd")"
    done
    printf '\n'
  done
  if [[ " ${server_list[*]} " == *" herald "* && " ${server_list[*]} " == *" bun "* ]]; then
    printf '  %-8s' "H/B"
    for k in "${keys[@]}"; do
      read -r mh _ _ _ _ < <(stats "$scenario" herald "$k")
      read -r mb _ _ _ _ < <(stats "$scenario" bun "$k")
      printf ' | %-24s' "$(ratio "$mh" "$mb")"
    done
    printf '\n'
  fi
}

echo "== herald chat-room benchmark"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "herald $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), bun $("$bun_bin" --version 2>/dev/null || echo '-'), node $(node --version 2>/dev/null || echo '-'), ws $(node -p 'require(process.argv[1]).version' "$here/node_modules/ws/package.json" 2>/dev/null || echo '-')"
echo "runs $runs x ${duration}s (warmup ${warmup}s), servers ${server_list[*]}, nice $nice_level$([ "$rt" = 1 ] && echo ", real-time (client above servers)"), logs in $out_dir"
[ ${#herald_args[@]} -eq 0 ] || echo "herald-bench-server arguments: ${herald_args[*]}"

# Adds herald-deferred after herald to server_list.
with_deferred() {
  local -a list=()
  local s
  for s in "${server_list[@]}"; do
    list+=("$s")
    [ "$s" != herald ] || list+=(herald-deferred)
  done
  server_list=("${list[@]}")
}

common=(--duration "$duration" --warmup "$warmup")
for suite in "${suites[@]}"; do
  case "$suite" in
    throughput)
      for n in "${count_list[@]}"; do
        echo "-- throughput: $n clients x 50 messages per round"
        scenario "chat-$n" "$n" --mode throughput --clients "$n" "${common[@]}"
      done
      if [ "$smoke" = 0 ]; then
        echo "-- throughput: 32 clients x 50 messages of 4 KiB"
        scenario "chat-32-4k" 32 --mode throughput --clients 32 --payload 4096 "${common[@]}"
      fi
      ;;
    latency)
      echo "-- latency: $subscribers subscribers, a publish every 10 ms"
      scenario "latency-$subscribers" "$subscribers" --mode latency --clients "$subscribers" "${common[@]}"
      ;;
    idle)
      echo "-- idle memory: $idle_conns connections"
      scenario "idle-$idle_conns" "$idle_conns" --mode idle --clients "$idle_conns" --connect-parallel 256
      ;;
    idle-steps)
      echo "-- idle memory by quarters: $idle_conns connections, 250 at a time"
      scenario "idle-steps-$idle_conns" "$idle_conns" --mode idle-steps --clients "$idle_conns" --connect-parallel 250
      ;;
    handshake)
      echo "-- handshakes: 32 parallel connect/upgrade/reset loops"
      # The room never fills: no "ready" for this one.
      # With Herald also herald-deferred: its fetch hands every upgrade
      # to an actor, which completes it (runs alternate with the others).
      saved_servers=("${server_list[@]}")
      with_deferred
      scenario "handshake" 1000000000 --mode handshake --clients 32 "${common[@]}"
      server_list=("${saved_servers[@]}")
      ;;
  esac
done

echo
echo "== summary (mean ± sample standard deviation over $runs runs; H/B = Herald / Bun)"
for suite in "${suites[@]}"; do
  case "$suite" in
    throughput)
      scs=()
      for n in "${count_list[@]}"; do scs+=("chat-$n"); done
      [ "$smoke" = 1 ] || scs+=("chat-32-4k")
      for sc in "${scs[@]}"; do
        table "$sc" rate "deliveries/s" server_cpu_ns "server CPU ns/delivery" \
          server_sys_ns "of which kernel (system)" server_other_cpu_ns "server+other ns/delivery" \
          server_util "server cores busy" client_util "client cores busy" \
          other_util "other cores busy"
      done
      ;;
    latency)
      table "latency-$subscribers" p50_us "p50 us (kernel rx)" p99_us "p99 us (kernel rx)" \
        user_p99_us "p99 us (client read)" server_cpu_ns "server CPU ns/delivery"
      ;;
    idle)
      table "idle-$idle_conns" bytes_per_conn "RSS bytes/connection" rss_after_kib "RSS KiB with all open"
      ;;
    idle-steps)
      table "idle-steps-$idle_conns" q1_bytes_per_conn "bytes/connection, 1st quarter" \
        q2_bytes_per_conn "2nd quarter" q3_bytes_per_conn "3rd quarter" \
        bytes_per_conn "all open"
      ;;
    handshake)
      saved_servers=("${server_list[@]}")
      with_deferred
      table "handshake" rate "handshakes/s" server_cpu_ns "server CPU ns/handshake" \
        client_util "client cores busy"
      server_list=("${saved_servers[@]}")
      if [[ " ${server_list[*]} " == *" herald "* ]]; then
        read -r ms _ _ _ _ < <(stats "handshake" herald rate)
        read -r md _ _ _ _ < <(stats "handshake" herald-deferred rate)
        read -r cs _ _ _ _ < <(stats "handshake" herald server_cpu_ns)
        read -r cd _ _ _ _ < <(stats "handshake" herald-deferred server_cpu_ns)
        printf '  %-8s | handshakes/s %s, server CPU per handshake %s (deferred fetch / synchronous)\n' \
          "D/S" "$(ratio "$md" "$ms")" "$(ratio "$cd" "$cs")"
      fi
      ;;
  esac
done

echo
echo "raw results: $results"
if [ "$failures" -gt 0 ]; then
  echo "run.sh: $failures run(s) failed verification" >&2
  exit 1
fi
if [ "$smoke" = 1 ]; then
  echo "run.sh: smoke passed (every run verified, no timing checks)"
fi
