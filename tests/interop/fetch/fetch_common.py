"""Helpers shared by the fetch interop tests (test_fetch.py, the blocking
fetch; test_fetch_loop.py, the fetch on the event loop): the test Dovecot's
Maildirs (tests/servers/README.md), messages that need dot-stuffing and
mboxrd quoting, and tests/tools/killat.c's environment."""
import os
import shutil
import signal
import time

ENV = os.environ
ROOT = ENV.get("MW_MAILDIR_ROOT", "")
UID, GID = (int(x) for x in ENV.get("MW_MAIL_OWNER", "65534:65534").split(":"))
SEQ = [0]
KILLAT = [None]  # the shim's path, set by the test


def server_dir(user):
    return os.path.join(ROOT, user, "Maildir")


def reset_mailbox(user):
    base = os.path.join(ROOT, user)
    md = server_dir(user)
    for d in (base, md, md + "/new", md + "/cur", md + "/tmp"):
        os.makedirs(d, exist_ok=True)
        os.chown(d, UID, GID)
    for sub in ("new", "cur", "tmp"):
        for f in os.listdir(os.path.join(md, sub)):
            os.unlink(os.path.join(md, sub, f))
            CACHE.pop(os.path.join(md, sub, f), None)
    for f in os.listdir(md):
        if f.startswith("dovecot"):
            p = os.path.join(md, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)


def make_message(tag, size=0, subject=None):
    """An LF message; unique by its Message-ID, with lines that need
    dot-stuffing and a 'From ' line that mboxrd must quote."""
    SEQ[0] += 1
    subject = subject or "test %s %d" % (tag, SEQ[0])
    body = ".leading dot\n..two dots\nFrom the start of a line\n>From quoted\n.\nx\n"
    if size:
        line = ("%s-%d " % (tag, SEQ[0]) * 20)[:75] + "\n"
        body += line * max(1, size // len(line))
    return (
        "From: sender%d@test.domain\nTo: %s@test.domain\nSubject: %s\n"
        "Message-ID: <%s.%d.%d@test>\n\n%s" % (SEQ[0], tag, subject, tag, SEQ[0], os.getpid(), body)
    ).encode()


def put(user, msgs):
    md = server_dir(user)
    for m in msgs:
        SEQ[0] += 1
        w = len(m) + m.count(b"\n")
        name = "%d.M%dP%d.mwtest,S=%d,W=%d:2," % (int(time.time()), SEQ[0], os.getpid(), len(m), w)
        p = os.path.join(md, "cur", name)
        with open(p, "wb") as f:
            f.write(m)
        os.chown(p, UID, GID)


# Maildir files never change once in new/ or cur/ (a rename may add flags),
# so their contents are cached by path: the crash loop reads each file once.
CACHE = {}


def read_cached(p):
    if p not in CACHE:
        with open(p, "rb") as fh:
            CACHE[p] = fh.read()
    return CACHE[p]


def on_server(user):
    md = server_dir(user)
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        for f in os.listdir(d):
            try:
                out.append(read_cached(os.path.join(d, f)))
            except FileNotFoundError:
                pass  # expunged while we looked: it was stored first
    return out


def maildir_files(path):
    out = []
    d = os.path.join(path, "new")
    if os.path.isdir(d):
        for f in sorted(os.listdir(d)):
            out.append(read_cached(os.path.join(d, f)))
    return out


def killat_env(n, sig=signal.SIGKILL, count=None):
    """Environment that makes tests/tools/killat.c signal the run just before
    its n-th state-changing call (n=None: never) and write its count."""
    asan = ENV.get("ASAN_OPTIONS", "")
    e = {"LD_PRELOAD": KILLAT[0], "MW_KILLAT_SIG": str(int(sig)),
         "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    if n is not None:
        e["MW_KILLAT"] = str(n)
    if count:
        e["MW_KILLAT_COUNT"] = count
    return e


