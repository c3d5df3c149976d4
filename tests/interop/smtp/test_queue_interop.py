#!/usr/bin/env python3
"""The outgoing queue (`mailwire send --enqueue`, `mailwire queue`) against
the real Postfix and Dovecot of tests/servers/.

- Server down: 20 messages sent to a closed port are all queued; a flush
  pointed at Postfix delivers each exactly once (fetched back over POP3).
- Two runners at once: no message is delivered twice.
- SIGKILL at progress points (tests/tools/killat.c counts the run's writes,
  fsyncs, renames, unlinks and socket writes and kills before the N-th; N
  drawn over a complete run's count, seeded): half the kills hit
  `send --enqueue` (store, then the immediate attempt to Postfix), half a
  `queue flush` to Postfix.  Afterwards every message whose send exited 0
  was delivered or is still queued: 0 lost; duplicates are counted.
- A full disk (a small tmpfs, as root) at enqueue: exit 75, nothing half
  written in the queue.

usage: test_queue_interop.py MAILWIRE KILLAT_SO [--kills N]
Users: q1 and q8 (recipients here; tests/servers/README.md)."""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402
from test_smtp_interop import dom, env_for, pop_fetch_all  # noqa: E402

MAILWIRE = os.path.abspath(sys.argv[1])
KILLAT = os.path.abspath(sys.argv[2])
KILLS = int(sys.argv[sys.argv.index("--kills") + 1]) if "--kills" in sys.argv else 200
cases = []


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


def closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return port


def postfix(user):
    return ["--host", "127.0.0.1", "--port", os.environ["MW_SMTP_PORT"],
            "--cafile", os.environ["MW_CA_FILE"], "--user", user]


def run(args, user="q8", stdin=b"", extra_env=None, timeout=300):
    e = env_for(user)
    if extra_env:
        e.update(extra_env)
    return subprocess.run([MAILWIRE] + args, input=stdin, capture_output=True, env=e,
                          timeout=timeout)


def show(p):
    return "exit %d\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout.decode(errors="replace")[-1500:],
                                                 p.stderr.decode(errors="replace")[-1500:])


def message(tag, rcpt):
    return (b"From: " + dom("q8").encode() + b"\nTo: " + dom(rcpt).encode() +
            b"\nSubject: queue " + tag.encode() + b"\n\nqueued body " + tag.encode() + b"\n")


def subjects(msgs):
    out = []
    for m in msgs:
        g = re.search(rb"\r\nSubject: queue (\S+)\r\n", b"\r\n" + m)
        out.append(g.group(1).decode() if g else None)
    return out


def queue_ids(qdir):
    p = run(["queue", "--queue-dir", qdir, "list", "--json"])
    if p.returncode != 0:
        raise RuntimeError("queue list: " + show(p))
    import json
    return [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]


@case("server down: 20 messages to a closed port are all queued (exit 0); a flush to Postfix "
      "delivers each exactly once")
def down_then_up():
    pop_fetch_all("q8", 0, deadline_s=1)  # an empty mailbox to count in
    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "q")
        port = str(closed_port())
        for i in range(20):
            p = run(["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port", port,
                     "--tls", "none", "-i", dom("q8")], stdin=message("down-%d" % i, "q8"))
            if p.returncode != 0 or b"queued as " not in p.stderr:
                return "message %d not queued: %s" % (i, show(p))
        entries = queue_ids(q)
        if len(entries) != 20:
            return "%d entries in the queue, wanted 20" % len(entries)
        p = run(["queue", "--queue-dir", q] + postfix("q8") + ["flush"])
        if p.returncode != 0 or b"sent 20, deferred 0, failed 0; 0 left" not in p.stderr:
            return "flush: " + show(p)
        if queue_ids(q):
            return "entries left in the queue after the flush"
    got = subjects(pop_fetch_all("q8", 20, deadline_s=120))
    want = ["down-%d" % i for i in range(20)]
    if sorted(got) != sorted(want):
        return "delivered %d: %s" % (len(got), sorted(x or "?" for x in got))
    return None


