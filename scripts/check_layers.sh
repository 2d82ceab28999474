#!/usr/bin/env bash
# Checks that the library's layers depend one way: net/ includes only net/;
# messages/ includes net/ and messages/; actors/ anything of the library
# but app/ and the umbrella header (herald.hpp, at the top, which only
# actors/herald.hpp forwards to). Also that the installed headers (the
# HERALD_PUBLIC_HEADERS and HERALD_SUPPORT_HEADERS lists of CMakeLists.txt)
# include only installed headers, so that no public header needs an
# internal one. Prints each include that breaks this and exits 1.
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

# The installed headers, as CMakeLists.txt lists them.
mapfile -t installed < <(
  sed -n '/^set(HERALD_\(PUBLIC\|SUPPORT\)_HEADERS$/,/^)$/p' \
    "$root/CMakeLists.txt" | grep -E '^[[:space:]]+[a-z_/]+\.hpp$' | tr -d ' ')
if [ "${#installed[@]}" -lt 5 ]; then
  echo "check_layers: no installed header lists found in CMakeLists.txt"
  status=1
fi
declare -A is_installed=()
for h in "${installed[@]}"; do
  is_installed[$h]=1
done
for h in "${installed[@]}"; do
  if [ ! -f "$root/$h" ]; then
    echo "check_layers: CMakeLists.txt installs $h, which does not exist"
    status=1
    continue
  fi
  while IFS= read -r hit; do
    line="${hit%%:*}"
    if [[ "$hit" =~ [\<\"]herald/([^\>\"]+)[\>\"] ]]; then
      inc="${BASH_REMATCH[1]}"
      if [ -z "${is_installed[$inc]:-}" ]; then
        echo "check_layers: $h:$line: an installed header includes" \
             "herald/$inc, which is not installed (internal)"
        status=1
      fi
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]herald/' \
             "$root/$h" || true)
done

[ "$status" = 0 ] && echo "check_layers: net <- messages <- actors holds;" \
  "installed headers include only installed ones"
exit $status
