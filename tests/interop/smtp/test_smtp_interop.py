#!/usr/bin/env python3
"""mailwire's SMTP client against the real servers of tests/servers/:
Postfix submission (STARTTLS + AUTH via Dovecot), SMTPS, and smtp-sink.

Each case prints one TAP line.  Without the servers (MW_SMTP_PORT unset)
every case is reported as skipped, never as passed.  Messages sent are
fetched back from Dovecot over POP3 (STLS) with Python's poplib and compared
with what was sent: the delivered copy must be the sent message plus the
trace fields the servers prepend (Return-Path, X-Original-To, Delivered-To,
Received)."""
import json
import os
import poplib
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402

MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5", "PLAIN", "LOGIN"]
TRACE_FIELDS = ("return-path:", "x-original-to:", "delivered-to:", "received:")

cases = []


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


def mailwire():
    build = os.environ.get("MW_BUILD_DIR", "")
    return os.path.join(build, "cli", "mailwire")


def env_for(user):
    e = dict(os.environ)
    e["MAILWIRE_PASSWORD"] = "pw-" + user
    e.pop("MAILHOST", None)
    e["HOME"] = tempfile.gettempdir()  # no personal ~/.netrc
    return e


def run(args, user=None, stdin=b"", timeout=120):
    e = env_for(user) if user else env_for("nobody")
    p = subprocess.run([mailwire()] + args, input=stdin, capture_output=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def submission(user=None, extra=()):
    a = ["--host", "127.0.0.1", "--port", os.environ["MW_SMTP_PORT"],
         "--cafile", os.environ["MW_CA_FILE"]]
    if user:
        a += ["--user", user]
    return a + list(extra)


def dom(u):
    return "%s@%s" % (u, os.environ.get("MW_MAIL_DOMAIN", "test.domain"))


def pop_fetch_all(user, want, deadline_s=120):
    """Messages of `user` over POP3 with STLS, waiting until `want` are there
    (Postfix delivers asynchronously).  Deletes them afterwards."""
    ctx = ssl.create_default_context(cafile=os.environ["MW_CA_FILE"])
    end = time.time() + deadline_s
    while True:
        p = poplib.POP3("127.0.0.1", int(os.environ["MW_POP3_PORT"]), timeout=20)
        p.stls(ctx)
        p.user(user)
        p.pass_("pw-" + user)
        n = len(p.list()[1])
        if n >= want or time.time() > end:
            msgs = []
            for i in range(1, n + 1):
                lines = p.retr(i)[1]
                msgs.append(b"\r\n".join(lines) + b"\r\n")
                p.dele(i)
            p.quit()
            return msgs
        p.quit()
        time.sleep(0.2)


def strip_trace(delivered):
    """Splits the delivered copy into (trace fields, the rest): the fields
    the servers prepend, with their continuation lines."""
    lines = delivered.split(b"\r\n")
    i = 0
    while i < len(lines) and lines[i].lower().decode("latin-1").startswith(TRACE_FIELDS):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return lines[:i], b"\r\n".join(lines[i:])


def fixed_message(subject, frm, to, body, extra=b""):
    return (b"Date: Sun, 22 Nov 2026 10:00:00 +0000\n"
            b"Message-ID: <" + subject.encode() + b"@mailwire.test>\n"
            b"From: " + frm.encode() + b"\nTo: " + to.encode() + b"\n" + extra +
            b"Subject: " + subject.encode() + b"\n\n" + body)


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def mech_case(i, mech):
    sender, rcpt = "s%d" % (i + 1), "s%d" % (i + 11)

    def fn():
        body = (b"mechanism %s\n.leading dot\n..two dots\nbare LF\n\xc3\xa9t\xc3\xa9 8-bit\n"
                % mech.encode())
        msg = fixed_message("mech-%s" % mech, dom(sender), dom(rcpt), body)
        rc, out, err = run(["send"] + submission(sender, ["--auth", mech, "--json", "-i", "-f",
                                                          dom(sender), dom(rcpt)]),
                           user=sender, stdin=msg)
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip())
        got = pop_fetch_all(rcpt, 1)
        if len(got) != 1:
            return "expected 1 message in %s's mailbox, found %d" % (rcpt, len(got))
        trace, rest = strip_trace(got[0])
        if rest != crlf(msg):
            return "delivered copy differs from the sent message:\n%r\n%r" % (rest[:300],
                                                                             crlf(msg)[:300])
        if not any(t.lower().startswith(b"received:") for t in trace):
            return "no Received field in the delivered copy"
        if '"sent":true' not in out:
            return "unexpected output: " + out
        return None
    return fn


