#!/usr/bin/env python3
"""`mailwire fetch --jobs N` on the event loop (mw_loop_add_fetch) against
the real Dovecot, users g1..g10 (tests/servers/README.md).  TAP.

usage: test_fetch_loop.py MAILWIRE KILLAT_SO [--crash-kills N]

- six accounts at once, STLS: every message byte-exact in its Maildir, the
  servers empty, the state files written; a second run fetches nothing;
- --keep: the mail stays, a second run fetches nothing new;
- --size-limit: the big message stays on the server, the others arrive;
- the trace masks PASS;
- SIGKILL at points drawn from the run's own progress (tests/tools/killat.c),
  as the blocking fetch's crash test does: after every kill each message is
  on the server or in new/, never lost, never partial.
Waits are bounds that only rule out a hang, never measurements."""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fetch_common  # noqa: E402
from fetch_common import (killat_env, maildir_files, make_message, on_server, put,  # noqa: E402
                          reset_mailbox)

MW = sys.argv[1]
fetch_common.KILLAT[0] = os.path.abspath(sys.argv[2])
KILLS = 60
if sys.argv[3:5] and sys.argv[3] == "--crash-kills":
    KILLS = int(sys.argv[4])
N = [0]
FAILED = [0]


def tap(cond, name, *detail):
    N[0] += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", N[0], name))
    if not cond:
        FAILED[0] += 1
        for d in detail:
            for line in str(d).splitlines()[:40]:
                print("# " + line)
    sys.stdout.flush()


ENV = os.environ
if not ENV.get("MW_POP3_PORT") or not ENV.get("MW_MAILDIR_ROOT"):
    print("1..1\nok 1 - fetch on the loop # SKIP servers not running")
    sys.exit(0)
PORT, CA = ENV["MW_POP3_PORT"], ENV["MW_CA_FILE"]
WORK = tempfile.mkdtemp(prefix="mw-fetch-loop-")


def show(r):
    return "rc %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout.decode(errors="replace"),
                                             r.stderr.decode(errors="replace"))


def config(users, extra=""):
    path = os.path.join(WORK, "config")
    with open(path, "w") as f:
        f.write("defaults\nhost localhost\nport %s\ntls starttls\ncafile %s\n%s\n" %
                (PORT, CA, extra))
        for u in users:
            f.write("account %s\nuser %s\npassword pw-%s\ndelivery maildir %s\n\n" %
                    (u, u, u, os.path.join(WORK, "md-" + u)))
    os.chmod(path, 0o600)
    return path


def state_file(account, xdg="xdg-state"):
    return os.path.join(WORK, xdg, "mailwire", "uidl", account)


def run(cfg, *args, env_extra=None, popen=False, xdg="xdg-state"):
    env = dict(ENV)
    env["XDG_STATE_HOME"] = os.path.join(WORK, xdg)
    env.update(env_extra or {})
    cmd = [MW, "fetch", "--config", cfg] + list(args)
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, timeout=300)


def records(r):
    try:
        return {j["account"]: j for j in json.loads(r.stdout.decode())}
    except (ValueError, KeyError, TypeError):
        return {}


# ---- six accounts at once ------------------------------------------------------
users = ["g%d" % i for i in range(1, 7)]
sent = {}
for k, u in enumerate(users):
    reset_mailbox(u)
    sent[u] = [make_message(u, size=s) for s in (0, 700, 30000, 5)[:k % 4 + 1]] + \
        [make_message(u, size=300000)] * (k == 5)
    put(u, sent[u])
cfg = config(users)
r = run(cfg, "--all", "--jobs", "6", "--json")
js = records(r)
tap(r.returncode == 0 and all(js.get(u, {}).get("fetched") == len(sent[u]) for u in users),
    "6 accounts on one loop: every record says all fetched", show(r))
tap(all(sorted(maildir_files(os.path.join(WORK, "md-" + u))) == sorted(sent[u]) for u in users),
    "every message byte-exact in its Maildir (dot lines, a 300 KB message)")
tap(all(on_server(u) == [] for u in users) and
    all(js.get(u, {}).get("deleted") == len(sent[u]) for u in users),
    "every server mailbox empty after QUIT, deletions counted")
tap(all(os.path.exists(state_file(u)) and os.path.getsize(state_file(u)) for u in users),
    "a state file per account")
r = run(cfg, "--all", "--jobs", "6", "--json")
js = records(r)
tap(r.returncode == 0 and all(js.get(u, {}).get("fetched") == 0 for u in users),
    "a second run fetches nothing", show(r))

# ---- keep, and the state decides -----------------------------------------------
u = "g7"
reset_mailbox(u)
kept = [make_message(u, size=s) for s in (10, 2000, 0)]
put(u, kept)
cfg = config([u])
r1 = run(cfg, u, "--jobs", "2", "--keep", "--json")
r2 = run(cfg, u, "--jobs", "2", "--keep", "--json")
tap(r1.returncode == 0 and records(r1).get(u, {}).get("fetched") == 3 and
    sorted(on_server(u)) == sorted(kept) and records(r2).get(u, {}).get("fetched") == 0 and
    sorted(maildir_files(os.path.join(WORK, "md-" + u))) == sorted(kept),
    "--keep: stored once, left on the server, not fetched again", show(r1), show(r2))
