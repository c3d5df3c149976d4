#!/usr/bin/env bash
# POP3 retrieval bench (issue 3): fills a Dovecot mailbox and times, in one
# run, `mailwire pop3 retr all -o DIR` against mpop (pipelines), curl, Python
# poplib and the raw pipelined reference client (rawref.c) — medians of
# RUNS runs and ratios to rawref.  Also client CPU time, STLS and POP3S, and
# the peak RSS of retrieving one large message.
#
#   bash bench/pop3/bench.sh [BUILD_DIR]     (a release build is best)
# Env: RUNS (default 5), SETS ("2000x20480 200x1048576"), BIG_MB (default
# 1024; 0 skips), MODES ("plain stls pop3s"), TOOLS ("mailwire mpop curl
# poplib"; curl opens no pipeline and takes minutes for 2000 messages; "base"
# with MW_BASE, below).  Uses its own private servers
# (tests/servers/start.sh; or the ones in the environment when MW_POP3_PORT
# is set) and the demo user d1.  Not a test: prints figures.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench}
RUNS=${RUNS:-5}
SETS=${SETS:-"2000x20480 200x1048576"}
BIG_MB=${BIG_MB:-1024}
MODES=${MODES:-"plain stls pop3s"}
TOOLS=${TOOLS:-"mailwire mpop curl poplib"}
if [ ! -x "$build/cli/mailwire" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" cli/mailwire >/dev/null
fi
mw=$build/cli/mailwire
work=$(mktemp -d /tmp/mw-bench-pop3.XXXXXX)
chmod 755 "$work" # the servers run as other users and must reach it
# Every tool writes its messages under a tmpfs when there is one, so the
# figures measure the clients, not the disk.
outroot=$(mktemp -d "${OUTROOT:-/dev/shm}/mw-bench-out.XXXXXX" 2>/dev/null || mktemp -d /tmp/mw-bench-out.XXXXXX)
srv=$work/srv
mkdir -p "$srv"
cleanup() {
  [ -n "${started:-}" ] && bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1
  rm -rf "$work" "$outroot"
}
trap cleanup EXIT
cc -O2 -o "$work/rawref" "$top/bench/pop3/rawref.c" -lssl -lcrypto
if [ -n "${MW_POP3_PORT:-}" ] && [ -n "${MW_MAILDIR_ROOT:-}" ]; then
  echo "using the running servers (MW_POP3_PORT=$MW_POP3_PORT)"
else
  started=1
  bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
  set -a; . "$srv/env"; set +a
fi
user=d1 pass=pw-d1
md=$MW_MAILDIR_ROOT/$user/Maildir

fill() { # COUNT SIZE: messages of SIZE bytes (LF files, 76-char lines)
  rm -rf "$md"; mkdir -p "$md/new" "$md/cur" "$md/tmp"
  python3 - "$md/cur" "$1" "$2" <<'EOF'
import sys, os
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = b"From: bench@test.domain\nTo: d1@test.domain\nSubject: bench %d\n\n"
line = b"x" * 75 + b"\n"
for i in range(n):
    h = head % i
    body = line * ((size - len(h)) // 76)
    body += b"." + b"y" * max(0, size - len(h) - len(body) - 2) + b"\n"
    m = h + body
    w = len(m) + m.count(b"\n")
    with open(os.path.join(d, "%d.M%dP1.bench,S=%d,W=%d:2," % (1700000000 + i, i, len(m), w)), "wb") as f:
        f.write(m)
EOF
  chown -R "$MW_MAIL_OWNER" "$MW_MAILDIR_ROOT/$user"
}

port_of() { case $1 in pop3s) echo "$MW_POP3S_PORT" ;; *) echo "$MW_POP3_PORT" ;; esac; }

