#!/usr/bin/env bash
# Installs what is missing, builds, and starts the chat app on localhost.
# Extra arguments go to herald-chat (see --help).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh" deps
"$here/scripts/setup.sh" build "$here/build"
exec "$here/build/app/herald-chat" "$@"
