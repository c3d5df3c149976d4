#!/bin/bash
# Many accounts (issue "one session engine", Speed): ACCOUNTS Dovecot users
# with MSGS x SIZE messages each, fetched by
#   mailwire   `mailwire fetch --all --jobs ACCOUNTS`: every account on one
#              event loop in one thread;
#   mpop-a     `mpop -a`: the accounts in turn in one process, as a cron
#              user runs it;
#   mpop-x16   one mpop per account, 16 at a time (`xargs -P16`);
#   fetchmail  every account in one rc file (one MDA process per message,
#              as bench/fetch/bench.sh explains).
# Twice: straight to Dovecot on loopback, and through
# bench/fetch/delayproxy.py adding DELAY ms each way (a remote provider).
# Plain POP3 with USER/PASS, keep mode; every run starts from empty local
# Maildirs and no UIDL state, so every message is fetched; each run is
# checked (ACCOUNTS x MSGS files arrived) outside the timed region.
#
#     bash bench/accounts/bench.sh [BUILD_DIR]
#
# Env: ACCOUNTS (1000), MSGS (20), SIZE (20480), DELAY (25), RUNS (1: runs
# of each tool, the tools taking turns; medians shown),
# TOOLS ("mailwire mpop-x16 mpop-a fetchmail"; also mw-old: OLD_MW, a
# second mailwire binary, for a before/after in one run), PROXY_TOOLS
# (TOOLS, through the proxy), PARTS ("loopback proxy"),
# OUTROOT (/tmp), MW_WRAP (a command put before mailwire, e.g. "perf record
# -o FILE"; with perf, the run as perf's child).  Prints wall, client CPU
# (user+sys, children included; for mailwire without the CPU of
# bench/accounts/schedstat.py, its small wrapper that reads how its thread
# spent the wall time)
# and peak RSS (GNU time), the CPU Dovecot's processes and the proxy used
# meanwhile, how busy the whole machine was (/proc; cpusnap below), and the
# ratios the issue names.  Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench-accounts}
ACCOUNTS=${ACCOUNTS:-1000}
MSGS=${MSGS:-20}
SIZE=${SIZE:-20480}
DELAY=${DELAY:-25}
RUNS=${RUNS:-1}
TOOLS=${TOOLS:-"mailwire mpop-x16 mpop-a fetchmail"}
PARTS=${PARTS:-"loopback proxy"}
PROXY_TOOLS=${PROXY_TOOLS:-$TOOLS}
bash "$top/scripts/deps.sh" bench
if [ ! -x "$build/cli/mailwire" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" cli/mailwire >/dev/null
fi
mw=$build/cli/mailwire
work=$(mktemp -d /tmp/mw-bench-accounts.XXXXXX)
chmod 755 "$work"
out=$(mktemp -d "${OUTROOT:-/tmp}/mw-bench-accounts-out.XXXXXX")
srv=$work/srv
mkdir -p "$srv"
proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1 || true
  rm -rf "$work" "$out"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
MW_SRV_BULK_USERS=$ACCOUNTS MW_SRV_POP3_LIMIT=$((ACCOUNTS + 100)) \
  bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
set -a; . "$srv/env"; set +a
port=$MW_POP3_PORT

# The same MSGS messages in every mailbox (LF files, 76-character lines, a
# line that needs dot-stuffing), named as Dovecot's Maildir names them.
python3 - "$work/tpl" "$MSGS" "$SIZE" <<'PY'
import sys, os
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
line = b"x" * 75 + b"\n"
for i in range(n):
    h = b"From: bench@test.domain\nTo: user@test.domain\nSubject: bench %d\n\n" % i
    body = line * ((size - len(h)) // 76)
    body += b"." + b"y" * max(0, size - len(h) - len(body) - 2) + b"\n"
    m = h + body
    w = len(m) + m.count(b"\n")
    with open(os.path.join(d, "%d.M%dP1.bench,S=%d,W=%d:2," % (1700000000 + i, i, len(m), w)), "wb") as f:
        f.write(m)
PY
for i in $(seq 1 "$ACCOUNTS"); do
  md=$MW_MAILDIR_ROOT/b$i/Maildir
  rm -rf "$md/cur"
  cp -r "$work/tpl" "$md/cur"
done
chown -R "$MW_MAIL_OWNER" "$MW_MAILDIR_ROOT"

# Accounts files: mailwire's and mpop's for PORT, fetchmail's per run.
rcfiles() { # PORT
  {
    printf 'defaults\nhost 127.0.0.1\nport %s\ntls off\nauth user\nkeep on\n\n' "$1"
    for i in $(seq 1 "$ACCOUNTS"); do
      printf 'account b%s\nuser b%s\npassword pw-b%s\ndelivery maildir %s/c/b%s\n\n' "$i" "$i" "$i" "$out" "$i"
    done
  } >"$work/mwrc"
  {
    printf 'defaults\nhost 127.0.0.1\nport %s\ntls off\nauth user\nkeep on\nonly_new off\n' "$1"
    printf 'received_header off\npipelining on\n\n'
    for i in $(seq 1 "$ACCOUNTS"); do
      printf 'account b%s\nuser b%s\npassword pw-b%s\nuidls_file %s/uidls-b%s\ndelivery maildir %s/c/b%s\n\n' \
        "$i" "$i" "$i" "$out" "$i" "$out" "$i"
    done
  } >"$work/mpoprc"
  {
    printf 'set no bouncemail\n'
    for i in $(seq 1 "$ACCOUNTS"); do
      printf 'poll 127.0.0.1 service %s protocol pop3 auth password\n' "$1"
      printf '  user "b%s" password "pw-b%s" is "root" here\n' "$i" "$i"
      printf '  sslproto %s fetchall keep\n' "''"
      printf '  mda "f=%s/c/b%s/new/$$; cat > $f && sync $f"\n' "$out" "$i"
    done
  } >"$work/fetchmailrc"
  chmod 600 "$work/mwrc" "$work/mpoprc" "$work/fetchmailrc"
}
# The previous run's files are moved aside, not deleted, until the bench
# ends: on ext4 without a journal (this machine's), the inode allocator
# skips every inode freed in the last 60 s (360 s while its table block is
# dirty; fs/ext4/ialloc.c, recently_deleted), so deleting 20,000 files just
# before a run made the next run's file creations scan past them: 60 % of
# the client's CPU, whichever client it was.
prep() {
  local old; old=$(mktemp -d "$out/old.XXXXXX")
  for f in "$out/c" "$out"/uidls-* "$out/fmids" "$work/xdg" "$work/fmhome"; do
    [ -e "$f" ] && mv "$f" "$old/"
  done
  mkdir -p "$work/xdg" "$work/fmhome"
  for i in $(seq 1 "$ACCOUNTS"); do mkdir -p "$out/c/b$i/new" "$out/c/b$i/cur" "$out/c/b$i/tmp"; done
}
cmd() { # TOOL
  case $1 in
    mailwire) CMD=(env XDG_STATE_HOME="$work/xdg" python3 "$top/bench/accounts/schedstat.py" "$work/sched"
                   ${MW_WRAP:-} "$mw" fetch --config "$work/mwrc" --all
                   --jobs "$ACCOUNTS" --allow-plaintext-password --quiet) ;;
    mw-old) CMD=(env XDG_STATE_HOME="$work/xdg" python3 "$top/bench/accounts/schedstat.py" "$work/sched"
                 "$OLD_MW" fetch --config "$work/mwrc" --all
                 --jobs "$ACCOUNTS" --allow-plaintext-password --quiet) ;;
    mpop-a) CMD=(mpop -C "$work/mpoprc" -a -q) ;;
    mpop-x16) CMD=(sh -c 'seq 1 "$1" | sed s/^/b/ | xargs -P16 -n1 mpop -C "$2" -q' sh "$ACCOUNTS" "$work/mpoprc") ;;
    fetchmail) CMD=(env FETCHMAILHOME="$work/fmhome" fetchmail -f "$work/fetchmailrc" --nosyslog -N -s
                    --idfile "$out/fmids") ;;
  esac
}
# CPU ticks (CLK_TCK) used so far: "SERVER PROXY BUSY ALL".  SERVER: the
# Dovecot master and every live descendant (utime+stime+cutime+cstime: a
# process that ended was reaped by its parent, so its time is in the
# parent's cutime/cstime); PROXY: the delaying proxy; BUSY/ALL: the whole
# machine's non-idle and total ticks over all cores (/proc/stat).
cpusnap() {
  python3 - "$(cat "$srv/dovecot/run/master.pid" 2>/dev/null || echo 0)" "${proxy_pid:-0}" <<'PY'
import os, sys
master, proxy = int(sys.argv[1]), int(sys.argv[2])
kids, tick = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    pid = int(d)
    kids.setdefault(int(f[1]), []).append(pid)
    tick[pid] = (int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
srv, todo = 0, [master] if master in tick else []
while todo:
    pid = todo.pop()
    srv += sum(tick.get(pid, (0, 0)))
    todo += kids.get(pid, [])
c = [int(x) for x in open("/proc/stat").readline().split()[1:]]
print(srv, sum(tick.get(proxy, (0, 0))), sum(c) - c[3] - c[4], sum(c))
PY
}
measure1() { # TOOL -> "wall cpu rss srvcpu proxycpu busy%" of one run
  local hz; hz=$(getconf CLK_TCK)
  prep
  cmd "$1"
  rm -f "$work/sched"
  local t0 t1 s0 s1 failed=0
  s0=$(cpusnap)
  t0=$(date +%s.%N)
  /usr/bin/time -o "$work/time" -f '%U %S %M' "${CMD[@]}" >/dev/null 2>"$work/err" || { [ "$1" = fetchmail ] || failed=1; }
  t1=$(date +%s.%N)
  s1=$(cpusnap)
  local got; got=$(find "$out/c" -type f | wc -l)
  [ "$got" = $((ACCOUNTS * MSGS)) ] || { echo "$1: $got of $((ACCOUNTS * MSGS)) messages arrived" >>"$work/err"; failed=1; }
  [ $failed = 0 ] || { echo "FAILED: $(tail -3 "$work/err" | tr '\n' ' ')" >&2; return 1; }
  # mailwire's one thread: on CPU, ready but waiting for a CPU, asleep.
  local self=0
  if [ -s "$work/sched" ]; then
    awk -v t="$1" '{printf "    (%s thread: on CPU %.2fs, waiting for a CPU %.2fs, asleep %.2fs)\n", t, $1, $2, $3 - $1 - $2}' \
      "$work/sched" >&2
    self=$(awk '{print $4}' "$work/sched")
  fi
  read -r -a a0 <<<"$s0"
  read -r -a a1 <<<"$s1"
  echo "$(echo "$t1 - $t0" | bc -l)" \
    "$(tail -1 "$work/time" | awk -v self="$self" '{print $1 + $2 - self}')" \
    "$(tail -1 "$work/time" | awk '{print $3}')" \
    "$(echo "(${a1[0]} - ${a0[0]}) / $hz" | bc -l)" \
    "$(echo "(${a1[1]} - ${a0[1]}) / $hz" | bc -l)" \
    "$(echo "100 * (${a1[2]} - ${a0[2]}) / (${a1[3]} - ${a0[3]})" | bc -l)"
}
median6() { # lines of 6 numbers on stdin -> the median of each column
  local in c; in=$(cat)
  for c in 1 2 3 4 5 6; do
    printf '%s\n' "$in" | awk -v c="$c" 'NF {print $c}' | sort -g | awk '{a[NR]=$1} END {printf "%s ", a[int((NR+1)/2)]}'
  done
  echo
}

echo "accounts bench: $ACCOUNTS accounts x $MSGS x $SIZE B, keep, $RUNS run(s), median"
# Dovecot builds each mailbox's index in its first session: one untimed pass.
rcfiles "$port"
prep
cmd mailwire
"${CMD[@]}" >/dev/null 2>&1 || true
for part in $PARTS; do
  p=$port
  if [ "$part" = proxy ]; then
    python3 "$top/bench/fetch/delayproxy.py" "$port" "$DELAY" >"$work/proxy.port" &
    proxy_pid=$!
    for _ in $(seq 50); do [ -s "$work/proxy.port" ] && break; sleep 0.1; done
    p=$(cat "$work/proxy.port")
    echo "through the delaying proxy (+$DELAY ms each way)"
  else
    echo "loopback"
  fi
  rcfiles "$p"
  declare -A wall=() cpu=()
  tools=$TOOLS
  [ "$part" = proxy ] && tools=$PROXY_TOOLS
  # The tools take turns run by run, so that a drift of the machine's load
  # (or of the file system, above) spreads over all of them.
  declare -A runs=() failed=()
  for _ in $(seq "$RUNS"); do
    for tool in $tools; do
      [ -n "${failed[$tool]:-}" ] && continue
      if r=$(measure1 "$tool"); then runs[$tool]+="$r"$'\n'; else failed[$tool]=1; fi
    done
  done
  for tool in $tools; do
    [ -n "${failed[$tool]:-}" ] && { echo "  $tool FAILED"; continue; }
    set -- $(printf '%s' "${runs[$tool]}" | median6)
    wall[$tool]=$1 cpu[$tool]=$2
    printf '  %-10s wall %8.3fs  cpu %8.3fs  rss %7d KiB  server cpu %8.3fs  proxy cpu %7.3fs  machine busy %3.0f%%\n' \
      "$tool" "$1" "$2" "$3" "$4" "$5" "$6"
  done
  if [ -n "${wall[mailwire]:-}" ]; then
    [ -n "${wall[mpop-a]:-}" ] && printf '  mpop-a / mailwire (wall)        %6.2fx\n' "$(echo "${wall[mpop-a]} / ${wall[mailwire]}" | bc -l)"
    [ -n "${wall[mpop-x16]:-}" ] && printf '  mailwire / mpop-x16 (wall)      %6.2fx\n' "$(echo "${wall[mailwire]} / ${wall[mpop-x16]}" | bc -l)"
    [ -n "${cpu[mpop-x16]:-}" ] && printf '  mailwire / mpop-x16 (CPU)       %6.2fx\n' "$(echo "${cpu[mailwire]} / ${cpu[mpop-x16]}" | bc -l)"
    [ -n "${wall[fetchmail]:-}" ] && printf '  fetchmail / mailwire (wall)     %6.2fx\n' "$(echo "${wall[fetchmail]} / ${wall[mailwire]}" | bc -l)"
  fi
  unset wall cpu runs failed
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=; fi
done