# For each tool: prep_T MODE empties its output (not timed), cmd_T MODE sets
# CMD to the client's command line (timed alone: no shell, no rm), and
# check_T verifies afterwards that every message arrived (not timed).
# Before, the timed region was `bash -c "rm -rf OUT; mkdir; CLIENT; find OUT
# | grep -c"`: removing and counting 2000 files took 0.1-0.4 s on a loaded
# machine, all of it charged to mailwire and mpop but not to rawref.
prep_mailwire() { rm -rf "$outroot/out"; mkdir "$outroot/out"; }
cmd_mailwire() {
  local t=(--tls none); case $1 in stls) t=(--tls starttls --cafile "$MW_CA_FILE") ;; pop3s) t=(--tls implicit --cafile "$MW_CA_FILE") ;; esac
  CMD=(env MAILWIRE_PASSWORD=$pass "$mw" pop3 --host localhost --port "$(port_of "$1")" "${t[@]}"
    --allow-plaintext-password --auth user --user $user retr all -o "$outroot/out")
}
check_mailwire() { check_count "$outroot/out"; }
# MW_BASE=/path/to/another/mailwire adds tool "base" (TOOLS="mailwire base
# ..."): the same command from another build, in the same rounds, so a
# change is compared with what it changed under the same load.
prep_base() { prep_mailwire; }
cmd_base() { cmd_mailwire "$1"; CMD[2]=${MW_BASE:?MW_BASE names the other mailwire binary}; }
check_base() { check_mailwire; }
# Every run must have delivered every message, or its time means nothing.
check_count() {
  local got; got=$(find "$1" -type f | grep -vc 'uidls$' || true)
  [ "$got" = "$(ls "$md/cur" | wc -l)" ] || { echo "only $got messages in $1" >&2; return 1; }
}
prep_rawref() { :; }
cmd_rawref() { CMD=("$work/rawref" localhost "$(port_of "$1")" "$1" $user $pass "$MW_CA_FILE"); }
check_rawref() { :; } # it exits non-zero when a reply is cut short
prep_mpop() { rm -rf "$outroot/mp" "$outroot/mp.uidls"; mkdir -p "$outroot/mp/new" "$outroot/mp/cur" "$outroot/mp/tmp"; }
cmd_mpop() {
  local t=(--tls=off); case $1 in stls) t=(--tls=on --tls-starttls=on) ;; pop3s) t=(--tls=on --tls-starttls=off) ;; esac
  CMD=(mpop --host=localhost --port="$(port_of "$1")" "${t[@]}" --tls-trust-file="$MW_CA_FILE"
    --auth=user --user=$user --passwordeval="echo $pass" --keep=on --only-new=off
    --received-header=off --pipelining=on --uidls-file="$outroot/mp.uidls"
    --delivery=maildir,"$outroot/mp" -q)
}
check_mpop() { check_count "$outroot/mp"; }
prep_curl() {
  local scheme=pop3; case $1 in pop3s) scheme=pop3s ;; esac
  local n; n=$(ls "$md/cur" | wc -l)
  rm -rf "$outroot/cu"; mkdir "$outroot/cu"
  { for i in $(seq 1 "$n"); do echo "url = \"$scheme://localhost:$(port_of "$1")/$i\""; echo "output = \"$outroot/cu/$i\""; done; } > "$outroot/curl.cfg"
}
cmd_curl() {
  local extra=(); case $1 in stls) extra=(--ssl-reqd) ;; esac
  CMD=(curl -s -u $user:$pass --cacert "$MW_CA_FILE" "${extra[@]}" -K "$outroot/curl.cfg")
}
check_curl() { check_count "$outroot/cu"; }
prep_poplib() {
  rm -rf "$outroot/py"
  cat > "$work/bench_poplib.py" <<'EOF'
import poplib, ssl, sys, os
mode, port, ca, user, pw, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
p = poplib.POP3_SSL("localhost", port, context=ctx) if mode == "pop3s" else poplib.POP3("localhost", port)
if mode == "stls": p.stls(ctx)
p.user(user); p.pass_(pw)
os.makedirs(out, exist_ok=True)
n = p.stat()[0]
for i in range(1, n + 1):
    with open(os.path.join(out, str(i)), "wb") as f:
        f.write(b"\r\n".join(p.retr(i)[1]) + b"\r\n")
p.quit()
EOF
}
cmd_poplib() { CMD=(python3 "$work/bench_poplib.py" "$1" "$(port_of "$1")" "$MW_CA_FILE" $user $pass "$outroot/py"); }
check_poplib() { check_count "$outroot/py"; }

