#!/usr/bin/env bash
# Runs a bench against private local servers: bench/run.sh pop3 [ARGS]
# Builds mailwire (release, no sanitizers) and the reference clients,
# installs the peer tools (mpop, curl, ...), starts Dovecot/Postfix in a
# temp dir, runs bench/<name>_bench.py and stops the servers.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
what=${1:?usage: bench/run.sh pop3 [ARGS]}
shift
bash scripts/deps.sh bench
build=$top/build-bench
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" >/dev/null
cc -O2 -Wall -Wextra -Werror -o "$build/rawpop3" bench/rawpop3.c -lssl -lcrypto
srv=$(mktemp -d /tmp/mw-bench.XXXXXX)
trap 'bash tests/servers/stop.sh "$srv" >/dev/null 2>&1 || true; rm -rf "$srv"' EXIT
bash tests/servers/start.sh "$srv" >"$srv.log" 2>&1 || { cat "$srv.log"; exit 1; }
set -a; . "$srv/env"; set +a
export MW_BENCH_BUILD=$build
python3 "bench/${what}_bench.py" "$@"
