#!/usr/bin/env bash
# Fetch bench (issue 6): `mailwire fetch` from Dovecot into a Maildir against
# mpop (Maildir delivery) and fetchmail (an MDA per message that writes the
# message and fsyncs it: `cat > F && sync F`), in delete mode (the mailbox
# is refilled before every run, not timed) and keep mode (fresh state/UIDL
# file every run, so every message is fetched).  Then the same through a
# delaying proxy of our own (delayproxy.py, +DELAY ms each way) on fewer
# messages: `mailwire fetch` against Python poplib lock-step (one RETR at a
# time) and mpop.  Medians of RUNS runs; wall, client CPU (user+sys) and
# peak RSS from GNU time.
#
#   bash bench/fetch/bench.sh [BUILD_DIR]     (a release build, -Dtests=false)
# Env: RUNS (5), N (2000), SIZE (20480), LAT_N (200), DELAY (50 ms one way),
#   LAT_RUNS (3), TOOLS ("mailwire mpop fetchmail"), MODES ("delete keep"; empty: only the proxy part),
#   OLD_MW (path of another mailwire binary, e.g. an older commit, measured as
#   "mw-old" next to "mailwire"), OUTROOT (where the clients write; default
#   /tmp, a real disk: fsync cost is part of what is measured), LAT_TOOLS
#   (through the proxy: "poplib mailwire mpop", plus mw-old with OLD_MW; the
#   poplib ratio column needs poplib in it).
# Uses its own private servers (tests/servers/start.sh) and user d1.
# Not a test: prints figures.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench-fetch}
RUNS=${RUNS:-5}
N=${N:-2000}
SIZE=${SIZE:-20480}
LAT_N=${LAT_N:-200}
DELAY=${DELAY:-50}
LAT_RUNS=${LAT_RUNS:-3}
TOOLS=${TOOLS:-"mailwire mpop fetchmail"}
MODES=${MODES-"delete keep"}
LAT_TOOLS=${LAT_TOOLS:-"poplib mailwire mpop"}
bash "$top/scripts/deps.sh" bench
if [ ! -x "$build/cli/mailwire" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" cli/mailwire >/dev/null
fi
mw=$build/cli/mailwire
[ -n "${OLD_MW:-}" ] && TOOLS="mailwire mw-old ${TOOLS#mailwire}" && LAT_TOOLS="$LAT_TOOLS mw-old"
work=$(mktemp -d /tmp/mw-bench-fetch.XXXXXX)
chmod 755 "$work" # the servers drop privileges and must reach it
out=$(mktemp -d "${OUTROOT:-/tmp}/mw-bench-fetch-out.XXXXXX")
srv=$work/srv
mkdir -p "$srv"
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1 || true
  rm -rf "$work" "$out"
}
trap cleanup EXIT
bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
set -a; . "$srv/env"; set +a
user=d1 pass=pw-d1
md=$MW_MAILDIR_ROOT/$user/Maildir
port=$MW_POP3_PORT

# template COUNT: COUNT messages of SIZE bytes (LF files, 76-char lines) in
# $work/tpl-COUNT, copied into the mailbox by refill (faster than writing).
template() {
  python3 - "$work/tpl-$1" "$1" "$SIZE" <<'PY'
import sys, os
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
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
PY
}
# refill COUNT: the mailbox holds exactly the template's messages, and
# Dovecot has indexed them (a first session), so no run pays for that.
refill() {
  if [ "$(ls "$md/cur" 2>/dev/null | wc -l)" != "$1" ] || [ -n "$(ls "$md/new" 2>/dev/null)" ]; then
    rm -rf "$md"; mkdir -p "$md/new" "$md/tmp"
    cp -r "$work/tpl-$1" "$md/cur"
    chown -R "$MW_MAIL_OWNER" "$MW_MAILDIR_ROOT/$user"
  fi
  python3 - "$port" "$user" "$pass" "$1" <<'PY'
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1])); p.user(sys.argv[2]); p.pass_(sys.argv[3])
n = p.stat()[0]; p.uidl(); p.quit()
sys.exit(0 if n == int(sys.argv[4]) else 1)
PY
}
count_files() { find "$1" -type f | wc -l; }

