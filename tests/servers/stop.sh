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

# stop_pid PID EXE NAME: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
  local pid=$1 exe=$2 name=$3 i
  is_prog "$pid" "$exe" || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do
    is_prog "$pid" "$exe" || return 0
    sleep 0.05
  done
  echo "stop.sh: $name (pid $pid) ignored SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null
  sleep 0.1
  if is_prog "$pid" "$exe"; then
    echo "stop.sh: $name (pid $pid) is still running" >&2
    rc=1
  fi
}

# --- smtp-sink
if [ -f "$D/smtp-sink.pid" ]; then
  stop_pid "$(cat "$D/smtp-sink.pid")" smtp-sink smtp-sink
  rm -f "$D/smtp-sink.pid"
fi

# --- Postfix: the master's pid is in its queue directory; SIGTERM makes it
# stop its children (what `postfix stop` does, without its 1 s polling).
pfq=$D/postfix/queue
if [ -f "$pfq/pid/master.pid" ]; then
  stop_pid "$(awk '{print $1; exit}' "$pfq/pid/master.pid")" master postfix-master
fi

# --- Dovecot: master.pid in its base_dir; on SIGTERM it stops its children.
dvrun=$D/dovecot/run
if [ -f "$dvrun/master.pid" ]; then
  stop_pid "$(cat "$dvrun/master.pid")" dovecot dovecot
fi

# Children that outlive their master (they should not) are found by being a
# Dovecot, Postfix or smtp-sink binary whose working directory is in DIR
# (Postfix daemons chdir to the queue, Dovecot's to its base_dir).
leftover() {
  local p cwd exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in
    /usr/sbin/dovecot | /usr/lib/dovecot/* | /usr/lib/postfix/sbin/* | */smtp-sink) ;;
    *) continue ;;
    esac
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in
    "$D" | "$D"/*) echo "${p#/proc/}" ;;
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