for _i, _m in enumerate(MECHS):
    case("AUTH %s over STARTTLS; the message fetched back over POP3 is the sent one plus "
         "trace fields" % _m)(mech_case(_i, _m))


@case("-t: Bcc recipient gets the message, Bcc field absent from every delivered copy")
def bcc_absent():
    body = b"secret copy\n"
    msg = fixed_message("bcc", dom("s7"), dom("s17"), body, extra=b"Bcc: " +
                        dom("s18").encode() + b"\n")
    rc, out, err = run(["send"] + submission("s7", ["-i", "-t"]), user="s7", stdin=msg)
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip())
    for u in ("s17", "s18"):
        got = pop_fetch_all(u, 1)
        if len(got) != 1:
            return "%s: expected 1 message, found %d" % (u, len(got))
        if b"\nbcc:" in got[0].lower() or got[0].lower().startswith(b"bcc:"):
            return "%s: Bcc field present in the delivered copy" % u
        _, rest = strip_trace(got[0])
        want = crlf(msg.replace(b"Bcc: " + dom("s18").encode() + b"\n", b""))
        if rest != want:
            return "%s: delivered copy is not the message without Bcc: %r" % (u, rest[:200])
    return None


@case("a recipient Postfix rejects is reported with its code (exit 67), the others get it")
def rejected_rcpt():
    msg = fixed_message("rej", dom("s9"), dom("s19"), b"partly\n")
    rc, out, err = run(["send"] + submission("s9", ["-i", "-f", dom("s9"), dom("s19"),
                                                    dom("nosuchuser")]), user="s9", stdin=msg)
    if rc != 67:
        return "expected exit 67, got %d: %s" % (rc, err.strip())
    if "nosuchuser@" not in err or " 550 5.1.1 " not in err:
        return "stderr does not report the rejected recipient with 550 5.1.1: " + err
    got = pop_fetch_all("s19", 1)
    if len(got) != 1:
        return "the accepted recipient got %d messages" % len(got)
    return None


@case("CHUNKING: Postfix offers it and the message goes in BDAT (json + trace say so)")
def chunking():
    with tempfile.TemporaryDirectory() as d:
        tr = os.path.join(d, "trace")
        msg = fixed_message("bdat", dom("s10"), dom("s20"), b"chunked\n.dot\n" * 5000)
        rc, out, err = run(["send"] + submission("s10", ["--json", "--trace", tr, "-i", "-f",
                                                         dom("s10"), dom("s20")]),
                           user="s10", stdin=msg)
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip())
        j = json.loads(out)
        if not j.get("chunking"):
            return "chunking not used: " + out
        t = open(tr, encoding="utf-8", errors="replace").read()
        if "BDAT" not in t or " LAST" not in t or "\nC: DATA" in t:
            return "trace does not show BDAT ... LAST"
    got = pop_fetch_all("s20", 1)
    if len(got) != 1 or strip_trace(got[0])[1] != crlf(msg):
        return "delivered copy differs from the sent message"
    return None


@case("wrong password: exit 77, nothing sent")
def wrong_password():
    e = env_for("s5")
    e["MAILWIRE_PASSWORD"] = "wrong"
    p = subprocess.run([mailwire(), "send"] + submission("s5", ["-i", "-f", dom("s5"),
                                                                dom("s15")]),
                       input=b"Subject: x\n\nx\n", capture_output=True, env=e, timeout=60)
    if p.returncode != 77:
        return "expected 77, got %d: %s" % (p.returncode, p.stderr.decode())
    return None


@case("SMTPS (implicit TLS) on MW_SMTPS_PORT: capa over TLS shows AUTH")
def smtps():
    rc, out, err = run(["smtp", "--host", "127.0.0.1", "--port", os.environ["MW_SMTPS_PORT"],
                        "--tls", "implicit", "--cafile", os.environ["MW_CA_FILE"], "capa"])
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip())
    if "# over TLS" not in out or "\nAUTH " not in out:
        return "unexpected capa output: " + out
    return None


