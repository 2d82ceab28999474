#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan, in
# build-fuzz/) and runs them.
#   scripts/fuzz.sh build                     install clang if missing, build
#   scripts/fuzz.sh run SECONDS [DIR] [TARGET...]
#       runs each target for SECONDS, one after the other, keeping what it
#       learns in DIR/<target>/ (default /var/tmp/herald-fuzz; give the same
#       DIR again to go on where the last run stopped) on top of the seeds in
#       tests/fuzz/corpus/<target>/; crashes land in DIR/artifacts/.
#       Exits 1 when any target found a crash, a leak or a failed check.
#   scripts/fuzz.sh soak HOURS [DIR]         rounds of 15 minutes per target
#       until HOURS have passed (same DIR rules; stops at the first finding).
# Targets: frame_parser http_upgrade deflate topics.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$here/build-fuzz"
all_targets=(frame_parser http_upgrade deflate topics)

build() {
  "$here/scripts/setup.sh" fuzz
  "$here/scripts/setup.sh" build "$build_dir" -DCMAKE_CXX_COMPILER=clang++ \
    -DHERALD_FUZZ=ON -DHERALD_BUILD_TESTS=OFF -DHERALD_BUILD_APPS=OFF
}

# run SECONDS DIR TARGET...: one bounded run per target; 1 on any finding.
run() {
  local secs="$1" dir="$2"
  shift 2
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
  mkdir -p "$dir/artifacts"
  local status=0
  for t in "${targets[@]}"; do
    mkdir -p "$dir/$t"
    local log="$dir/$t.log"
    echo "== fuzz $t (${secs} s)"
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$build_dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=25 \
         -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
         "$dir/$t" "$here/tests/fuzz/corpus/$t" >"$log" 2>&1; then
      # The last status line: executions, coverage (cov: edges, ft:
      # features), corpus; then the rate.
      grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
      grep -E 'stat::average_exec_per_sec' "$log" || true
    else
      status=1
      echo "fuzz $t FAILED (log $log; the input is in $dir/artifacts/):"
      grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error|Test unit' \
        "$log" | head -20 || true
    fi
  done
  return $status
}

case "${1:-}" in
  build) build ;;
  run)
    [ $# -ge 2 ] || { echo "usage: $0 run SECONDS [DIR] [TARGET...]" >&2; exit 2; }
    secs="$2"; dir="${3:-/var/tmp/herald-fuzz}"
    shift $(( $# >= 3 ? 3 : 2 ))
    run "$secs" "$dir" "$@"
    ;;
  soak)
    [ $# -ge 2 ] || { echo "usage: $0 soak HOURS [DIR]" >&2; exit 2; }
    end=$(( $(date +%s) + $2 * 3600 ))
    dir="${3:-/var/tmp/herald-fuzz}"
    round=0
    while [ "$(date +%s)" -lt "$end" ]; do
      round=$((round + 1))
      echo "== round $round"
      run 900 "$dir" || exit 1
    done
    ;;
  *) echo "usage: $0 build | run SECONDS [DIR] [TARGET...] | soak HOURS [DIR]" >&2
     exit 2 ;;
esac