# For each tool: cmd_T MODE PORT sets CMD (timed alone); prep/check are not
# timed.  check: every message arrived (and in delete mode: none is left).
prep_dir() { rm -rf "$out/c"; mkdir -p "$out/c/new" "$out/c/cur" "$out/c/tmp"; rm -f "$out/state" "$out/uidls"; }
mw_cmd() { # BINARY MODE PORT
  local k=(); [ "$2" = keep ] && k=(--keep)
  CMD=(env MAILWIRE_PASSWORD=$pass "$1" fetch --host 127.0.0.1 --port "$3" --tls none
    --allow-plaintext-password --auth user --user $user --maildir "$out/c" --state "$out/state"
    --quiet "${k[@]}")
}
cmd_mailwire() { mw_cmd "$mw" "$@"; }
cmd_mw-old() { mw_cmd "$OLD_MW" "$@"; }
cmd_mpop() {
  local k=on; [ "$1" = delete ] && k=off
  CMD=(mpop --host=127.0.0.1 --port="$2" --tls=off --auth=user --user=$user
    --passwordeval="echo $pass" --keep=$k --only-new=off --received-header=off
    --pipelining=on --uidls-file="$out/uidls" --delivery=maildir,"$out/c" -q)
}
cmd_fetchmail() {
  local k=keep; [ "$1" = delete ] && k=nokeep
  mkdir -p "$work/fmhome"
  # fetchmail has no Maildir delivery: one MDA per message (its usual set-up,
  # as with procmail), which writes the message and fsyncs it (coreutils
  # sync FILE) so it is as durable as the others' files are.
  cat > "$work/fetchmailrc" <<RC
set no bouncemail
poll 127.0.0.1 service $2 protocol pop3 auth password
  user "$user" password "$pass" is "root" here
  sslproto '' fetchall $k
  mda "f=$out/c/new/\$\$; cat > \$f && sync \$f"
RC
  chmod 600 "$work/fetchmailrc"
  CMD=(env FETCHMAILHOME="$work/fmhome" fetchmail -f "$work/fetchmailrc" --nosyslog -N -s
    --idfile "$out/uidls")
}
cmd_poplib() {
  CMD=(python3 -c '
import poplib, sys, os
port, user, pw, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
p = poplib.POP3("127.0.0.1", port); p.user(user); p.pass_(pw)
for i in range(1, p.stat()[0] + 1):  # lock-step: one RETR, wait, next
    with open(os.path.join(out, str(i)), "wb") as f:
        f.write(b"\n".join(p.retr(i)[1]) + b"\n")
p.quit()' "$2" $user $pass "$out/c/new")
}

# measure TOOL MODE PORT COUNT RUNS: median "wall cpu rss"
measure() {
  local walls=() cpus=() rsss=() CMD=() failed=0
  for _ in $(seq "$5"); do
    refill "$4"
    prep_dir
    "cmd_$1" "$2" "$3"
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -o "$work/time" -f '%U %S %M' "${CMD[@]}" >/dev/null 2>"$work/err" || { [ "$1" = fetchmail ] || failed=1; }
    t1=$(date +%s.%N)
    local got; got=$(count_files "$out/c")
    [ "$got" = "$4" ] || { echo "$1 $2: $got of $4 messages arrived" >>"$work/err"; failed=1; }
    if [ "$2" = delete ] && [ "$(ls "$md/cur" "$md/new" | grep -c '^[0-9]')" != 0 ]; then
      echo "$1 $2: messages left on the server" >>"$work/err"; failed=1
    fi
    walls+=("$(echo "$t1 - $t0" | bc -l)")
    cpus+=("$(tail -1 "$work/time" | awk '{print $1 + $2}')")
    rsss+=("$(tail -1 "$work/time" | awk '{print $3}')")
  done
  [ $failed = 0 ] || { echo "FAILED: $(tail -3 "$work/err" | tr '\n' ' ')" >&2; return 1; }
  local med='{a[NR]=$1} END {printf "%s ", a[int((NR+1)/2)]}'
  printf '%s\n' "${walls[@]}" | sort -g | awk "$med"
  printf '%s\n' "${cpus[@]}" | sort -g | awk "$med"
  printf '%s\n' "${rsss[@]}" | sort -g | awk "$med"
  echo
}

report() { # LABEL TOOL RESULT BASE_WALL
  set -- "$1" "$2" $3 "$4"
  printf '%-22s %-10s wall %7.3fs  cpu %6.3fs  rss %6d KiB' "$1" "$2" "$3" "$4" "$5"
  [ -n "$6" ] && printf '  wall / mpop %5.2fx' "$(echo "$3 / $6" | bc -l)"
  echo
}

echo "fetch bench: medians; $N x $SIZE B, $RUNS runs; output under ${OUTROOT:-/tmp} ($(df -T "$out" | awk 'NR==2{print $2}'))"
template "$N"
for mode in $MODES; do
  base=
  if r=$(measure mpop "$mode" "$port" "$N" "$RUNS"); then base=${r%% *}; fi
  for tool in $TOOLS; do
    if [ "$tool" = mpop ]; then [ -n "$base" ] && report "${N}x$SIZE $mode" mpop "$r" "$base" || echo "mpop $mode FAILED"; continue; fi
    rr=$(measure "$tool" "$mode" "$port" "$N" "$RUNS") || { echo "$tool $mode FAILED"; continue; }
    report "${N}x$SIZE $mode" "$tool" "$rr" "$base"
  done
done

# Latency: every byte waits DELAY ms each way.
template "$LAT_N"
python3 "$top/bench/fetch/delayproxy.py" "$port" "$DELAY" >"$work/proxy.port" &
proxy_pid=$!
for _ in $(seq 50); do [ -s "$work/proxy.port" ] && break; sleep 0.1; done
pport=$(cat "$work/proxy.port")
echo "through the delaying proxy (+$DELAY ms each way): $LAT_N x $SIZE B, keep mode, $LAT_RUNS runs"
pl=
case " $LAT_TOOLS " in *" poplib "*) pl=$(measure poplib keep "$pport" "$LAT_N" "$LAT_RUNS") || pl= ;; esac
for tool in $LAT_TOOLS; do
  if [ "$tool" = poplib ]; then r=$pl; else r=$(measure "$tool" keep "$pport" "$LAT_N" "$LAT_RUNS") || r=; fi
  [ -n "$r" ] || { echo "$tool FAILED"; continue; }
  set -- $r
  printf '%-22s %-10s wall %7.3fs  cpu %6.3fs' "latency $LAT_N" "$tool" "$1" "$2"
  [ -n "$pl" ] && printf '  poplib / %s %6.2fx' "$tool" "$(echo "${pl%% *} / $1" | bc -l)"
  echo
done
