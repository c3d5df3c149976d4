#!/usr/bin/env bash
# `mailwire send` as sendmail: one process per message, as cron, mutt or
# PHP's mail() run it, against smtp-sink, side by side with msmtp; and the
# cost of the durable queue: `send --enqueue` (stored with fsync, sent at
# once, removed) and `send --enqueue` to a closed port (stored, deferred)
# against a direct `send`, the queue on the same disk as the messages.
# Medians of RUNS interleaved runs of N messages each, in ms per message.
#
#   bash bench/send/bench.sh [BUILD_DIR]     (a release build is best)
# Env: RUNS (default 7), N (100), SIZE (4096).
# Uses its own private servers (tests/servers/start.sh).  Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench}
export RUNS=${RUNS:-7} N=${N:-100} SIZE=${SIZE:-4096}
if [ ! -x "$build/cli/mailwire" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
  ninja -C "$build" cli/mailwire >/dev/null
fi
mw=$build/cli/mailwire
work=$(mktemp -d /var/tmp/mw-bench-send.XXXXXX)
srv=$work/srv
chmod 755 "$work"   # the servers drop privileges and must reach $srv
mkdir -p "$srv"
cleanup() { bash "$top/tests/servers/stop.sh" "$srv" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bash "$top/tests/servers/start.sh" "$srv" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
set -a; . "$srv/env"; set +a

python3 - "$work" "$mw" "$MW_SINK_PORT" <<'PY'
import os, shutil, socket, statistics, subprocess, sys, time
work, mw, port = sys.argv[1], sys.argv[2], sys.argv[3]
runs, n, size = (int(os.environ[k]) for k in ("RUNS", "N", "SIZE"))
msg = os.path.join(work, "msg")
head = b"From: a@x.test\nTo: b@y.test\nSubject: bench\nDate: Sun, 22 Nov 2026 10:00:00 +0000\n" \
       b"Message-ID: <bench@x.test>\n\n"
body = (b"x" * 75 + b"\n") * (size // 76 + 1)
open(msg, "wb").write((head + body)[:size - 1] + b"\n")
s = socket.socket(); s.bind(("127.0.0.1", 0)); closed = str(s.getsockname()[1]); s.close()
env = dict(os.environ, HOME=work)  # no personal config or netrc
q = os.path.join(work, "queue")
direct = [mw, "send", "--host", "127.0.0.1", "--port", port, "--tls", "none", "-i", "b@y.test"]
clients = [
    ("mailwire send", direct),
    ("mailwire send --enqueue (stored, sent, removed)", direct + ["--enqueue", "--queue-dir", q]),
    ("mailwire send --enqueue, server down (stored, deferred)",
     [mw, "send", "--host", "127.0.0.1", "--port", closed, "--tls", "none", "-i", "b@y.test",
      "--enqueue", "--queue-dir", q + "-down"]),
]
msmtp = shutil.which("msmtp")
if msmtp:
    clients.append(("msmtp", [msmtp, "--host=127.0.0.1", "--port=" + port, "--tls=off",
                              "--auth=off", "-f", "a@x.test", "b@y.test"]))
else:
    print("msmtp not installed (scripts/deps.sh bench): not compared")
times = {c[0]: [] for c in clients}
for r in range(runs):
    for name, cmd in clients:
        t0 = time.perf_counter()
        for _ in range(n):
            with open(msg, "rb") as f:
                p = subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env)
            if p.returncode != 0:
                sys.exit("%s: exit %d: %s" % (name, p.returncode, p.stderr.decode()[-300:]))
        times[name].append((time.perf_counter() - t0) / n * 1000)
    shutil.rmtree(q + "-down", ignore_errors=True)
base = statistics.median(times["mailwire send"])
print("%d runs x %d messages of %d bytes, one process per message, to smtp-sink" % (runs, n, size))
print("%-58s %10s %8s" % ("client", "ms/msg", "ratio"))
for name, _ in clients:
    m = statistics.median(times[name])
    print("%-58s %10.2f %7.2fx" % (name, m, m / base))
PY