# Without --keep the messages the state knows are deleted without a RETR.
trace = os.path.join(WORK, "g7.trace")
r3 = run(cfg, u, "--jobs", "2", "--json", "--trace", trace)
tr = open(trace, errors="replace").read() if os.path.exists(trace) else ""
tap(r3.returncode == 0 and on_server(u) == [] and "RETR" not in tr and tr.count("DELE") >= 3,
    "the next run without --keep deletes them, no RETR (the state knew them)", show(r3), tr[-800:])
# Dovecot offers SCRAM: the loop logs in with it as the blocking fetch does.
tap("pw-g7" not in tr and "AUTH SCRAM-SHA-256 ****" in tr, "the trace masks the login")
tap("looking up localhost" in tr and "localhost is 127.0.0.1" in tr,
    "the host name is looked up on the loop (src/resolve: the hosts file)", tr[:400])

# ---- size limit ---------------------------------------------------------------
u = "g8"
reset_mailbox(u)
small = [make_message(u, size=100), make_message(u, size=50)]
big = [make_message(u, size=40000)]
put(u, small + big)
cfg = config([u])
r = run(cfg, u, "--jobs", "2", "--size-limit", "20000", "--json")
j = records(r).get(u, {})
tap(r.returncode == 0 and j.get("fetched") == 2 and j.get("skipped") == 1 and
    on_server(u) == big and sorted(maildir_files(os.path.join(WORK, "md-" + u))) == sorted(small),
    "--size-limit: the big message skipped and left on the server", show(r))

# ---- SIGKILL at progress points ------------------------------------------------
u = "g9"
reset_mailbox(u)
cfg = config([u])
dest = os.path.join(WORK, "md-" + u)
rng = random.Random(int(ENV.get("MW_FETCH_SEED", "20261207")))
allmsgs = []
COUNT = os.path.join(WORK, "killat.count")


def refill():
    ms = [make_message(u, size=rng.choice((0, 200, 3000, 20000))) for _ in range(8)]
    put(u, ms)
    allmsgs.extend(ms)


def kenv(n):
    e = killat_env(n, count=COUNT)
    e["ASAN_OPTIONS"] += ":detect_leaks=0"
    return e


def counted():
    try:
        return int(open(COUNT).read())
    except (OSError, ValueError):
        return 0


refill()
# The probe run: the same account into a Maildir and state of its own.
with open(cfg) as f:
    text = f.read().replace(dest, dest + "-probe")
pcfg = os.path.join(WORK, "probe-config")
with open(pcfg, "w") as f:
    f.write(text)
os.chmod(pcfg, 0o600)
r = run(pcfg, u, "--jobs", "2", "--keep", env_extra=kenv(None), xdg="xdg-probe")
most = counted()
bad = [] if most >= 10 else ["the probe counted %d calls: is killat loaded? %s" % (most, show(r))]
kills = rounds = 0
while kills < KILLS and rounds < 4 * KILLS and not bad:
    rounds += 1
    if os.path.exists(COUNT):
        os.unlink(COUNT)
    n = rng.randint(1, most + 1)
    p = run(cfg, u, "--jobs", "2", "--quiet", env_extra=kenv(n), popen=True)
    try:
        p.wait(timeout=300)  # a hang guard, not a measurement
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        bad.append("run with kill point %d hung" % n)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode == -9:
        kills += 1
    elif p.returncode == 0:
        most = max(most, counted())
    else:
        bad.append("exit %d at kill point %d: %s" % (p.returncode, n, err))
    srv = on_server(u)
    have = set(srv) | set(maildir_files(dest))
    lost = [m for m in allmsgs if m not in have]
    foreign = [g for g in maildir_files(dest) if g not in set(allmsgs)]
    if lost or foreign:
        bad.append("after kill point %d: %d lost, %d partial or unknown" %
                   (n, len(lost), len(foreign)))
    if not srv:
        refill()
tap(kills >= KILLS and not bad, "crash on the loop: %d SIGKILLs at progress points in %d rounds; "
    "after each, every message on the server or in new/ byte-exact" % (kills, rounds), *bad[:5])
r = run(cfg, u, "--jobs", "2")
got = maildir_files(dest)
tap(r.returncode == 0 and on_server(u) == [] and set(allmsgs) <= set(got) and
    set(got) <= set(allmsgs),
    "after a final run all %d messages are in new/, the server empty (%d duplicates)" %
    (len(allmsgs), len(got) - len(set(got))), show(r))
print("1..%d" % N[0])
sys.exit(1 if FAILED[0] else 0)
