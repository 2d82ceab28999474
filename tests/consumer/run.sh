#!/usr/bin/env bash
# Installs the build in BUILD_DIR to a scratch prefix, then configures,
# builds and runs tests/consumer against it.
set -euo pipefail
build_dir="$1"
src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$src_dir" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" -j2 >/dev/null  # also the README's examples
"$work/build/consumer_kit" >&2
"$work/build/consumer"
