#!/usr/bin/env bash
# Tcl binding bench: Tcllib's pure-Tcl pop3/smtp vs the binding (mailwire),
# in one run, against private Dovecot and smtp-sink (tests/servers).
#   - pop3::retrieve of COUNT x SIZE (default 2,000 x 20 KB): Tcllib pop3
#     1.10; the binding as Tcllib programs call it; the binding with its
#     -pipeline 1 extension;
#   - smtp::sendmessage of 1,000 x 10 KB: Tcllib smtp 1.5.1, one connection
#     per message; the binding the same way; the binding's batch extension
#     (smtp::sendmessages, one connection in all).
# Medians of RUNS runs (default 3) and ratios to Tcllib.  Not a test.
#
#   bash bench/tcl/bench.sh [BUILD_DIR]    (a release build is made there)
# Env: RUNS, COUNT, SIZE, SCOUNT, SSIZE.  Users t1 (mailbox), t2.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench-tcl}
RUNS=${RUNS:-3}
COUNT=${COUNT:-2000} SIZE=${SIZE:-20480}
SCOUNT=${SCOUNT:-1000} SSIZE=${SSIZE:-10240}
if [ ! -f "$build/bindings/tcl/mailwiretcl.so" ] || [ ! -x "$build/cli/mailwire" ]; then
  [ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" bindings/tcl/mailwiretcl.so cli/mailwire >/dev/null
fi
work=$(mktemp -d /tmp/mw-bench-tcl.XXXXXX)
chmod 755 "$work"
srv=$work/srv
mkdir -p "$srv"
cleanup() {
  [ -n "${started:-}" ] && bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${MW_POP3_PORT:-}" ] && [ -n "${MW_SINK_PORT:-}" ]; then
  echo "using the running servers (MW_POP3_PORT=$MW_POP3_PORT)"
else
  started=1
  bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
  set -a; . "$srv/env"; set +a
fi
user=t1 pass=pw-t1
md=$MW_MAILDIR_ROOT/$user/Maildir
rm -rf "$md"; mkdir -p "$md/new" "$md/cur" "$md/tmp"
python3 - "$md/cur" "$COUNT" "$SIZE" <<'PY'
import sys, os
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = b"From: bench@test.domain\nTo: t1@test.domain\nSubject: bench %d\n\n"
line = b"x" * 75 + b"\n"
for i in range(n):
    h = head % i
    body = line * ((size - len(h)) // 76)
    body += b"." + b"y" * max(0, size - len(h) - len(body) - 2) + b"\n"
    m = h + body
    w = len(m) + m.count(b"\n")
    with open(os.path.join(d, "%d.M%dP1.bench,S=%d,W=%d:2," % (1700000000 + i, i, len(m), w)), "wb") as f:
        f.write(m)
PY
chown -R "$MW_MAIL_OWNER" "$MW_MAILDIR_ROOT/$user"

run() { # LABEL IMPL ARGS...: RUNS runs; "median-ms median-cpu-ms" on stdout, one line per run on stderr
  local label=$1 impl=$2; shift 2
  local ms=() cpu=() out
  for _ in $(seq "$RUNS"); do
    if [ "$impl" = tcllib ]; then
      out=$(env -u TCLLIBPATH tclsh "$top/bench/tcl/bench.tcl" "$1" tcllib "${@:2}")
    else
      out=$(TCLLIBPATH="$build/bindings/tcl" tclsh "$top/bench/tcl/bench.tcl" "$1" mailwire "${@:2}")
    fi
    echo "  $label: $out" >&2
    grep -q '"ms":' <<<"$out" || { echo "bench: $label failed" >&2; return 1; }
    ms+=("$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$out")")
    cpu+=("$(sed -n 's/.*"cpu_ms":\([0-9]*\).*/\1/p' <<<"$out")")
  done
  echo "$(printf '%s\n' "${ms[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" \
       "$(printf '%s\n' "${cpu[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }

echo "retrieve $COUNT x $SIZE B (Dovecot, port $MW_POP3_PORT):"
r_tl=$(run "tcllib pop3" tcllib retr "$MW_POP3_PORT" $user $pass)
r_mw=$(run "binding" mailwire retr "$MW_POP3_PORT" $user $pass)
r_mp=$(run "binding -pipeline 1" mailwire retr "$MW_POP3_PORT" $user $pass -pipeline 1)
# The floor: mailwire's own command (pipelined, into a tmpfs) on the same mailbox.
floor() {
  local ms=() out t0 t1
  for _ in $(seq "$RUNS"); do
    out=$(mktemp -d "${OUTROOT:-/dev/shm}/mw-bench-tcl-out.XXXXXX" 2>/dev/null || mktemp -d)
    t0=$(date +%s%N)
    MAILWIRE_PASSWORD=$pass "$build/cli/mailwire" pop3 --host 127.0.0.1 --port "$MW_POP3_PORT" \
      --tls none --allow-plaintext-password --user $user retr all -o "$out" >/dev/null
    t1=$(date +%s%N)
    echo "  mailwire CLI: $(( (t1 - t0) / 1000000 )) ms, $(ls "$out" | wc -l) messages" >&2
    ms+=($(( (t1 - t0) / 1000000 )))
    rm -rf "$out"
  done
  printf '%s\n' "${ms[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}
r_cli=$(floor)
echo "send $SCOUNT x $SSIZE B (smtp-sink, port $MW_SINK_PORT):"
s_tl=$(run "tcllib smtp, a connection each" tcllib send "$MW_SINK_PORT" "$SCOUNT" "$SSIZE" each)
s_mw=$(run "binding, a connection each" mailwire send "$MW_SINK_PORT" "$SCOUNT" "$SSIZE" each)
s_mb=$(run "binding batch, one connection" mailwire send "$MW_SINK_PORT" "$SCOUNT" "$SSIZE" batch)
row() { # LABEL "ms cpu" "ms cpu" (the Tcllib reference)
  set -- "$1" $2 $3
  printf '%-40s %9s %9s %9s %9s\n' "$1" "$2" "$(ratio "$4" "$2")" "$3" "$(ratio "$5" "$3")"
}
printf '\n%-40s %9s %9s %9s %9s\n' "median of $RUNS runs" "wall ms" "speed-up" "cpu ms" "cpu gain"
row "retrieve: Tcllib pop3 1.10" "$r_tl" "$r_tl"
row "retrieve: binding" "$r_mw" "$r_tl"
row "retrieve: binding, -pipeline 1" "$r_mp" "$r_tl"
printf '%-40s %9s %9s\n' "retrieve: mailwire CLI (the floor)" "$r_cli" "$(ratio "${r_tl%% *}" "$r_cli")"
row "sendmessage: Tcllib smtp 1.5.1" "$s_tl" "$s_tl"
row "sendmessage: binding" "$s_mw" "$s_tl"
row "sendmessages (batch): binding" "$s_mb" "$s_tl"
j() { set -- $1; printf '{"ms":%s,"cpu_ms":%s}' "$1" "$2"; }
printf '{"retrieve":{"cli_ms":'"$r_cli"',"tcllib":%s,"binding":%s,"binding_pipelined":%s},"send":{"tcllib":%s,"binding":%s,"binding_batch":%s}}\n' \
  "$(j "$r_tl")" "$(j "$r_mw")" "$(j "$r_mp")" "$(j "$s_tl")" "$(j "$s_mw")" "$(j "$s_mb")"
