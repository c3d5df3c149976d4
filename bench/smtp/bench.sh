#!/usr/bin/env bash
# SMTP submission bench (issue 4): N messages of SIZE bytes to smtp-sink,
# in one run: `mailwire smtp send` (one connection; by default the next
# message's envelope rides with the end of the previous one, and with
# --no-message-pipelining each message waits for the previous reply),
# Postfix's `smtp-source -d`, Python's smtplib (one connection each), msmtp
# and curl (a process and a connection per message), and the raw pipelined
# reference (rawsmtp.c) in both protocols — medians of RUNS interleaved
# runs and ratios to the raw reference.
#
#   bash bench/smtp/bench.sh [BUILD_DIR]     (a release build is best)
# Env: RUNS (default 15), N (1000), SIZE (10240), NPROC (20: messages sent by
# the process-per-message clients; their time is scaled to N), MW_BASE
# (another mailwire binary, e.g. the build before a change: timed in the
# same rounds as "mailwire smtp send (base)").
# Uses its own private servers (tests/servers/start.sh).  Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/mailwire-build-bench}
export RUNS=${RUNS:-15} N=${N:-1000} SIZE=${SIZE:-10240} NPROC=${NPROC:-20}
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

MW_BASE=${MW_BASE:-} python3 - "$work" "$mw" "$MW_SINK_PORT" <<'PY'
import os, statistics, subprocess, sys, time, shutil
work, mw, port = sys.argv[1], sys.argv[2], sys.argv[3]
runs, n, size, nproc = (int(os.environ[k]) for k in ("RUNS", "N", "SIZE", "NPROC"))

