#!/usr/bin/env bash
# Run one command against a private, fresh set of test servers:
#
#   tests/servers/with-servers.sh COMMAND [ARGS...]
#   e.g. tests/servers/with-servers.sh meson test -C /tmp/build-me interop-pop3
#
# Starts tests/servers/start.sh in a new temporary directory, runs COMMAND
# with DIR/env exported, then stops the servers and removes the directory,
# also when COMMAND fails or the script is interrupted.  Exit status is
# COMMAND's (or 1 if the servers did not start).
set -uo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/mailwire-srv.XXXXXX) || exit 1
cleanup() {
  bash "$here/stop.sh" "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
bash "$here/start.sh" "$dir" >&2 || exit 1
set -a
. "$dir/env"
set +a
"$@"
