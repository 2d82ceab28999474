#!/usr/bin/env bash
# Installs what Herald needs on Debian 12 (only what is missing) and builds.
#   scripts/setup.sh deps          install system packages
#   scripts/setup.sh build [DIR]   configure and build (default build/)
#   scripts/setup.sh node          install the npm test clients
#   scripts/setup.sh browser       install Debian's Chromium and playwright-core
#                                  (the chat page's end-to-end test, tests/e2e)
#   scripts/setup.sh fuzz          install clang and libFuzzer (tests/fuzz)
#   scripts/setup.sh caf-tsan      build Debian's CAF source with
#                                  ThreadSanitizer once (cached); prints its
#                                  prefix, for -DHERALD_CAF_TSAN_ROOT=
# Used by scripts/chat.sh and scripts/test.sh; runs as root or with sudo.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

deps() {
  install_missing g++ make cmake ccache pkg-config libcaf-dev libboost1.81-dev \
    libboost-program-options1.81-dev zlib1g-dev libhiredis-dev libssl-dev \
    openssl redis-server ca-certificates clang-format
}

node_deps() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_missing nodejs npm
  fi
  (cd "$here/tests/integration" && npm ci --no-audit --no-fund --loglevel=error)
}

# Debian's chromium (the e2e test drives /usr/bin/chromium; no browser is
# downloaded) and an emoji font for the screenshots; playwright-core from npm.
browser_deps() {
  install_missing chromium fonts-noto-color-emoji
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_missing nodejs npm
  fi
  (cd "$here/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)
}

# Debian's clang with libFuzzer and the sanitizer runtimes (the harnesses
# in tests/fuzz; scripts/fuzz.sh builds and runs them).
fuzz_deps() {
  install_missing clang libclang-rt-14-dev
}

# Debian's libcaf_core is not built with ThreadSanitizer, so TSan cannot see
# the synchronisation inside it (mailboxes, scheduler queues, reference
# counts) and reports every hand-over between threads as a race. This builds
# the very source of the installed libcaf-dev with -fsanitize=thread, only
# libcaf_core (Herald links nothing else of CAF), into a cache outside any
# build tree keyed by CAF's version and the compiler's, so it is built once
# per machine. Progress goes to stderr, the prefix to stdout.
caf_tsan() {
  local srcpkg ver cxx key cache prefix work src
  install_missing g++ cmake ccache libcaf-dev dpkg-dev >&2
  srcpkg="$(dpkg-query -W -f='${source:Package}' libcaf-dev)"
  ver="$(dpkg-query -W -f='${source:Version}' libcaf-dev)"
  cxx="$(g++ -dumpfullversion)"
  key="caf-tsan-${ver}-gcc${cxx}"
  cache="${HERALD_CACHE_DIR:-/var/cache/herald}"
  prefix="$cache/$key"
  if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    return
  fi
  {
    echo "setup: building $srcpkg $ver with ThreadSanitizer into $prefix"
    enable_deb_src "$srcpkg"
    # A fixed work path, so ccache finds a former build's objects.
    work="$cache/$key.work"
    as_root rm -rf "$work" "$prefix"
    as_root mkdir -p "$work"
    src="$work/src"
    # The mirror may lack Debian's packaging part while it has the upstream
    # tarball (apt checks each file it fetches against the signed index);
    # then the headers check below proves the build matches libcaf-dev.
    (cd "$work" && as_root apt-get source --download-only -qq "$srcpkg=$ver") \
      || true
    if compgen -G "$work/*.debian.tar.*" >/dev/null; then
      as_root dpkg-source -x "$work"/*.dsc "$src" >/dev/null
    else
      local orig
      orig="$(compgen -G "$work/*.orig.tar.*" | head -n1)" || {
        echo "setup: could not fetch the source of $srcpkg $ver" >&2
        exit 1
      }
      echo "setup: building the upstream tarball without Debian's part"
      as_root mkdir -p "$src"
      as_root tar -xf "$orig" -C "$src" --strip-components=1
    fi
    # CAF's defaults are Debian's (the installed build_config.hpp says so);
    # only libcaf_core is built.
    as_root cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DCMAKE_CXX_FLAGS="-fsanitize=thread -Wno-tsan" \
      -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
      -DCAF_NO_IO=ON -DCAF_NO_OPENSSL=ON -DCAF_NO_EXAMPLES=ON \
      -DCAF_NO_TOOLS=ON -DCAF_NO_UNIT_TESTS=ON -DCAF_NO_PYTHON=ON \
      -DCAF_NO_OPENCL=ON -DCAF_NO_SUMMARY=ON >/dev/null
    as_root cmake --build "$work/build" -j"$(nproc)"
    as_root cmake --install "$work/build" >/dev/null
    # Herald compiles against the installed headers: the library must have
    # been built from the same ones, generated build_config.hpp included.
    if diff -rq "$prefix/include/caf" /usr/include/caf \
        | grep -v "^Only in /usr/include/caf"; then
      echo "setup: CAF built from headers unlike libcaf-dev's" >&2
      exit 1
    fi
    as_root touch "$prefix/.complete"
    as_root rm -rf "$work"
  } >&2
  echo "$prefix"
}

# `apt-get source` needs deb-src entries; Debian 12's images carry only deb.
# Adds deb-src beside the deb entries of Debian's own sources (deb822 or the
# one-line format) when source package $1 cannot be found yet.
enable_deb_src() {
  if apt-get source --print-uris -qq "$1" >/dev/null 2>&1; then
    return
  fi
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ] && grep -q '^Types: deb$' "$f"; then
    as_root sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
  elif [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list \
      && ! grep -q '^deb-src ' /etc/apt/sources.list; then
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
      | as_root tee /etc/apt/sources.list.d/herald-deb-src.list >/dev/null
  fi
  as_root apt-get update -qq
}

build() {
  local dir="${1:-$here/build}"
  shift || true
  # Paths relative to the clone in ccache's keys, so another clone (CI's)
  # reuses this one's objects.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$here}" CCACHE_NOHASHDIR=1
  cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

case "${1:-}" in
  deps) deps ;;
  node) node_deps ;;
  browser) browser_deps ;;
  fuzz) fuzz_deps ;;
  caf-tsan) caf_tsan ;;
  build) shift; build "$@" ;;
  *) echo "usage: $0 deps|node|browser|fuzz|caf-tsan|build [DIR] [cmake args...]" >&2; exit 2 ;;
esac
