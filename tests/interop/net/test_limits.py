#!/usr/bin/env python3
"""The session limits against the real servers (TAP): a message of several
MiB goes through Postfix and comes back from Dovecot with explicit
--max-time, --speed-limit and --speed-time on every command, over
STARTTLS, STLS and POP3S, and arrives whole.  Limits that end a trickling
server (tests/script/cases/*/limits-*.case) must never end a transfer that
makes progress.  Bounds are generous (a rate floor of 10 KB/s over 120 s
of waiting, 10 minutes in all); nothing is measured.  Users h1, h2, h3 (see
tests/servers/README.md).  Without the servers every case is a named SKIP."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402

ENV = os.environ
# The floor's window (120 s of waiting) is twice the per-read timeout (60 s),
# so no single slow reply of a loaded server can fail it on its own.
LIMITS = ["--max-time", "600", "--speed-limit", "10000", "--speed-time", "120"]


def mailwire():
    return os.path.join(ENV.get("MW_BUILD_DIR", ""), "cli", "mailwire")


def run(args, user, stdin=None, timeout=660):
    e = dict(ENV)
    e["MAILWIRE_PASSWORD"] = "pw-" + user
    e["HOME"] = tempfile.gettempdir()
    e.pop("MAILHOST", None)
    p = subprocess.run([mailwire()] + args, input=stdin, capture_output=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def reset_mailbox(user):
    uid, gid = (int(x) for x in ENV["MW_MAIL_OWNER"].split(":"))
    md = os.path.join(ENV["MW_MAILDIR_ROOT"], user, "Maildir")
    for d in (os.path.dirname(md), md, md + "/new", md + "/cur", md + "/tmp"):
        os.makedirs(d, exist_ok=True)
        os.chown(d, uid, gid)
    for sub in ("new", "cur", "tmp"):
        for f in os.listdir(os.path.join(md, sub)):
            os.unlink(os.path.join(md, sub, f))
    for f in os.listdir(md):
        if f.startswith("dovecot"):
            p = os.path.join(md, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)


def message(user, tag, size):
    line = ("%s limits %s " % (tag, user) * 10)[:75] + "\n"
    body = line * (size // len(line))
    return ("From: %s@test.domain\nTo: %s@test.domain\nSubject: limits %s\n"
            "Message-ID: <limits.%s.%d@test>\n\n%s" % (user, user, tag, tag, os.getpid(), body)
            ).encode()


def fetch_until(d, user, pop3_args, want_body, what):
    """Fetches user's mailbox into a Maildir under d until a message holding
    want_body arrives (Postfix delivers asynchronously; up to 120 s)."""
    md = os.path.join(d, user + "-md")
    state = os.path.join(d, user + "-state")
    digest = hashlib.sha256(want_body).hexdigest()
    for _ in range(240):
        rc, out, err = run(["fetch", "--maildir", md, "--state", state, "--user", user] +
                           pop3_args + LIMITS, user)
        if rc != 0:
            return "%s: fetch exit %d: %s %s" % (what, rc, out.strip()[-300:], err.strip()[-300:])
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            for f in os.listdir(p) if os.path.isdir(p) else []:
                data = open(os.path.join(p, f), "rb").read()
                body = data.split(b"\n\n", 1)[1] if b"\n\n" in data else b""
                if hashlib.sha256(body).hexdigest() == digest:
                    return None
        time.sleep(0.5)
    return "%s: the message did not come back within 120 s" % what


cases = []


def case(name):
    def add(fn):
        cases.append((name, fn))
        return fn
    return add


@case("a 6 MiB message through Postfix (no AUTH, STARTTLS) and back from Dovecot (STLS), "
      "every command under --max-time/--speed-limit/--speed-time: arrives whole")
def starttls_and_stls(d):
    reset_mailbox("h1")
    msg = message("h1", "starttls", 6 << 20)
    rc, out, err = run(["send", "--host", "127.0.0.1", "--port", ENV["MW_SMTP_NOAUTH_PORT"],
                        "--cafile", ENV["MW_CA_FILE"], "-i", "-f", "h1@test.domain",
                        "h1@test.domain"] + LIMITS, "h1", stdin=msg)
    if rc != 0:
        return "send exit %d: %s" % (rc, err.strip()[-300:])
    return fetch_until(d, "h1", ["--host", "127.0.0.1", "--port", ENV["MW_POP3_PORT"],
                                 "--cafile", ENV["MW_CA_FILE"]],
                       msg.split(b"\n\n", 1)[1], "STLS")


@case("a 6 MiB message through Postfix submission (STARTTLS, AUTH as h2) to h3 and back from "
      "Dovecot (POP3S), under the same limits: arrives whole")
def submission_and_pop3s(d):
    reset_mailbox("h3")
    msg = message("h3", "submission", 6 << 20)
    rc, out, err = run(["send", "--host", "127.0.0.1", "--port", ENV["MW_SMTP_PORT"],
                        "--cafile", ENV["MW_CA_FILE"], "--user", "h2", "-i",
                        "-f", "h2@test.domain", "h3@test.domain"] + LIMITS, "h2", stdin=msg)
    if rc != 0:
        return "send exit %d: %s" % (rc, err.strip()[-300:])
    return fetch_until(d, "h3", ["--host", "127.0.0.1", "--port", ENV["MW_POP3S_PORT"],
                                 "--tls", "implicit", "--cafile", ENV["MW_CA_FILE"]],
                       msg.split(b"\n\n", 1)[1], "POP3S")


def main():
    have = bool(ENV.get("MW_POP3_PORT") and ENV.get("MW_MAILDIR_ROOT"))
    with tempfile.TemporaryDirectory() as d:
        return taplib.run_cases(cases, have, lambda fn: fn(d))


if __name__ == "__main__":
    sys.exit(main())