# N message files of SIZE bytes (LF line ends, 76-character lines).
d = os.path.join(work, "msgs")
os.makedirs(d)
files = []
for i in range(n):
    head = b"From: a@x.test\nTo: b@y.test\nSubject: bench %d\n\n" % i
    line = b"x" * 75 + b"\n"
    body = line * ((size - len(head)) // len(line) + 1)
    f = os.path.join(d, "m%05d" % i)
    open(f, "wb").write((head + body)[:size - 1] + b"\n")
    files.append(f)

raw = os.path.join(work, "rawsmtp")
env = ["--from", "a@x.test", "--to", "b@y.test"]
mwc = [mw, "smtp", "--host", "127.0.0.1", "--port", port, "--tls", "none", "send"] + env
smtplib_py = ("import smtplib, sys\n"
              "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\ns.ehlo('localhost')\n"
              "for f in sys.argv[2:]:\n"
              "    s.sendmail('a@x.test', ['b@y.test'], open(f, 'rb').read())\ns.quit()\n")
per_proc = files[:nproc]
msmtp = shutil.which("msmtp")
curl = shutil.which("curl")

# name, [commands], scale, same-protocol reference name
clients = [
    ("raw reference", [[raw, "127.0.0.1", port, str(n), files[0]]], 1, None),
    ("raw reference, messages pipelined", [[raw, "127.0.0.1", port, str(n), files[0], "x"]], 1, None),
    ("mailwire smtp send", [mwc + files], 1, "raw reference, messages pipelined"),
    ("mailwire smtp send --no-message-pipelining",
     [mwc + ["--no-message-pipelining"] + files], 1, "raw reference"),
] + ([("mailwire smtp send (base)", [[os.environ["MW_BASE"]] + mwc[1:] + files], 1,
       "raw reference, messages pipelined")] if os.environ.get("MW_BASE") else []) + [
    ("smtp-source -d", [["smtp-source", "-d", "-m", str(n), "-l", str(size), "-f", "a@x.test",
                         "-t", "b@y.test", "127.0.0.1:" + port]], 1, None),
    ("python smtplib", [[sys.executable, "-c", smtplib_py, port] + files], 1, None),
]
if msmtp:
    clients.append(("msmtp (process per message)*",
                    [[msmtp, "--host=127.0.0.1", "--port=" + port, "--tls=off", "--auth=off",
                      "-f", "a@x.test", "b@y.test", "<" + f] for f in per_proc], n / nproc, None))
if curl:
    clients.append(("curl (process per message)*",
                    [[curl, "-s", "smtp://127.0.0.1:" + port, "--mail-from", "a@x.test",
                      "--mail-rcpt", "b@y.test", "-T", f] for f in per_proc], n / nproc, None))

null = open(os.devnull, "wb")
import resource
cpu_of = {}  # the CPU (user + system) of the last run's processes
def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
def run(cmds):
    c0 = children_cpu()
    t0 = time.perf_counter()
    for c in cmds:
        stdin = None
        if c[-1].startswith("<"):
            stdin = open(c[-1][1:], "rb")
            c = c[:-1]
        r = subprocess.run(c, stdin=stdin, stdout=null, stderr=subprocess.PIPE)
        if r.returncode:
            sys.exit("%s failed (%d): %s" % (c[0], r.returncode, r.stderr.decode()[:300]))
    cpu_of["last"] = children_cpu() - c0
    return time.perf_counter() - t0

# Interleaved: each run times every client once, so a change of machine
# load touches all of them alike.  The slow process-per-message clients
# run a third as often.
times = {c[0]: [] for c in clients}
cpus = {c[0]: [] for c in clients}
for i in range(runs):
    for name, cmds, scale, _ in clients:
        if scale != 1 and i % 3:
            continue
        times[name].append(run(cmds) * scale)
        cpus[name].append(cpu_of["last"] * scale)
# One-message runs: the fixed cost of a process (start-up, connection).
one = {"raw reference": [], "mailwire smtp send": []}
for i in range(runs):
    one["raw reference"].append(run([[raw, "127.0.0.1", port, "1", files[0]]]))
    one["mailwire smtp send"].append(run([mwc + files[:1]]))

med = {k: statistics.median(v) for k, v in times.items()}
base = med["raw reference"]
print("SMTP bench: %d x %d bytes to smtp-sink on 127.0.0.1, median of %d interleaved runs"
      % (n, size, runs))
cmed = {k: statistics.median(v) for k, v in cpus.items()}
cbase = cmed["raw reference"]
print("%-44s %9s %8s %12s %9s %8s %12s" % ("client", "time", "x raw", "x same-proto", "CPU",
                                          "x raw", "x same-proto"))
for name, _, _, ref in clients:
    same = "%.2f" % (med[name] / med[ref]) if ref else ""
    csame = "%.2f" % (cmed[name] / cmed[ref]) if ref and cmed[ref] else ""
    print("%-44s %8.3fs %7.2fx %12s %8.3fs %7.2fx %12s" % (
        name, med[name], med[name] / base, same, cmed[name],
        cmed[name] / cbase if cbase else 0, csame))
o_raw, o_mw = (statistics.median(one[k]) for k in ("raw reference", "mailwire smtp send"))
print("one message (start-up + connection): raw %.1f ms, mailwire %.1f ms" % (o_raw * 1e3, o_mw * 1e3))
pm = lambda t, o: (t - o) / (n - 1) * 1e6
print("per message after start-up: raw %.1f us, mailwire --no-message-pipelining %.1f us (x%.2f); "
      "raw pipelined %.1f us, mailwire %.1f us (x%.2f)" % (
          pm(base, o_raw), pm(med["mailwire smtp send --no-message-pipelining"], o_mw),
          pm(med["mailwire smtp send --no-message-pipelining"], o_mw) / pm(base, o_raw),
          pm(med["raw reference, messages pipelined"], o_raw), pm(med["mailwire smtp send"], o_mw),
          pm(med["mailwire smtp send"], o_mw) / pm(med["raw reference, messages pipelined"], o_raw)))
print("* sent %d messages, time scaled to %d" % (nproc, n))
# Paired: each round's ratio to the raw reference of the same round, whose
# median moves less with the machine's load than a ratio of medians.
def paired(name, vals):
    r = [a / b for a, b in zip(vals[name], vals["raw reference"]) if b > 0]
    if len(r) < 4:
        return "n/a"
    q = statistics.quantiles(r, n=4)
    return "%.2f (quartiles %.2f-%.2f)" % (statistics.median(r), q[0], q[2])
for name in ["mailwire smtp send", "mailwire smtp send (base)",
             "mailwire smtp send --no-message-pipelining"]:
    if name in cpus:
        print("paired, %s: time x raw %s; CPU x raw %s; least CPU %.4fs (raw %.4fs)" % (
            name, paired(name, times), paired(name, cpus), min(cpus[name]),
            min(cpus["raw reference"])))
PY
