#!/usr/bin/env bash
# Stop the servers tests/servers/start.sh DIR started.
#
#   tests/servers/stop.sh DIR
#
# Safe to call twice, after a failed start, or on a DIR where nothing runs.
# Only processes recorded in DIR are signalled, and only after checking that
# the recorded pid still is the program we started (pids are reused).
# Exit status 0 when nothing of DIR is left running, 1 otherwise.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
[ -d "$1" ] || exit 0
D=$(cd "$1" && pwd)
PATH=$PATH:/usr/sbin:/sbin
rc=0

# is_prog PID EXE: the process PID runs the binary whose name ends in EXE.
is_prog() {
  local pid=$1 exe=$2 target
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  target=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ $target == */"$exe" ]]
}

# Each entry: PID EXE NAME.  All get SIGTERM at once, then we wait up to 5 s
# for all, then SIGKILL what is left.
targets=()
add_target() { # add_target PID EXE NAME
  is_prog "$1" "$2" && targets+=("$1 $2 $3")
  return 0
}

# smtp-sink: the pid start.sh recorded.
[ -f "$D/smtp-sink.pid" ] && add_target "$(cat "$D/smtp-sink.pid")" smtp-sink smtp-sink
# Postfix: the master's pid is in its queue directory; SIGTERM makes it stop
# its children (what `postfix stop` does, without its 1 s polling).
pfq=$D/postfix/queue
[ -f "$pfq/pid/master.pid" ] &&
  add_target "$(awk '{print $1; exit}' "$pfq/pid/master.pid")" master postfix-master
# Dovecot: master.pid in its base_dir; on SIGTERM it stops its children.
[ -f "$D/dovecot/run/master.pid" ] && add_target "$(cat "$D/dovecot/run/master.pid")" dovecot dovecot
# start-oauth.sh: the OAuth provider (node) and the second Dovecot.
# (Debian's binary is /usr/bin/node, some builds call it nodejs.)
if [ -f "$D/oauth/provider.pid" ]; then
  add_target "$(cat "$D/oauth/provider.pid")" node oauth-provider
  add_target "$(cat "$D/oauth/provider.pid")" nodejs oauth-provider
fi
[ -f "$D/dvo/run/master.pid" ] && add_target "$(cat "$D/dvo/run/master.pid")" dovecot dovecot-oauth

for t in "${targets[@]}"; do
  set -- $t
  kill -TERM "$1" 2>/dev/null
done
for i in $(seq 1 100); do
  alive=()
  for t in "${targets[@]}"; do
    set -- $t
    is_prog "$1" "$2" && alive+=("$t")
  done
  targets=("${alive[@]}")
  [ ${#targets[@]} = 0 ] && break
  sleep 0.05
done
for t in "${targets[@]}"; do
  set -- $t
  echo "stop.sh: $3 (pid $1) ignored SIGTERM for 5 s; killing it" >&2
  kill -KILL "$1" 2>/dev/null
done
if [ ${#targets[@]} != 0 ]; then
  sleep 0.2
  for t in "${targets[@]}"; do
    set -- $t
    if is_prog "$1" "$2"; then
      echo "stop.sh: $3 (pid $1) is still running" >&2
      rc=1
    fi
  done
fi
rm -f "$D/smtp-sink.pid" "$D/oauth/provider.pid"

# Children that outlive their master (they should not) are found by being a
# Dovecot, Postfix or smtp-sink binary whose working directory is in DIR
# (Postfix daemons chdir to the queue, Dovecot's to its base_dir).
leftover() {
  local cwd pid exe
  # One find over /proc (a readlink per process would fork hundreds of times).
  find /proc -mindepth 2 -maxdepth 2 -name cwd \( -lname "$D" -o -lname "$D/*" \) \
    -printf '%h\n' 2>/dev/null | while read -r cwd; do
    pid=${cwd#/proc/}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    case "$exe" in
    /usr/sbin/dovecot | /usr/lib/dovecot/* | /usr/lib/postfix/sbin/* | */smtp-sink) echo "$pid" ;;
    esac
  done
}
for i in $(seq 1 40); do
  left=$(leftover)
  [ -z "$left" ] && break
  sleep 0.05
done
if [ -n "$left" ]; then
  echo "stop.sh: processes still running in $D: $left; killing them" >&2
  for p in $left; do
    kill -KILL "$p" 2>/dev/null
  done
  sleep 0.2
  [ -n "$(leftover)" ] && rc=1
fi

rm -f "$D/env"
exit $rc
