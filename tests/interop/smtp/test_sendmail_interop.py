#!/usr/bin/env python3
"""`mailwire send` as /usr/sbin/sendmail against the real Postfix of
tests/servers/: the exact call lines of cron, mutt, git send-email and
PHP's mail(), every flag Postfix's sendmail(1) takes, the default sender
and account; each message is fetched back from Dovecot and compared: the
delivered copy is the sent message plus the servers' trace fields, plus
only the header fields that were missing (Date, Message-ID, From), never a
Sender.  Users q1..q10 (tests/servers/README.md)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402
from test_smtp_interop import (crlf, dom, env_for, fixed_message, mailwire,  # noqa: E402
                               pop_fetch_all, strip_trace, submission)

cases = []


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


def send(args, user, stdin, env=None):
    e = env or env_for(user)
    p = subprocess.run([mailwire(), "send"] + args, input=stdin, capture_output=True, env=e,
                       timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def one_back(user):
    got = pop_fetch_all(user, 1)
    if len(got) != 1:
        return None, "%s: expected 1 message, found %d" % (user, len(got))
    trace, rest = strip_trace(got[0])
    return (trace, rest), None


def identical(user, msg):
    got, why = one_back(user)
    if why:
        return why
    if got[1] != crlf(msg):
        return "delivered copy differs from the sent message:\n%r\n%r" % (got[1][:400],
                                                                         crlf(msg)[:400])
    return None


def call_line(name, sender, rcpt, argv, body=b"line one\n.\nafter a lone dot (kept with -i)\n"):
    def fn():
        msg = fixed_message("call-" + name.replace(" ", "-"), dom(sender), dom(rcpt), body)
        args = submission(sender) + [a.replace("RCPT", dom(rcpt)) for a in argv]
        rc, out, err = send(args, sender, msg)
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip())
        return identical(rcpt, msg)
    return fn


case("Debian cron: sendmail -FCronDaemon -i -B8BITMIME -oem USER delivers it unchanged")(
    call_line("cron", "q1", "q2", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "RCPT"],
              body=b"/etc/cron.daily: caf\xc3\xa9 8-bit output\n.\n"))
case("mutt: sendmail -oem -oi -- RCPT delivers it unchanged")(
    call_line("mutt", "q1", "q3", ["-oem", "-oi", "--", "RCPT"]))
case("git send-email: sendmail -i RCPT delivers it unchanged")(
    call_line("git", "q1", "q4", ["-i", "RCPT"]))


@case("PHP mail(): sendmail -t -i; only the missing Date and Message-ID are added")
def php_mail():
    msg = (b"To: " + dom("q5").encode() + b"\nSubject: php mail()\nFrom: " +
           dom("q1").encode() + b"\nX-PHP-Originating-Script: 0:x.php\n\n.\nbody\n")
    rc, out, err = send(submission("q1") + ["-t", "-i"], "q1", msg)
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip())
    got, why = one_back("q5")
    if why:
        return why
    head, _, body = got[1].partition(b"\r\n\r\n")
    fields = head.split(b"\r\n")
    orig = crlf(msg).partition(b"\r\n\r\n")[0].split(b"\r\n")
    if fields[:len(orig)] != orig:
        return "the message's own fields changed: %r" % fields
    added = sorted(f.split(b":")[0].lower() for f in fields[len(orig):])
    if added != [b"date", b"message-id"]:
        return "added fields %r, wanted date and message-id" % added
    if body != b".\r\nbody\r\n":
        return "body changed: %r" % body
    return None


@case("-f other than From: no Sender field is added (byte-identical)")
def no_sender():
    msg = fixed_message("no-sender", dom("q1"), dom("q6"), b"bounces go elsewhere\n")
    rc, out, err = send(submission("q1") + ["-i", "-f", dom("q1").replace("q1@", "q1+verp@"),
                                            dom("q6")], "q1", msg)
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip())
    got, why = one_back("q6")
    if why:
        return why
    if b"\r\nsender:" in got[1].lower():
        return "a Sender field was added"
    if got[1] != crlf(msg):
        return "delivered copy differs from the sent message"
    if not any(b"q1+verp@" in t for t in got[0]):
        return "the envelope sender (Return-Path) is not the -f address: %r" % got[0]
    return None


@case("every other Postfix sendmail(1) flag is taken: -G -U -n -m -h -L -X -o... -r -N -R -V -B7BIT -v")
def flag_soup():
    msg = fixed_message("flags", dom("q1"), dom("q7"), b"flags\n")
    argv = ["-G", "-U", "-n", "-m", "-h", "5", "-L", "label", "-X", "/dev/null", "-odi", "-odb",
            "-oee", "-oem", "-o7", "-o8", "-oAx", "-bm", "-oi", "-r", dom("q1"), "-N", "never",
            "-R", "hdrs", "-V", "envid-1", "-B7BIT", "-v", "-Ui", dom("q7")]
    rc, out, err = send(submission("q1") + argv, "q1", msg)
    if rc != 0:
        return "exit %d: %s" % (rc, err.strip())
    if not re.search(r"sent to 1 of 1 recipient via 127\.0\.0\.1 port \d+: 250 ", err):
        return "-v printed no delivery line: %r" % err
    return identical("q7", msg)


def accounts(d, text):
    os.makedirs(os.path.join(d, "mailwire"), exist_ok=True)
    p = os.path.join(d, "mailwire", "config")
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


@case("no From and no -f: the sender is the account's from, via the account called default")
def default_sender():
    with tempfile.TemporaryDirectory() as d:
        accounts(d, "account other\n  host 127.0.0.1\n  port 1\n  from nobody@else.test\n\n"
                    "account default\n  host 127.0.0.1\n  port %s\n  cafile %s\n  user q8\n"
                    "  password pw-q8\n  from %s\n" % (os.environ["MW_SMTP_PORT"],
                                                         os.environ["MW_CA_FILE"], dom("q8")))
        e = env_for("q8")
        e.pop("MAILWIRE_PASSWORD")
        e["XDG_CONFIG_HOME"] = d
        msg = b"To: " + dom("q9").encode() + b"\nSubject: no from\n\nwho sent me?\n"
        rc, out, err = send(["-i", dom("q9")], "q8", msg, env=e)
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip())
    got, why = one_back("q9")
    if why:
        return why
    if not any(t.lower().startswith(b"return-path: <" + dom("q8").encode() + b">")
               for t in got[0]):
        return "envelope sender is not the account's from: %r" % got[0]
    if b"\r\nFrom: <" + dom("q8").encode() + b">\r\n" not in b"\r\n" + got[1]:
        return "no From field with the account's from added: %r" % got[1][:300]
    return None


@case("-bi / -I (newaliases) do nothing and exit 0; -bd (a daemon) is refused with exit 64")
def modes():
    rc, _, err = send(["-bi"], "q1", b"")
    rc2, _, err2 = send(["-I"], "q1", b"")
    rc3, _, err3 = send(["-bd"], "q1", b"")
    if rc or rc2:
        return "-bi/-I exit %d/%d: %s %s" % (rc, rc2, err, err2)
    if rc3 != 64 or "-bd is not supported" not in err3:
        return "-bd: exit %d: %s" % (rc3, err3)
    return None


def swaks(d, argv_tail, cfg_user, data):
    """swaks --pipe 'mailwire send -bs -C CFG': swaks, an SMTP client the
    project did not write, drives the dialogue."""
    cfg = accounts(d, "account default\n  host 127.0.0.1\n  port %s\n  cafile %s\n  user %s\n"
                      "  password pw-%s\n" % (os.environ["MW_SMTP_PORT"],
                                               os.environ["MW_CA_FILE"], cfg_user, cfg_user))
    f = os.path.join(d, "msg")
    with open(f, "wb") as fh:
        fh.write(data[:-2])  # swaks ends the data with CRLF "." itself
    e = env_for(cfg_user)
    e.pop("MAILWIRE_PASSWORD")
    p = subprocess.run(["swaks", "--pipe", "%s send -bs -C %s" % (mailwire(), cfg),
                        "--data", f] + argv_tail, capture_output=True, env=e, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


@case("-bs driven by swaks --pipe (pipelining): relayed to Postfix with STARTTLS and AUTH, "
      "fetched back byte-identical")
def bs_swaks():
    if subprocess.run(["sh", "-c", "command -v swaks"], capture_output=True).returncode:
        return "swaks is not installed (scripts/deps.sh build installs it)"
    msg = crlf(fixed_message("bs-swaks", dom("q10"), dom("q10"),
                             b"via swaks\n.leading dot\n..two dots\ncaf\xc3\xa9\n.\nend\n"))
    with tempfile.TemporaryDirectory() as d:
        rc, out = swaks(d, ["--pipeline", "--from", dom("q10"), "--to", dom("q10")], "q10", msg)
    if rc != 0 or "250 2.0.0 Ok: relayed to 127.0.0.1" not in out:
        return "swaks exit %d:\n%s" % (rc, out[-1500:])
    return identical("q10", msg)


@case("-bs: a recipient Postfix refuses fails the whole message with its 550, naming it; "
      "nothing delivered")
def bs_refused():
    if subprocess.run(["sh", "-c", "command -v swaks"], capture_output=True).returncode:
        return "swaks is not installed (scripts/deps.sh build installs it)"
    msg = crlf(fixed_message("bs-refused", dom("q10"), dom("q10"), b"all or nothing\n"))
    with tempfile.TemporaryDirectory() as d:
        rc, out = swaks(d, ["--from", dom("q10"), "--to", dom("q10") + "," + dom("nosuchuser")],
                        "q10", msg)
    if not re.search(r"<\*\* +550 5\.1\.1 <nosuchuser@[^>]+>: .*nothing was sent", out):
        return "no 550 naming the refused recipient after DATA:\n%s" % out[-1500:]
    got = pop_fetch_all("q10", 0, deadline_s=3)
    if got:
        return "%d message(s) delivered to q10 though the relay failed" % len(got)
    return None


BINARY_BODY = bytes(range(256)) + b"\r\n.\r\nbare\rCR bare\nLF\x00" * 3


def binary_message(tag, frm, to):
    return (b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + tag.encode() +
            b"@mailwire.test>\r\nFrom: " + dom(frm).encode() + b"\r\nTo: " + dom(to).encode() +
            b"\r\nSubject: " + tag.encode() + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY_BODY)


@case("BINARYMIME: Postfix does not offer it: a binary body gets a clear refusal (exit 69), "
      "nothing delivered")
def binary_refused():
    msg = binary_message("bin-refused", "q1", "q4")
    rc, out, err = send(submission("q1") + ["-i", "-BBINARYMIME", dom("q4")], "q1", msg)
    if rc != 69 or "does not offer BINARYMIME (RFC 3030)" not in err:
        return "want exit 69 and the refusal, got %d: %s" % (rc, err)
    got = pop_fetch_all("q4", 0, deadline_s=3)
    if got:
        return "%d message(s) delivered" % len(got)
    return None


@case("BINARYMIME --downgrade to Postfix: delivered as base64 7-bit; decoded, the body is the "
      "binary one, octet for octet")
def binary_downgrade():
    import base64
    msg = binary_message("bin-down", "q1", "q4")
    rc, out, err = send(submission("q1") + ["-i", "-BBINARYMIME", "--downgrade", "-v",
                                            dom("q4")], "q1", msg)
    if rc != 0 or "re-encoded as 7-bit" not in err:
        return "exit %d: %s" % (rc, err)
    got, why = one_back("q4")
    if why:
        return why
    head, _, body = got[1].partition(b"\r\n\r\n")
    if b"\r\nContent-Transfer-Encoding: base64" not in head or b": binary" in head:
        return "header not downgraded: %r" % head
    if any(c > 127 for c in got[1]) or max(len(x) for x in body.split(b"\r\n")) > 76:
        return "the delivered copy is not 7-bit base64"
    if base64.b64decode(body) != BINARY_BODY:
        return "decoded body differs from the binary body"
    return None


def main():
    return taplib.run_cases(cases, bool(os.environ.get("MW_SMTP_PORT")))


if __name__ == "__main__":
    sys.exit(main())
