#!/bin/bash
# Idle sessions (issue "one session engine", Speed): N (10,000) POP3
# sessions logged in and idle, a NOOP every NOOP_MS (30,000), in one thread
# on one mw_loop (idle.c), against the light server of server.py (Dovecot
# runs a process per session), plain and over TLS (POP3S).  Reports the
# memory per session: the process's resident growth, OpenSSL's own share
# of it (counted through CRYPTO_set_mem_functions), and the rest.
#
#     bash bench/idle/bench.sh [BUILD_DIR]
#
# Env: N (10000), HOLD (35: seconds held after login, so a NOOP round
# passes), NOOP_MS (30000), MODES ("plain tls").  Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench-idle}
N=${N:-10000} HOLD=${HOLD:-35} NOOP_MS=${NOOP_MS:-30000} MODES=${MODES:-"plain tls"}
bash "$top/scripts/deps.sh" build
if [ ! -f "$build/libmailwire.a" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" libmailwire.a >/dev/null
fi
work=$(mktemp -d /tmp/mw-bench-idle.XXXXXX)
srv_pid=
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$top/include" "$top/bench/idle/idle.c" "$build/libmailwire.a" \
  -lssl -lcrypto -ljson-c -ldl -lpthread -o "$work/idle"
# A self-signed certificate for 127.0.0.1, its own CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:TRUE -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
python3 "$top/bench/idle/server.py" "$work/cert.pem" "$work/key.pem" >"$work/server.out" &
srv_pid=$!
for _ in $(seq 100); do [ -s "$work/server.out" ] && break; sleep 0.1; done
read -r plain_port tls_port <"$work/server.out"
echo "idle bench: $N sessions a run, NOOP every $NOOP_MS ms, held $HOLD s after login"
for mode in $MODES; do
  port=$plain_port; [ "$mode" = tls ] && port=$tls_port
  "$work/idle" 127.0.0.1 "$port" "$N" "$mode" "$work/cert.pem" "$HOLD" "$NOOP_MS" || echo "$mode: FAILED"
  echo "  server: $(tail -1 "$work/server.out")"
done