# One timed run of TOOL MODE: prints "wall cpu" (seconds), or fails.
run_once() {
  local CMD=() t0 t1
  "prep_$1" "$2"
  "cmd_$1" "$2"
  t0=$(date +%s.%N)
  /usr/bin/time -o "$work/time" -f '%U %S' "${CMD[@]}" >/dev/null 2>"$work/err.$1" || return 1
  t1=$(date +%s.%N)
  "check_$1" "$2" 2>>"$work/err.$1" || return 1
  echo "$(echo "$t1 - $t0" | bc -l) $(tail -1 "$work/time" | awk '{print $1 + $2}')"
}
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }

echo "POP3 bench: medians of $RUNS runs; ratio = tool / rawref (wall), cpu = client user+sys"
# The tools take turns within each round (rawref, tool 1, tool 2, rawref,
# ...): on a shared machine the load changes within seconds, and running
# one tool's RUNS back to back charged those swings to whichever tool ran
# during them.
for set in $SETS; do
  count=${set%x*} size=${set#*x}
  fill "$count" "$size"
  for mode in $MODES; do
    cmd_rawref "$mode"; "${CMD[@]}" >/dev/null # warm-up: Dovecot builds its index on the first session
    declare -A walls=() cpus=() failed=()
    for _ in $(seq "$RUNS"); do
      for tool in rawref $TOOLS; do
        [ -n "${failed[$tool]:-}" ] && continue
        if r=$(run_once "$tool" "$mode"); then
          walls[$tool]+="${r% *} " cpus[$tool]+="${r#* } "
        else
          failed[$tool]="$(tail -2 "$work/err.$tool" | tr '\n' ' ')"
        fi
      done
    done
    if [ -n "${failed[rawref]:-}" ]; then echo "$set $mode rawref FAILED: ${failed[rawref]}"; continue; fi
    bw=$(median "${walls[rawref]}") bc_=$(median "${cpus[rawref]}")
    printf '%-14s %-6s %-8s wall %7.3fs cpu %7.3fs\n' "$set" "$mode" rawref "$bw" "$bc_"
    for tool in $TOOLS; do
      if [ -n "${failed[$tool]:-}" ]; then printf '%-14s %-6s %-8s FAILED: %s\n' "$set" "$mode" "$tool" "${failed[$tool]}"; continue; fi
      w=$(median "${walls[$tool]}") c=$(median "${cpus[$tool]}")
      printf '%-14s %-6s %-8s wall %7.3fs cpu %7.3fs  ratio %5.2fx  cpu ratio %5.2fx\n' \
        "$set" "$mode" "$tool" "$w" "$c" "$(echo "$w / $bw" | bc -l)" "$(echo "$c / ($bc_ + 0.0001)" | bc -l)"
    done
  done
done

if [ "$BIG_MB" -gt 0 ]; then
  fill 1 $((BIG_MB * 1024 * 1024))
  rm -rf "$outroot/out"; mkdir "$outroot/out"
  MAILWIRE_PASSWORD=$pass /usr/bin/time -o "$work/time" -f '%M' "$mw" pop3 --host localhost \
    --port "$MW_POP3_PORT" --tls none --allow-plaintext-password --auth user --user $user \
    retr 1 -o "$outroot/out" >/dev/null
  rss=$(tail -1 "$work/time")
  echo "one ${BIG_MB} MiB message: peak RSS ${rss} KiB; file $(stat -c %s "$outroot/out/1.eml") bytes"
fi
