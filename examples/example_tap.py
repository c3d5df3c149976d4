# Helpers for the run_*.py scripts of the example programs: TAP output,
# the test servers' env (tests/servers/README.md) and their Maildirs.
import os
import sys
import time

N = [0]
FAILED = [0]


def ok(cond, name, detail=""):
    N[0] += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", N[0], name))
    if not cond:
        FAILED[0] += 1
        for line in str(detail).splitlines():
            print("# " + line)
    sys.stdout.flush()
    return cond


def comment(text):
    for line in str(text).splitlines():
        print("# " + line)


def servers_or_skip(names):
    """Returns the env; without the servers every test is a TAP SKIP."""
    if all(os.environ.get(k) for k in ("MW_POP3_PORT", "MW_SMTP_PORT", "MW_CA_FILE",
                                       "MW_MAILDIR_ROOT")):
        return os.environ
    for i, name in enumerate(names, 1):
        print("ok %d - %s # SKIP servers not running" % (i, name))
    sys.exit(0)


def maildir(user):
    return os.path.join(os.environ["MW_MAILDIR_ROOT"], user, "Maildir")


def files(user):
    md = maildir(user)
    return sorted(os.path.join(md, sub, f) for sub in ("new", "cur")
                  for f in os.listdir(os.path.join(md, sub)))


def empty(user):
    for p in files(user):
        os.unlink(p)


def put(user, msgs):
    """Writes messages into user's Maildir as the delivery agent would."""
    owner = os.environ.get("MW_MAIL_OWNER", "65534:65534").split(":")
    for i, m in enumerate(msgs):
        # S= the file's size, W= its size with CRLF line ends, as Dovecot's
        # own delivery names them: POP3 sizes (LIST, "+OK n octets") are W.
        virt = len(m) + m.count(b"\n") - m.count(b"\r\n")
        name = "%d.M%dP%d.mwexample,S=%d,W=%d:2," % (int(time.time()), i, os.getpid(), len(m), virt)
        p = os.path.join(maildir(user), "cur", name)
        with open(p, "wb") as f:
            f.write(m)
        os.chown(p, int(owner[0]), int(owner[1]))


def wait_for(user, count, seconds=120):
    """Polls user's Maildir until it holds count messages (Postfix delivers
    asynchronously); a generous bound that only rules out a hang."""
    end = time.monotonic() + seconds
    while len(files(user)) < count and time.monotonic() < end:
        time.sleep(0.1)
    return files(user)


def read(p):
    with open(p, "rb") as f:
        return f.read()
