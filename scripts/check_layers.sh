#!/usr/bin/env bash
# Checks that the library's layers depend one way: net/ includes only net/;
# messages/ includes net/ and messages/; actors/ anything of the library
# but app/ and the umbrella header (herald.hpp, at the top, which only
# actors/herald.hpp forwards to). Prints each include that breaks this and
# exits 1.
#
#   scripts/check_layers.sh [ROOT]   (default: the clone holding this script)
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# The herald/ folders each layer may include.
declare -A allowed=(
  [net]="net"
  [messages]="net messages"
  [actors]="net messages actors"
)

status=0
for layer in net messages actors; do
  while IFS= read -r hit; do
    file="${hit%%:*}"
    rest="${hit#*:}"
    line="${rest%%:*}"
    if [[ "$rest" =~ [\<\"]herald/([^/\>\"]+)/ ]]; then
      dir="${BASH_REMATCH[1]}"
    else
      dir="(top)"
    fi
    ok=0
    # The old umbrella header forwards to the new one.
    [ "${file#"$root"/}:$dir" != "actors/herald.hpp:(top)" ] || ok=1
    for a in ${allowed[$layer]}; do
      [ "$dir" != "$a" ] || ok=1
    done
    if [ "$ok" = 0 ]; then
      echo "check_layers: ${file#"$root"/}:$line: $layer/ may not include" \
           "herald/$dir (allowed: ${allowed[$layer]})"
      status=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]herald/' \
             "$root/$layer"/*.hpp "$root/$layer"/*.cpp 2>/dev/null || true)
done
[ "$status" = 0 ] && echo "check_layers: net <- messages <- actors holds"
exit $status
