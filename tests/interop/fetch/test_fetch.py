#!/usr/bin/env python3
"""`mailwire fetch` against the real Dovecot (tests/servers), printing TAP.

usage: test_fetch.py MAILWIRE KILLAT_SO [--crash-kills N] [--big N]

Line ends: the server's Maildir files are written with LF (the Maildir
convention), Dovecot serves them with CRLF, and the store writes LF by
default (mw_store_options.keep_crlf = 0), so every fetched file must equal
the file put on the server byte for byte.  mbox is mboxrd (">From " quoting
undone when comparing); the MDA gets the LF form on stdin too.

Crash safety: a fetch-and-delete killed with SIGKILL at points drawn from
its own progress (seeded; the seed is printed): tests/tools/killat.c counts
the calls that change state outside the process (file and socket writes,
fsync, rename, link, unlink) and kills the run just before the N-th, so the
number of kills does not depend on the machine's speed or load.  After every kill, every message ever put on
the server must be on the server or in the destination Maildir's new/,
byte-exact; a file in new/ must equal one of the messages (never partial).
After a final complete run, everything is in new/ and the server is empty.
Users: f2-f9, f15-f20 here; f10-f14 belong to test_fetch_faults.c (both may run
at once); f1 is left to tests/interop/servers_smoke.py (Postfix delivers to it).
Duplicates (a message stored twice because a kill came after the store
commit and before the state save) are counted and reported, not failures.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MW = sys.argv[1]
KILLAT = os.path.abspath(sys.argv[2])
KILLS = 200
BIG = 2000
args = sys.argv[3:]
while args:
    if args[0] == "--crash-kills":
        KILLS = int(args[1])
        args = args[2:]
    elif args[0] == "--big":
        BIG = int(args[1])
        args = args[2:]
    else:
        sys.exit("unknown argument " + args[0])

n_test = 0
failed = 0


def tap(ok, name, *diag, skip=None):
    global n_test, failed
    n_test += 1
    print(("ok" if ok else "not ok") + " %d - %s" % (n_test, name.replace("#", "\\#")) +
          (" # SKIP " + skip if skip else ""))
    if not ok:
        failed += 1
        for d in diag:
            for line in str(d).splitlines()[:40]:
                print("# " + line)
    sys.stdout.flush()


def diag(msg):
    print("# " + msg)
    sys.stdout.flush()


ENV = os.environ
if not ENV.get("MW_POP3_PORT") or not ENV.get("MW_MAILDIR_ROOT"):
    print("1..1")
    print("ok 1 - interop fetch # SKIP servers not running")
    sys.exit(0)

ROOT = ENV["MW_MAILDIR_ROOT"]
UID, GID = (int(x) for x in ENV["MW_MAIL_OWNER"].split(":"))
PORT = ENV["MW_POP3_PORT"]
CA = ENV["MW_CA_FILE"]
WORK = tempfile.mkdtemp(prefix="mw-fetch-")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fetch_common  # noqa: E402
from fetch_common import (CACHE, SEQ, killat_env, maildir_files, make_message,  # noqa: E402,F401
                          on_server, put, read_cached, reset_mailbox, server_dir)

fetch_common.KILLAT[0] = KILLAT


def fetch(user, *extra, timeout=120, popen=False, password=None, env_extra=None):
    cmd = [MW, "fetch", "--host", "localhost", "--port", PORT, "--cafile", CA, "--user", user,
           "--state", os.path.join(WORK, user + ".state")] + list(extra)
    env = dict(ENV)
    env["MAILWIRE_PASSWORD"] = password or ("pw-" + user)
    env.update(env_extra or {})
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)


def fetch_json(user, *extra, **kw):
    r = fetch(user, "--json", *extra, **kw)
    try:
        j = json.loads(r.stdout.decode())[0]
    except Exception:
        j = {}
    return r, j


def same_multiset(a, b):
    return sorted(a) == sorted(b)


def show(r):
    return "rc %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout.decode(errors="replace"),
                                             r.stderr.decode(errors="replace"))


# ---- Maildir: fetch and delete, second run, new arrivals ---------------------
user = "f20"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f20")
first = [make_message("f20", size=s) for s in (0, 10, 300, 5000, 70000, 1200, 0, 64000) * 4]
put(user, first)
r, j = fetch_json(user, "--maildir", dest)
got = maildir_files(dest)
tap(r.returncode == 0 and j.get("fetched") == len(first) and j.get("deleted") == len(first),
    "maildir: %d messages fetched and deleted (exit 0, json counts)" % len(first), show(r))
tap(same_multiset(got, first), "maildir: new/ holds every message byte-exact (LF, as on the server)",
    "got %d files, want %d" % (len(got), len(first)))
tap(on_server(user) == [], "maildir: the server's mailbox is empty after QUIT",
    "%d left" % len(on_server(user)))
r, j = fetch_json(user, "--maildir", dest)
tap(r.returncode == 0 and j.get("fetched") == 0 and len(maildir_files(dest)) == len(first),
    "maildir: a second run fetches nothing", show(r))
later = [make_message("f1-late", size=s) for s in (100, 2000, 0)]
put(user, later)
r, j = fetch_json(user, "--maildir", dest)
got = maildir_files(dest)
tap(r.returncode == 0 and j.get("fetched") == 3 and same_multiset(got, first + later),
    "maildir: new arrivals are fetched alone (3), byte-exact", show(r), "files %d" % len(got))
r = fetch(user, "--maildir", dest)
tap(r.returncode == 0 and r.stdout.decode().startswith("f20@localhost: 0 fetched"),
    "summary line on stdout when not --json: " + r.stdout.decode().strip(), show(r))

# ---- POP3S, trace masked -----------------------------------------------------------
user = "f18"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f18")
msgs = [make_message("f18", size=s) for s in (0, 4000)]
put(user, msgs)
trace = os.path.join(WORK, "f18.trace")
env = dict(ENV)
env["MAILWIRE_PASSWORD"] = "pw-" + user
r = subprocess.run([MW, "fetch", "--host", "localhost", "--port", ENV["MW_POP3S_PORT"], "--tls",
                    "implicit", "--cafile", CA, "--user", user, "--auth", "user", "--state",
                    os.path.join(WORK, user + ".state"), "--maildir", dest, "--trace", trace],
                   env=env, capture_output=True, timeout=120)
tr = open(trace, "rb").read() if os.path.exists(trace) else b""
tap(r.returncode == 0 and same_multiset(maildir_files(dest), msgs) and on_server(user) == [] and
    b"C: PASS" in tr and b"pw-f18" not in tr and b"C: DELE 2" in tr and
    tr.rfind(b"C: QUIT") > tr.rfind(b"C: DELE"),
    "POP3S (implicit TLS): fetched and deleted; the trace masks PASS and shows DELE before QUIT",
    show(r), tr.decode(errors="replace")[-600:])

# ---- keep mode ----------------------------------------------------------------
user = "f2"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f2")
msgs = [make_message("f2", size=s) for s in (0, 500, 9000, 20)]
put(user, msgs)
r, j = fetch_json(user, "--maildir", dest, "--keep")
tap(r.returncode == 0 and j.get("fetched") == 4 and j.get("deleted") == 0 and
    same_multiset(maildir_files(dest), msgs) and same_multiset(on_server(user), msgs),
    "keep: 4 fetched, none deleted, server still holds all 4", show(r))
r, j = fetch_json(user, "--maildir", dest, "--keep")
tap(r.returncode == 0 and j.get("fetched") == 0 and j.get("skipped") == 4,
    "keep: a second run fetches nothing (4 skipped as old)", show(r))
r, j = fetch_json(user, "--maildir", dest, "--keep", "--all-messages")
tap(r.returncode == 0 and j.get("fetched") == 4 and len(maildir_files(dest)) == 8,
    "keep --all-messages: all 4 fetched again", show(r))
r, j = fetch_json(user, "--maildir", dest)
tap(r.returncode == 0 and j.get("fetched") == 0 and j.get("deleted") == 4 and on_server(user) == [],
    "a delete run removes the messages fetched earlier in keep mode, fetching none", show(r))

# ---- mbox ---------------------------------------------------------------------


def mboxrd_split(data):
    """Messages of an mboxrd file: split at 'From ' lines, drop the blank
    line before each separator, undo one level of '>' before 'From '."""
    out = []
    cur = None
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        if line.startswith(b"From "):
            if cur is not None:
                out.append(cur)
            cur = []
            continue
        cur.append(line)
    if cur is not None:
        out.append(cur)
    msgs = []
    for lines in out:
        if lines and lines[-1] == b"":
            lines = lines[:-1]
        fixed = []
        for l in lines:
            s = l.lstrip(b">")
            if s.startswith(b"From ") and len(l) > len(s):
                l = l[1:]
            fixed.append(l)
        msgs.append(b"\n".join(fixed) + b"\n")
    return msgs


user = "f3"
reset_mailbox(user)
mbox = os.path.join(WORK, "f3.mbox")
msgs = [make_message("f3", size=s) for s in (0, 3000, 100, 45000, 7)]
put(user, msgs)
r, j = fetch_json(user, "--mbox", mbox)
data = open(mbox, "rb").read() if os.path.exists(mbox) else b""
got = mboxrd_split(data)
tap(r.returncode == 0 and j.get("fetched") == 5 and same_multiset(got, msgs) and on_server(user) == [],
    "mbox: 5 fetched and deleted, each message byte-exact after undoing mboxrd quoting", show(r),
    "%d messages parsed from the mbox" % len(got))
more = [make_message("f3-late", size=10)]
put(user, more)
r, j = fetch_json(user, "--mbox", mbox)
got = mboxrd_split(open(mbox, "rb").read())
tap(r.returncode == 0 and j.get("fetched") == 1 and same_multiset(got, msgs + more),
    "mbox: a new arrival is appended alone", show(r))

# ---- MDA ----------------------------------------------------------------------
user = "f4"
reset_mailbox(user)
mdadir = os.path.join(WORK, "mda-f4")
os.makedirs(mdadir)
msgs = [make_message("f4", size=s) for s in (0, 800, 33000)]
put(user, msgs)
r, j = fetch_json(user, "--mda", "cat > %s/msg.$$" % mdadir)
got = [open(os.path.join(mdadir, f), "rb").read() for f in os.listdir(mdadir)]
tap(r.returncode == 0 and j.get("fetched") == 3 and same_multiset(got, msgs) and on_server(user) == [],
    "mda: 3 messages piped to the command byte-exact, then deleted", show(r))
r, j = fetch_json(user, "--mda", "cat > %s/msg.$$" % mdadir)
tap(r.returncode == 0 and j.get("fetched") == 0 and len(os.listdir(mdadir)) == 3,
    "mda: a second run delivers nothing", show(r))

# ---- store faults: MDA failing, unwritable Maildir --------------------------------
user = "f5"
reset_mailbox(user)
msgs = [make_message("f5", size=s) for s in (10, 2000, 400)]
put(user, msgs)
r, j = fetch_json(user, "--mda", "cat >/dev/null; echo mda-said-no >&2; exit 3")
err = r.stderr.decode(errors="replace")
tap(r.returncode != 0 and j.get("fetched") == 0 and j.get("deleted") == 0 and
    same_multiset(on_server(user), msgs) and "store" in err and "3" in err,
    "mda exiting 3: exit %d, nothing deleted on the server, stderr says why: %s" %
    (r.returncode, err.strip().splitlines()[-1] if err.strip() else ""), show(r))
ro = os.path.join(WORK, "readonly-md")
os.makedirs(ro + "/new")
os.makedirs(ro + "/cur")
os.makedirs(ro + "/tmp")
os.chmod(ro + "/tmp", 0o500)
if os.geteuid() == 0:
    tap(True, "unwritable Maildir tmp/", skip="running as root (permissions not enforced)")
else:
    r, j = fetch_json(user, "--maildir", ro)
    tap(r.returncode == 74 and same_multiset(on_server(user), msgs),
        "unwritable Maildir: exit 74 (EX_IOERR), nothing deleted", show(r))
r = fetch(user, "--maildir", os.path.join(WORK, "md-f5"), password="wrong")
tap(r.returncode == 77 and same_multiset(on_server(user), msgs),
    "wrong password: exit 77, nothing touched", show(r))

# ---- size limit and filter -------------------------------------------------------
user = "f6"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f6")
small = [make_message("f6", size=100), make_message("f6", size=200)]
large = [make_message("f6", size=20000)]
spam = [make_message("f6", size=50, subject="spam offer")]
put(user, small + large + spam)
r, j = fetch_json(user, "--maildir", dest, "--size-limit", "5000",
                  "--filter", "if grep -q '^Subject: spam'; then exit 1; fi; exit 0")
tap(r.returncode == 0 and j.get("fetched") == 2 and same_multiset(maildir_files(dest), small) and
    same_multiset(on_server(user), large),
    "size limit skips the large one (left on the server); filter exit 1 deletes the spam unstored",
    show(r), "server has %d" % len(on_server(user)))
r, j = fetch_json(user, "--maildir", dest, "--filter", "exit 7")
tap(r.returncode != 0 and j.get("fetched") == 0 and same_multiset(on_server(user), large) and
    "status 7" in r.stderr.decode(),
    "a filter exiting 7 is an error naming the status; the message stays", show(r))

# ---- the RETR bound on an honest server ----------------------------------------
# A RETR may bring at most its LIST size + max(size, 64 KiB), and never more
# than --size-limit: a message whose LIST size is exactly the limit (Dovecot
# counts CRLF: the W= of its file name) must still come whole, with a body
# larger than the 64 KiB slack; one octet lower it is skipped by its size.
user = "h7"
reset_mailbox(user)
dest = os.path.join(WORK, "md-h7")
msgs = [make_message("h7", size=s) for s in (300, 5000, 200000)]
put(user, msgs)
wire = max(len(m) + m.count(b"\n") for m in msgs)
r, j = fetch_json(user, "--maildir", dest, "--keep", "--size-limit", str(wire - 1))
tap(r.returncode == 0 and j.get("fetched") == 2 and j.get("skipped") == 1,
    "size limit one octet under the largest LIST size skips it", show(r))
shutil.rmtree(dest, ignore_errors=True)
os.unlink(os.path.join(WORK, user + ".state"))
r, j = fetch_json(user, "--maildir", dest, "--keep", "--size-limit", str(wire))
tap(r.returncode == 0 and j.get("fetched") == 3 and same_multiset(maildir_files(dest), msgs),
    "a message at exactly --size-limit (LIST size, 200 KB: past the 64 KiB slack) comes whole",
    show(r))

# ---- two fetches of one account at once ----------------------------------------
user = "f7"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f7")
put(user, [make_message("f7", size=1000) for _ in range(3)])
import fcntl

lockf = open(os.path.join(WORK, user + ".state.lock"), "a")
fcntl.flock(lockf, fcntl.LOCK_EX)
r = fetch(user, "--maildir", dest)
fcntl.flock(lockf, fcntl.LOCK_UN)
lockf.close()
tap(r.returncode == 75 and len(on_server(user)) == 3 and maildir_files(dest) == [],
    "the account locked by another fetch: exit 75, nothing done", show(r))

# ---- accounts from a config file, two at once ------------------------------------
cfg = os.path.join(WORK, "config")
with open(cfg, "w") as f:
    f.write("defaults\nhost localhost\nport %s\ntls starttls\ncafile %s\n\n" % (PORT, CA))
    for u in ("f15", "f16"):
        f.write("account %s\nuser %s\npassword pw-%s\ndelivery maildir %s/md-%s\n\n" %
                (u, u, u, WORK, u))
os.chmod(cfg, 0o600)
want = {}
for u, k in (("f15", 3), ("f16", 5)):
    reset_mailbox(u)
    want[u] = [make_message(u, size=1000 * i) for i in range(k)]
    put(u, want[u])
env = dict(ENV)
env["XDG_STATE_HOME"] = os.path.join(WORK, "xdg-state")
env.pop("MAILWIRE_PASSWORD", None)
r = subprocess.run([MW, "fetch", "--config", cfg, "--all", "--jobs", "2", "--json"], env=env,
                   capture_output=True, timeout=120)
try:
    js = {x["account"]: x for x in json.loads(r.stdout.decode())}
except Exception:
    js = {}
tap(r.returncode == 0 and js.get("f15", {}).get("fetched") == 3 and
    js.get("f16", {}).get("fetched") == 5 and
    all(same_multiset(maildir_files(os.path.join(WORK, "md-" + u)), want[u]) for u in want) and
    os.path.exists(os.path.join(WORK, "xdg-state", "mailwire", "uidl", "f15")),
    "config: --all --jobs 2 fetches both accounts in parallel, byte-exact, state under "
    "$XDG_STATE_HOME/mailwire/uidl/NAME", show(r))
r = subprocess.run([MW, "fetch", "--config", cfg, "f16", "nosuch"], env=env, capture_output=True,
                   timeout=60)
tap(r.returncode == 64 and b"no account 'nosuch'" in r.stderr, "config: an unknown account is a "
    "usage error naming it", show(r))
reset_mailbox("f17")
m17 = [make_message("f17", size=10), make_message("f17", size=2000)]
put("f17", m17)
with open(cfg, "a") as f:
    f.write("account f17 : f15\nuser f17\npassword pw-f17\ndelivery mbox %s/f17.mbox\n" % WORK)
r = subprocess.run([MW, "pop3", "--account", "f17", "--config", cfg, "stat"], env=env,
                   capture_output=True, timeout=60)
tap(r.returncode == 0 and r.stdout.startswith(b"2 "),
    "pop3 --account: host, port, TLS, CA, user and password from the account (inherited from "
    "another account): stat says 2", show(r))
r = subprocess.run([MW, "fetch", "--account", "f17", "--config", cfg, "--json"], env=env,
                   capture_output=True, timeout=60)
got = mboxrd_split(open(os.path.join(WORK, "f17.mbox"), "rb").read()) if os.path.exists(
    os.path.join(WORK, "f17.mbox")) else []
tap(r.returncode == 0 and same_multiset(got, m17) and on_server("f17") == [],
    "fetch --account f17: mbox delivery from the account, byte-exact, deleted", show(r))
os.chmod(cfg, 0o644)
r = subprocess.run([MW, "fetch", "--config", cfg, "f16"], env=env, capture_output=True, timeout=60)
tap(r.returncode != 0 and b"config" in r.stderr, "config: a password in a file others can read "
    "is refused", show(r))

# ---- SIGTERM: a clean stop records what was stored ----------------------------------
user = "f19"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f19")
msgs = [make_message("f19", size=3000) for _ in range(300)]
put(user, msgs)
# SIGTERM from the run's own progress: just before its 150th state-changing
# call (each stored message takes several: data write, fsync, link, state).
p = fetch(user, "--maildir", dest, "--quiet", popen=True, env_extra=killat_env(150, signal.SIGTERM))
try:
    p.wait(timeout=300)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
err = p.stderr.read().decode(errors="replace")
p.stderr.close()
first = len(maildir_files(dest))
state_lines = open(os.path.join(WORK, user + ".state")).read().count("\n") - 1 \
    if os.path.exists(os.path.join(WORK, user + ".state")) else -1
r, j = fetch_json(user, "--maildir", dest, timeout=300)
got = maildir_files(dest)
tap(p.returncode == 75 and 0 < first < 300 and state_lines == first and
    r.returncode == 0 and j.get("fetched") == 300 - first and same_multiset(got, msgs),
    "SIGTERM mid-fetch: exit 75, the %d messages stored are all in the saved state; the next run "
    "fetches the other %d, no duplicate" % (first, 300 - first),
    "first run exit %s: %s" % (p.returncode, err), "state lines %d" % state_lines, show(r))

# ---- crash safety -----------------------------------------------------------------
user = "f8"
reset_mailbox(user)
dest = os.path.join(WORK, "md-f8")
seed = int(ENV.get("MW_FETCH_SEED", "20261122"))
rng = random.Random(seed)
diag("crash test: seed %d (MW_FETCH_SEED to repeat), %d kills" % (seed, KILLS))
allmsgs = []
BATCH = 12
COUNT = os.path.join(WORK, "killat.count")


def refill():
    ms = [make_message("f8", size=rng.choice((0, 200, 3000, 20000))) for _ in range(BATCH)]
    put(user, ms)
    allmsgs.extend(ms)


def kenv(n):
    # Killed runs never reach their exit, so ASan's leak check there only
    # costs start-up time; the final complete run keeps it.
    e = killat_env(n, count=COUNT)
    e["ASAN_OPTIONS"] += ":detect_leaks=0"
    return e


def counted_calls():
    try:
        with open(COUNT) as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 0


refill()
# How many state-changing calls does an uninterrupted run of one batch make?
# Kill points are drawn from [1, the most seen + 1]: every prefix of a run.
if os.path.exists(COUNT):
    os.unlink(COUNT)
r = fetch(user, "--maildir", os.path.join(WORK, "md-f8-probe"), "--keep", "--all-messages",
          env_extra=kenv(None))
os.unlink(os.path.join(WORK, user + ".state"))
most = counted_calls()
diag("an uninterrupted run of %d messages makes %d state-changing calls" % (BATCH, most))
kills = completions = effective = rounds = 0
state_seen = [0, 0]
bad = []
if most < 10:
    bad.append("the probe run counted %d calls: is the killat shim loaded? %s" % (most, show(r)))
start = time.monotonic()


def one_kill_round():
    global kills, completions, most, effective, rounds
    rounds += 1
    if os.path.exists(COUNT):
        os.unlink(COUNT)
    n = rng.randint(1, most + 1)
    p = fetch(user, "--maildir", dest, "--quiet", popen=True, env_extra=kenv(n))
    try:
        p.wait(timeout=300)  # a hang guard, not a measurement
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        bad.append("run with kill point %d hung" % n)
        return False
    if p.returncode == -9:
        kills += 1
    elif p.returncode == 0:
        completions += 1
        most = max(most, counted_calls())
    else:
        bad.append("run exit %d (kill point %d): %s" %
                   (p.returncode, n, p.stderr.read().decode(errors="replace")))
    p.stderr.close()
    # The server first, then new/: a message expunged in between was
    # stored before its DELE, so it is found in new/.
    srv = on_server(user)
    got = maildir_files(dest)
    if p.returncode == -9 and (len(got) != state_seen[0] or len(srv) != state_seen[1]):
        effective += 1  # the killed run had stored or deleted something
    state_seen[:] = [len(got), len(srv)]
    have = set(srv) | set(got)
    lost = [m for m in allmsgs if m not in have]
    known = set(allmsgs)
    foreign = [g for g in got if g not in known]
    if lost or foreign:
        bad.append("after kill %d (kill point %d): %d lost, %d partial/unknown files in new/" %
                   (kills, n, len(lost), len(foreign)))
        return False
    if not srv:
        refill()
    return True


# The round cap only stops a harness that makes no progress; with kill
# points drawn from the count of a complete run most rounds are kills.
try:
    while kills < KILLS and rounds < 4 * KILLS and not bad:
        if not one_kill_round():
            break
except Exception as e:  # a broken harness is a failure, not a traceback
    bad.append("harness: %r" % e)
elapsed = time.monotonic() - start
tap(kills >= KILLS and not bad and effective > KILLS // 4,
    "crash: %d SIGKILLs at progress points (%d of them after the run had stored or deleted "
    "mail; %d runs completed; %d rounds) in %.1f s; after each, every message on the server "
    "or in new/ byte-exact, no partial file" % (kills, effective, completions, rounds, elapsed),
    *bad[:5])
r = fetch(user, "--maildir", dest)
got = maildir_files(dest)
missing = [m for m in allmsgs if m not in set(got)]
dups = len(got) - len(set(got))
tap(r.returncode == 0 and not missing and on_server(user) == [] and set(got) <= set(allmsgs),
    "crash: after a final complete run all %d messages are in new/ byte-exact, server empty; "
    "%d duplicates" % (len(allmsgs), dups), show(r), "missing %d" % len(missing))
diag("crash: %d messages, %d kills, %d duplicate deliveries (stored, killed before the state "
     "was saved)" % (len(allmsgs), kills, dups))

# ---- 2,000 messages ---------------------------------------------------------------
if BIG:
    user = "f9"
    reset_mailbox(user)
    dest = os.path.join(WORK, "md-f9")
    msgs = [make_message("f9", size=rng.choice((0, 500, 2000, 6000))) for _ in range(BIG)]
    put(user, msgs)
    t0 = time.monotonic()
    r, j = fetch_json(user, "--maildir", dest, timeout=300)
    el = time.monotonic() - t0
    got = maildir_files(dest)
    tap(r.returncode == 0 and j.get("fetched") == BIG and j.get("deleted") == BIG and
        same_multiset(got, msgs) and on_server(user) == [],
        "%d messages (%.1f MB) fetched and deleted in %.2f s (ASan build), byte-exact, server empty" %
        (BIG, sum(len(m) for m in msgs) / 1e6, el), show(r))

print("1..%d" % n_test)
shutil.rmtree(WORK, ignore_errors=True)
sys.exit(0)
