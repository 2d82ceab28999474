#!/usr/bin/env bash
# Formats the C++ sources with clang-format-14 (Debian's clang-format
# package) and the root .clang-format; with --check, changes nothing and
# fails when a file is not formatted, naming it.
#
#   scripts/format.sh [--check]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cf="$(command -v clang-format-14 || command -v clang-format || true)"
if [ -z "$cf" ]; then
  echo "format.sh: clang-format-14 not found (apt-get install clang-format)" >&2
  exit 2
fi
cd "$root"
mapfile -t files < <(git ls-files '*.cpp' '*.hpp')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$cf" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "format.sh: $f is not formatted (scripts/format.sh fixes it)"
      bad=1
    fi
  done
  exit $bad
fi
"$cf" --style=file -i "${files[@]}"
