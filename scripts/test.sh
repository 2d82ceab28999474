#!/usr/bin/env bash
# Checks the layering of the includes (scripts/check_layers.sh) and the
# formatting (scripts/format.sh --check); installs
# what is missing, builds, and runs every test: once in a normal
# build, once with AddressSanitizer + UndefinedBehaviorSanitizer and once
# with ThreadSanitizer (both without the install check); then every fuzzer
# of tests/fuzz for 30 s.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh" deps
"$here/scripts/setup.sh" node
"$here/scripts/setup.sh" browser

# Some tests hold a thousand sockets open at once.
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

status=0
echo "== layers (net <- messages <- actors)"
"$here/scripts/check_layers.sh" || status=1
echo "== format (clang-format-14, .clang-format)"
"$here/scripts/format.sh" --check || status=1

echo "== build (RelWithDebInfo)"
"$here/scripts/setup.sh" build "$here/build"
echo "== tests (RelWithDebInfo)"
(cd "$here/build" && ctest --output-on-failure -j2) || status=1

echo "== build (ASan + UBSan)"
"$here/scripts/setup.sh" build "$here/build-asan" -DHERALD_SANITIZE=ON
echo "== tests (ASan + UBSan)"
(cd "$here/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j2 -LE no-sanitize) || status=1

# ThreadSanitizer against a libcaf_core built with it (cached under
# /var/cache/herald; the first run on a machine builds it), so that CAF's
# synchronisation is seen and any report is a finding: it stops the
# process (halt_on_error) and fails the test that caused it.
echo "== build (TSan)"
if caf_tsan="$("$here/scripts/setup.sh" caf-tsan)"; then
  "$here/scripts/setup.sh" build "$here/build-tsan" -DHERALD_TSAN=ON \
    -DHERALD_CAF_TSAN_ROOT="$caf_tsan"
  echo "== tests (TSan)"
  (cd "$here/build-tsan" && \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --output-on-failure -j2 -LE no-sanitize) || status=1
else
  echo "== TSan: could not build CAF with ThreadSanitizer"
  status=1
fi

# -- fuzzing: every libFuzzer target of tests/fuzz for a bounded time -------
# (clang with ASan + UBSan in build-fuzz/; a fresh corpus on top of the
# committed seeds; any crash, leak or failed check fails the run.
# scripts/fuzz.sh runs them for hours with a persistent corpus.)
echo "== fuzz (libFuzzer, 30 s per target)"
fuzz_dir="$(mktemp -d /tmp/herald-fuzz.XXXXXX)"
if "$here/scripts/fuzz.sh" build && "$here/scripts/fuzz.sh" run 30 "$fuzz_dir"
then
  rm -rf "$fuzz_dir"
else
  echo "fuzz: logs and inputs kept in $fuzz_dir"
  status=1
fi

exit $status