@case("1,000 messages over one connection to smtp-sink (one EHLO, 1,000 MAIL)")
def thousand():
    with tempfile.TemporaryDirectory() as d:
        files = []
        body = (b"x" * 76 + b"\n") * 130  # ~10 KB
        for i in range(1000):
            f = os.path.join(d, "m%04d" % i)
            with open(f, "wb") as fh:
                fh.write(b"Subject: bulk %d\n\n" % i + body)
            files.append(f)
        tr = os.path.join(d, "trace")
        t0 = time.time()
        rc, out, err = run(["smtp", "--host", "127.0.0.1", "--port", os.environ["MW_SINK_PORT"],
                            "--tls", "none", "--trace", tr, "send", "--from", "a@x.test",
                            "--to", "b@y.test"] + files, timeout=300)
        dt = time.time() - t0
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip()[:500])
        t = open(tr, encoding="utf-8", errors="replace").read()
        n_mail = t.count("\nC: MAIL FROM:")
        n_ehlo = t.count("C: EHLO ")
        n_conn = t.count("connecting to")
        if n_mail != 1000 or n_ehlo != 1 or n_conn != 1:
            return "MAIL %d, EHLO %d, connections %d" % (n_mail, n_ehlo, n_conn)
        print("# 1000 x 10 KB to smtp-sink over one connection: %.2f s" % dt)
    return None


@case("send streams stdin: 100 MB through a pipe to smtp-sink with a bounded peak RSS")
def send_streams():
    # Before streaming, `send` held the whole message: its peak RSS was
    # over 100 MB here.  The bound leaves room for the sanitizers' own.
    p = subprocess.Popen([mailwire(), "send", "--host", "127.0.0.1", "--port",
                          os.environ["MW_SINK_PORT"], "--tls", "none", "-f", "a@x.test",
                          "b@y.test"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_for("nobody"))
    chunk = (b"y" * 76 + b"\n") * 13617  # ~1 MB
    try:
        p.stdin.write(b"Subject: big\n\n")
        for _ in range(100):
            p.stdin.write(chunk)
        p.stdin.close()
    except BrokenPipeError:
        pass
    err = p.stderr.read().decode("utf-8", "replace")
    p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        return "exit %d: %s" % (p.returncode, err.strip()[:500])
    rss_mb = ru.ru_maxrss / 1024
    print("# 100 MB message from a pipe: peak RSS %.1f MB" % rss_mb)
    if rss_mb > 48:
        return "peak RSS %.1f MB for a 100 MB message: not streamed" % rss_mb
    return None


@case("smtp send on a terminal: a progress line on stderr, redrawn, ending with every message counted")
def progress_on_a_tty():
    import pty
    import select
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(300):
            f = os.path.join(d, "m%03d" % i)
            with open(f, "wb") as fh:
                fh.write(b"Subject: p %d\n\n" % i + (b"x" * 70 + b"\n") * 30)
            files.append(f)
        master, slave = pty.openpty()
        p = subprocess.Popen([mailwire(), "smtp", "--host", "127.0.0.1", "--port",
                              os.environ["MW_SINK_PORT"], "--tls", "none", "send", "--from",
                              "a@x.test", "--to", "b@y.test"] + files,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                             env=env_for("nobody"))
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 60)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        rc = p.wait(timeout=60)
        text = out.decode("utf-8", "replace")
        if rc != 0:
            return "exit %d: %s" % (rc, text[-300:])
        if "\r\x1b[Kmailwire smtp: 300/300 messages, 300 sent" not in text:
            return "no final progress line in: %r" % text[-300:]
        if not text.endswith("\n"):
            return "the progress line is not ended: %r" % text[-100:]
    # Not a terminal (the other cases): no progress line at all.
    rc, _, err = run(["smtp", "--host", "127.0.0.1", "--port", os.environ["MW_SINK_PORT"],
                      "--tls", "none", "send", "--from", "a@x.test", "--to", "b@y.test"] +
                     files[:0] + [os.devnull, os.devnull])
    if "messages," in err:
        return "progress printed to a non-terminal: %r" % err
    return None


def main():
    return taplib.run_cases(cases, bool(os.environ.get("MW_SMTP_PORT")))


if __name__ == "__main__":
    sys.exit(main())
