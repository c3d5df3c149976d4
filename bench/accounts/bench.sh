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
# Env: ACCOUNTS (1000), MSGS (20), SIZE (20480), DELAY (25), RUNS (1),
# TOOLS ("mailwire mpop-x16 mpop-a fetchmail"), PROXY_TOOLS (TOOLS, through
# the proxy), PARTS ("loopback proxy"),
# OUTROOT (/tmp), MW_WRAP (a command put before mailwire, e.g. "perf record
# -o FILE").  Prints wall, client CPU (user+sys, children included)
# and peak RSS (GNU time), and the ratios the issue names.  Not a test.
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
prep() {
  rm -rf "$out/c" "$out"/uidls-* "$work/xdg" "$work/fmhome"
  mkdir -p "$work/xdg" "$work/fmhome"
  for i in $(seq 1 "$ACCOUNTS"); do mkdir -p "$out/c/b$i/new" "$out/c/b$i/cur" "$out/c/b$i/tmp"; done
}
cmd() { # TOOL
  case $1 in
    mailwire) CMD=(env XDG_STATE_HOME="$work/xdg" ${MW_WRAP:-} "$mw" fetch --config "$work/mwrc" --all
                   --jobs "$ACCOUNTS" --allow-plaintext-password --quiet) ;;
    mpop-a) CMD=(mpop -C "$work/mpoprc" -a -q) ;;
    mpop-x16) CMD=(sh -c 'seq 1 "$1" | sed s/^/b/ | xargs -P16 -n1 mpop -C "$2" -q' sh "$ACCOUNTS" "$work/mpoprc") ;;
    fetchmail) CMD=(env FETCHMAILHOME="$work/fmhome" fetchmail -f "$work/fetchmailrc" --nosyslog -N -s
                    --idfile "$out/fmids") ;;
  esac
}
measure() { # TOOL -> "wall cpu rss" (median of RUNS)
  local walls=() cpus=() rsss=() failed=0
  for _ in $(seq "$RUNS"); do
    prep
    cmd "$1"
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -o "$work/time" -f '%U %S %M' "${CMD[@]}" >/dev/null 2>"$work/err" || { [ "$1" = fetchmail ] || failed=1; }
    t1=$(date +%s.%N)
    local got; got=$(find "$out/c" -type f | wc -l)
    [ "$got" = $((ACCOUNTS * MSGS)) ] || { echo "$1: $got of $((ACCOUNTS * MSGS)) messages arrived" >>"$work/err"; failed=1; }
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
  for tool in $tools; do
    r=$(measure "$tool") || { echo "  $tool FAILED"; continue; }
    set -- $r
    wall[$tool]=$1 cpu[$tool]=$2
    printf '  %-10s wall %8.3fs  cpu %8.3fs  rss %7d KiB\n' "$tool" "$1" "$2" "$3"
  done
  if [ -n "${wall[mailwire]:-}" ]; then
    [ -n "${wall[mpop-a]:-}" ] && printf '  mpop-a / mailwire (wall)        %6.2fx\n' "$(echo "${wall[mpop-a]} / ${wall[mailwire]}" | bc -l)"
    [ -n "${wall[mpop-x16]:-}" ] && printf '  mailwire / mpop-x16 (wall)      %6.2fx\n' "$(echo "${wall[mailwire]} / ${wall[mpop-x16]}" | bc -l)"
    [ -n "${cpu[mpop-x16]:-}" ] && printf '  mailwire / mpop-x16 (CPU)       %6.2fx\n' "$(echo "${cpu[mailwire]} / ${cpu[mpop-x16]}" | bc -l)"
    [ -n "${wall[fetchmail]:-}" ] && printf '  fetchmail / mailwire (wall)     %6.2fx\n' "$(echo "${wall[fetchmail]} / ${wall[mailwire]}" | bc -l)"
  fi
  unset wall cpu
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=; fi
done
