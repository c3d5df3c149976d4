#!/usr/bin/env bash
# SMTP submission bench (issue 4): N messages of SIZE bytes to smtp-sink,
# in one run: `mailwire smtp send` (one connection), Postfix's smtp-source
# -d (one connection), Python's smtplib (one connection), msmtp and curl (a
# process and a connection per message), and the raw pipelined reference
# (rawsmtp.c) — medians of RUNS runs and ratios to the raw reference.
#
#   bash bench/smtp/bench.sh [BUILD_DIR]     (a release build is best)
# Env: RUNS (default 5), N (1000), SIZE (10240), NPROC (100: messages sent by
# the process-per-message clients; their time is scaled to N).
# Uses its own private servers (tests/servers/start.sh).  Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench}
RUNS=${RUNS:-5}
N=${N:-1000}
SIZE=${SIZE:-10240}
NPROC=${NPROC:-100}
if [ ! -x "$build/cli/mailwire" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" cli/mailwire >/dev/null
fi
mw=$build/cli/mailwire
work=$(mktemp -d /tmp/mw-bench-smtp.XXXXXX)
srv=$work/srv
chmod 755 "$work"   # the servers drop privileges and must reach $srv
mkdir -p "$srv"
cleanup() { bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -o "$work/rawsmtp" "$top/bench/smtp/rawsmtp.c"
bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
set -a; . "$srv/env"; set +a
port=$MW_SINK_PORT

# N message files of SIZE bytes (LF line ends, 76-character lines).
python3 - "$work/msgs" "$N" "$SIZE" <<'PY'
import sys, os
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
for i in range(n):
    head = b"From: a@x.test\nTo: b@y.test\nSubject: bench %d\n\n" % i
    line = b"x" * 75 + b"\n"
    body = line * ((size - len(head)) // len(line) + 1)
    open(os.path.join(d, "m%05d" % i), "wb").write((head + body)[:size - 1] + b"\n")
PY
files=("$work"/msgs/m*)
one=${files[0]}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timeit() { # NAME SCALE CMD...: median seconds of RUNS runs, scaled
  local name=$1 scale=$2; shift 2
  local t=()
  for _ in $(seq "$RUNS"); do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" || { echo "$name failed:"; cat "$work/err"; return 1; }
    e=$(date +%s.%N)
    t+=("$(echo "($e - $s) * $scale" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | median
}

run_raw() { "$work/rawsmtp" 127.0.0.1 "$port" "$N" "$one"; }
run_mw() { "$mw" smtp --host 127.0.0.1 --port "$port" --tls none send --from a@x.test --to b@y.test "${files[@]}"; }
run_source() { smtp-source -d -m "$N" -l "$SIZE" -f a@x.test -t b@y.test "127.0.0.1:$port"; }
run_smtplib() {
  python3 - "$port" "${files[@]}" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("localhost")
for f in sys.argv[2:]:
    s.sendmail("a@x.test", ["b@y.test"], open(f, "rb").read())
s.quit()
PY
}
run_msmtp() {
  for f in "${files[@]:0:$NPROC}"; do
    msmtp --host=127.0.0.1 --port="$port" --tls=off --auth=off -f a@x.test b@y.test <"$f"
  done
}
run_curl() {
  for f in "${files[@]:0:$NPROC}"; do
    curl -s "smtp://127.0.0.1:$port" --mail-from a@x.test --mail-rcpt b@y.test -T "$f"
  done
}

scale=$(echo "$N / $NPROC" | bc -l)
echo "SMTP bench: $N x $SIZE bytes to smtp-sink on 127.0.0.1, median of $RUNS runs"
raw=$(timeit raw 1 run_raw)
printf '%-34s %8.3f s  %6.2fx\n' "raw pipelined reference" "$raw" 1
for c in "mailwire smtp send:run_mw:1" "smtp-source -d:run_source:1" \
         "python smtplib:run_smtplib:1" "msmtp (process per message)*:run_msmtp:$scale" \
         "curl (process per message)*:run_curl:$scale"; do
  IFS=: read -r name fn sc <<<"$c"
  if [ "$fn" = run_msmtp ] && ! command -v msmtp >/dev/null; then echo "$name: not installed"; continue; fi
  t=$(timeit "$name" "$sc" "$fn") || continue
  printf '%-34s %8.3f s  %6.2fx\n' "$name" "$t" "$(echo "$t / $raw" | bc -l)"
done
echo "* sent $NPROC messages, time scaled to $N"