@case("two runners flush the same queue at once: every message delivered exactly once")
def two_runners():
    pop_fetch_all("q1", 0, deadline_s=1)
    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "q")
        port = str(closed_port())
        for i in range(12):
            p = run(["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port", port,
                     "--tls", "none", "-i", dom("q1")], stdin=message("two-%d" % i, "q1"))
            if p.returncode != 0:
                return "not queued: " + show(p)
        e = env_for("q8")
        procs = [subprocess.Popen([MAILWIRE, "queue", "--queue-dir", q] + postfix("q8") + ["flush"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (o, er) in zip(procs, outs):
            if p.returncode != 0:
                return "a runner exited %d: %s" % (p.returncode, er.decode(errors="replace"))
        if queue_ids(q):
            return "entries left in the queue"
    got = subjects(pop_fetch_all("q1", 12, deadline_s=120))
    if sorted(got) != sorted("two-%d" % i for i in range(12)):
        return "delivered %d (want 12, each once): %s" % (len(got), sorted(x or "?" for x in got))
    return None


def killat_env(n, count=None):
    asan = os.environ.get("ASAN_OPTIONS", "")
    e = {"LD_PRELOAD": KILLAT, "MW_KILLAT_SIG": str(int(signal.SIGKILL)),
         "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0:detect_leaks=0"}
    if n is not None:
        e["MW_KILLAT"] = str(n)
    if count:
        e["MW_KILLAT_COUNT"] = count
    return e


@case("SIGKILL at %d progress points of enqueue and of queue runs: 0 lost (every message "
      "whose send exited 0 delivered), duplicates counted" % KILLS)
def kills():
    seed = int(os.environ.get("MW_SEED", random.randrange(1 << 30)))
    print("# seed %d (MW_SEED=%d to repeat)" % (seed, seed))
    rnd = random.Random(seed)
    pop_fetch_all("q8", 0, deadline_s=1)
    d = tempfile.mkdtemp()
    try:
        q = os.path.join(d, "q")
        cnt = os.path.join(d, "count")
        base_enq = ["send", "--enqueue", "--queue-dir", q] + postfix("q8") + ["-i", dom("q8")]
        base_run = ["queue", "--queue-dir", q] + postfix("q8") + ["flush"]
        down = ["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port",
                str(closed_port()), "--tls", "none", "-i", dom("q8")]

        def counted(args, stdin=b""):
            if os.path.exists(cnt):
                os.unlink(cnt)
            p = run(args, stdin=stdin, extra_env=killat_env(None, cnt))
            with open(cnt) as f:
                return p, int(f.read())

        # A complete run of each kind gives the range the kill points are drawn from.
        p, n_enq = counted(base_enq, message("probe-enq", "q8"))
        if p.returncode != 0:
            return "probe enqueue: " + show(p)
        # Server down: the message is committed into the queue (fsyncs, renames).
        p, n_down = counted(down, message("probe-down", "q8"))
        if p.returncode != 0:
            return "probe enqueue (server down): " + show(p)
        for i in range(2):
            p = run(down, stdin=message("probe-run-%d" % i, "q8"))
        p, n_run = counted(base_run)
        if p.returncode != 0 or n_enq < 10 or n_run < 10:
            return "probe runs: %d and %d calls counted: is the killat shim loaded? %s" % (
                n_enq, n_run, show(p))
        print("# counted calls of a complete run: send --enqueue (sent at once) %d, (server down, "
              "queued) %d, a flush of 2 messages %d" % (n_enq, n_down, n_run))
        accepted = {"probe-enq", "probe-down", "probe-run-0", "probe-run-1"}  # send exited 0
        not_accepted = 0
        killed = 0
        for k in range(KILLS):
            if k % 2 == 0:
                tag = "k%d" % k
                up = k % 4 == 0
                p = run(base_enq if up else down, stdin=message(tag, "q8"),
                        extra_env=killat_env(rnd.randint(1, n_enq if up else n_down)))
                if p.returncode == 0:
                    accepted.add(tag)
                elif p.returncode == -signal.SIGKILL:
                    killed += 1
                    not_accepted += 1  # the caller was not told: it still holds the message
                else:
                    return "enqueue %s: %s" % (tag, show(p))
            else:
                for j in range(2):
                    tag = "k%d-%d" % (k, j)
                    p = run(down, stdin=message(tag, "q8"))
                    if p.returncode != 0:
                        return "enqueue (server down) %s: %s" % (tag, show(p))
                    accepted.add(tag)
                p = run(base_run, extra_env=killat_env(rnd.randint(1, n_run)))
                if p.returncode == -signal.SIGKILL:
                    killed += 1
                elif p.returncode not in (0, 67):
                    return "killed run ended %s" % show(p)
        # Everything left goes now (the last kill may have left a backoff).
        p = run(base_run)
        if p.returncode != 0:
            return "final flush: " + show(p)
        left = queue_ids(q)
        if left:
            return "%d entries left after the final flush" % len(left)
        half = [f for f in os.listdir(os.path.join(q, "msg"))]
        got = subjects(pop_fetch_all("q8", len(accepted), deadline_s=120))
        from collections import Counter
        c = Counter(got)
        lost = sorted(t for t in accepted if c[t] == 0)
        dups = sum(v - 1 for v in c.values() if v > 1)
        print("# %d kills; %d messages accepted (send exit 0), %d killed before send returned; "
              "%d delivered copies, %d duplicates, %d lost; %d message files without envelope"
              % (killed, len(accepted), not_accepted, len(got), dups, len(lost), len(half)))
        if killed < KILLS * 9 // 10:
            return "only %d of %d runs were killed" % (killed, KILLS)
        if lost:
            return "lost: %s" % lost
        if None in c:
            return "a delivered message without our subject"
        return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case("disk full at enqueue (a 64 KiB tmpfs): exit 75, nothing half-written in the queue; "
      "a message that fits is then queued")
def disk_full():
    if os.geteuid() != 0:
        return "SKIP not root: cannot mount a tmpfs"
    d = tempfile.mkdtemp()
    mounted = False
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", d],
                           capture_output=True)
        if r.returncode != 0:
            return "SKIP cannot mount a tmpfs: " + r.stderr.decode(errors="replace")
        mounted = True
        q = os.path.join(d, "q")
        port = str(closed_port())
        big = message("big", "q8") + b"x" * 75 + b"\n" + (b"y" * 76 + b"\n") * 2000  # ~150 KB
        p = run(["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port", port,
                 "--tls", "none", "-i", dom("q8")], stdin=big)
        if p.returncode != 75 or b"No space left on device" not in p.stderr:
            return "want exit 75 naming ENOSPC: " + show(p)
        for sub in ("tmp", "msg", "env"):
            if os.listdir(os.path.join(q, sub)):
                return "%s/ holds %s after the failed enqueue" % (sub, os.listdir(os.path.join(q, sub)))
        p = run(["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port", port,
                 "--tls", "none", "-i", dom("q8")], stdin=message("small", "q8"))
        if p.returncode != 0 or len(queue_ids(q)) != 1:
            return "a small message after it was not queued: " + show(p)
        return None
    finally:
        if mounted:
            subprocess.run(["umount", d])
        shutil.rmtree(d, ignore_errors=True)


@case("queue run --daemon: a send that gets through wakes it, and it flushes what was waiting")
def daemon_kick():
    import json
    import time
    pop_fetch_all("q8", 0, deadline_s=1)
    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "q")
        p = run(["send", "--enqueue", "--queue-dir", q, "--host", "127.0.0.1", "--port",
                 str(closed_port()), "--tls", "none", "-i", dom("q8")],
                stdin=message("daemon-waiting", "q8"))
        if p.returncode != 0:
            return "not queued: " + show(p)
        dm = subprocess.Popen([MAILWIRE, "queue", "--queue-dir", q, "--json"] + postfix("q8") +
                              ["run", "--daemon", "--interval", "3600"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env_for("q8"))
        try:
            # The daemon's first run finds the entry not due (backoff): it
            # stays.  The FIFO is there once the daemon listens.
            end = time.time() + 120
            while not os.path.exists(os.path.join(q, "kick")) and time.time() < end:
                time.sleep(0.05)
            p = run(["send", "--enqueue", "--queue-dir", q] + postfix("q8") + ["-i", dom("q8")],
                    stdin=message("daemon-kicker", "q8"))
            if p.returncode != 0:
                return "the kicking send: " + show(p)
            while queue_ids(q) and time.time() < end and dm.poll() is None:
                time.sleep(0.1)
            left = queue_ids(q)
        finally:
            dm.terminate()
            out, err = dm.communicate(timeout=60)
        if left:
            return "still queued after the kick: %s\ndaemon stderr: %s" % (
                [e["id"] for e in left], err.decode(errors="replace")[-800:])
        events = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
        if not any(e.get("event") == "sent" for e in events):
            return "the daemon reported no sent entry: %r" % events
    got = subjects(pop_fetch_all("q8", 2, deadline_s=120))
    if sorted(got) != ["daemon-kicker", "daemon-waiting"]:
        return "delivered: %r" % got
    return None


def main():
    have = bool(os.environ.get("MW_SMTP_PORT"))
    print("1..%d" % len(cases))
    failed = 0
    for n, (name, fn) in enumerate(cases, 1):
        if not have:
            print("ok %d - %s # SKIP servers not running" % (n, name))
            continue
        try:
            why = fn()
        except Exception as e:  # a crash of the test is a failure
            why = "%s: %s" % (type(e).__name__, e)
        if why and why.startswith("SKIP"):
            print("ok %d - %s # %s" % (n, name, why))
        elif why:
            failed += 1
            print("not ok %d - %s" % (n, name))
            for line in str(why).splitlines():
                print("# " + line)
        else:
            print("ok %d - %s" % (n, name))
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
