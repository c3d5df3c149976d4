#!/usr/bin/env python3
"""Smoke test of the real test servers (tests/servers/start.sh), TAP output.

Checks that what the other interop tests rely on is there, with Python's
own poplib/smtplib/ssl as the client (so a failure here points at the
servers, not at mailwire):

  POP3 greeting and CAPA (STLS, USER, UIDL, SASL) on MW_POP3_PORT, STLS works,
  POP3S verifies against MW_CA_FILE (and not against the system store),
  USER/PASS as p1, wrong password refused, submission EHLO shows STARTTLS and
  no AUTH before TLS, AUTH (and the extensions mailwire uses) after it,
  SMTPS, a mail sent as s1 to s2@test.domain lands in s2's Maildir and is
  RETR'd over POP3 as s2, nosuchuser@test.domain refused with 550 at RCPT,
  submission refuses to relay without AUTH, the no-auth port takes mail for
  test.domain, smtp-sink answers.

Without MW_POP3_PORT in the environment the servers are not running: one
skipped case, never a silent pass.
"""
import base64
import hmac
import os
import poplib
import smtplib
import socket
import ssl
import sys
import time
import uuid

TIMEOUT = 10
HOST = "127.0.0.1"


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            if diag:
                for line in str(diag).splitlines():
                    print("# " + line)
        sys.stdout.flush()
        return cond

    def run(self, name, fn):
        """Run fn(); a case fails if fn raises or returns a false value."""
        try:
            res = fn()
        except Exception as e:  # any failure is a test failure, named
            return self.ok(False, name, "%s: %s" % (type(e).__name__, e))
        if isinstance(res, tuple):
            return self.ok(res[0], name, res[1])
        return self.ok(bool(res), name)


def env(name):
    v = os.environ.get(name)
    if not v:
        raise KeyError("%s not set" % name)
    return v


def ctx():
    c = ssl.create_default_context(cafile=env("MW_CA_FILE"))
    return c


def pop3_capa(p):
    return {k.upper(): v for k, v in p.capa().items()}


def smtp_ehlo_features(s):
    code, _ = s.ehlo("smoke.test")
    if code != 250:
        raise RuntimeError("EHLO answered %d" % code)
    return {k.upper(): v for k, v in s.esmtp_features.items()}


def main():
    t = Tap()
    if os.environ.get("MW_SERVERS_FAILED") == "1":
        # scripts/test.sh tried to start them and failed: that is a failure.
        print("1..1")
        print("not ok 1 - servers # start.sh failed (see the test run's log)")
        return 1
    if not os.environ.get("MW_POP3_PORT"):
        print("1..1")
        print("ok 1 - servers # SKIP servers not running")
        return 0

    pop3_port = int(env("MW_POP3_PORT"))
    pop3s_port = int(env("MW_POP3S_PORT"))
    smtp_port = int(env("MW_SMTP_PORT"))
    smtps_port = int(env("MW_SMTPS_PORT"))
    noauth_port = int(env("MW_SMTP_NOAUTH_PORT"))
    sink_port = int(env("MW_SINK_PORT"))
    domain = env("MW_MAIL_DOMAIN")
    maildirs = env("MW_MAILDIR_ROOT")
    cadir = env("MW_CERT_DIR")

    def env_complete():
        keys = ["MW_SRV_DIR", "MW_CA_FILE", "MW_CERT_DIR", "MW_MAIL_OWNER"]
        missing = [k for k in keys if not os.environ.get(k)]
        files = ["ca.pem"] + ["%s.%s" % (n, e)
                              for n in ("good", "expired", "wronghost", "selfsigned", "client")
                              for e in ("pem", "key")]
        missing += [f for f in files if not os.path.isfile(os.path.join(cadir, f))]
        for u in ("p1", "s20", "f20", "d5"):
            if not os.path.isdir(os.path.join(maildirs, u, "Maildir", "new")):
                missing.append("Maildir of " + u)
        return (not missing, "missing: %s" % ", ".join(missing))
    t.run("env file keys, certificates and Maildirs present", env_complete)

    def pop3_greeting_capa():
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            welcome = p.getwelcome()
            caps = pop3_capa(p)
        finally:
            p.quit()
        need = ["STLS", "USER", "UIDL", "TOP", "PIPELINING", "SASL", "RESP-CODES"]
        missing = [c for c in need if c not in caps]
        mechs = [m.upper() for m in caps.get("SASL", [])]
        missing += ["SASL " + m for m in ("PLAIN", "CRAM-MD5", "SCRAM-SHA-256")
                    if m not in mechs]
        # APOP needs a <timestamp> in the greeting (RFC 1939 section 7).
        if b"<" not in welcome:
            missing.append("APOP timestamp in greeting")
        return (welcome.startswith(b"+OK") and not missing,
                "greeting %r, missing %s, CAPA %r" % (welcome, missing, caps))
    t.run("POP3 greeting and CAPA with STLS, SASL mechanisms, APOP timestamp",
          pop3_greeting_capa)

    def pop3_stls():
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            p.stls(context=ctx())
            caps = pop3_capa(p)
            p.user("p1")
            p.pass_("pw-p1")
            stat = p.stat()
        finally:
            p.quit()
        # RFC 2595 section 4: STLS is not offered again once TLS is on.
        return ("STLS" not in caps and len(stat) == 2,
                "CAPA after STLS %r" % caps)
    t.run("POP3 STLS verifies with MW_CA_FILE, login over TLS", pop3_stls)

    def pop3s_verify():
        p = poplib.POP3_SSL(HOST, pop3s_port, timeout=TIMEOUT, context=ctx())
        try:
            cert = p.sock.getpeercert()
            welcome = p.getwelcome()
        finally:
            p.quit()
        return (welcome.startswith(b"+OK") and cert is not None, repr(welcome))
    t.run("POP3S verifies against MW_CA_FILE for 127.0.0.1/localhost",
          pop3s_verify)

    def pop3s_untrusted():
        # Against the system store the test CA is unknown: must fail.
        c = ssl.create_default_context()
        try:
            p = poplib.POP3_SSL(HOST, pop3s_port, timeout=TIMEOUT, context=c)
        except ssl.SSLCertVerificationError:
            return True
        p.quit()
        return (False, "handshake succeeded without the test CA")
    t.run("POP3S certificate is not trusted without MW_CA_FILE", pop3s_untrusted)

    def pop3_user_pass():
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            p.user("p1")
            r = p.pass_("pw-p1")
            stat = p.stat()
        finally:
            p.quit()
        return (r.startswith(b"+OK") and len(stat) == 2, repr(r))
    t.run("POP3 USER/PASS in clear as p1", pop3_user_pass)

    def pop3_bad_pass():
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            p.user("p1")
            try:
                p.pass_("wrong")
            except poplib.error_proto as e:
                return (b"-ERR" in e.args[0], repr(e.args))
            return (False, "wrong password accepted")
        finally:
            p.close()
    t.run("POP3 wrong password refused with -ERR", pop3_bad_pass)

    def pop3_apop():
        # APOP works only with {PLAIN} password storage (RFC 1939 section 7).
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            r = p.apop("p2", "pw-p2")
        finally:
            p.quit()
        return (r.startswith(b"+OK"), repr(r))
    t.run("POP3 APOP as p2", pop3_apop)

    def pop3_auth_cram():
        # RFC 5034 AUTH with a challenge: CRAM-MD5 (RFC 2195), by hand.
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            r = p._shortcmd("AUTH CRAM-MD5")
            if not r.startswith(b"+ "):
                return (False, "AUTH CRAM-MD5 answered %r" % r)
            chal = base64.b64decode(r[2:])
            digest = hmac.new(b"pw-p3", chal, "md5").hexdigest()
            r = p._shortcmd(base64.b64encode(("p3 " + digest).encode()).decode())
        finally:
            p.quit()
        return (r.startswith(b"+OK"), repr(r))
    t.run("POP3 AUTH CRAM-MD5 as p3", pop3_auth_cram)

    def smtp_cram():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            s.starttls(context=ctx())
            s.ehlo("smoke.test")
            s.user, s.password = "s3", "pw-s3"  # what auth_cram_md5 uses
            code, text = s.auth("CRAM-MD5", s.auth_cram_md5)
        finally:
            s.quit()
        return (code == 235, "%d %r" % (code, text))

    def smtp_before_after_tls():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            before = smtp_ehlo_features(s)
            s.starttls(context=ctx())
            after = smtp_ehlo_features(s)
        finally:
            s.quit()
        problems = []
        if "STARTTLS" not in before:
            problems.append("no STARTTLS before TLS")
        if "AUTH" in before:
            problems.append("AUTH offered before TLS")
        if "AUTH" not in after:
            problems.append("no AUTH after TLS")
        else:
            mechs = after["AUTH"].upper().split()
            problems += ["no AUTH " + m for m in ("PLAIN", "LOGIN") if m not in mechs]
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "DSN", "SMTPUTF8",
                    "ENHANCEDSTATUSCODES", "CHUNKING"):
            if ext not in after:
                problems.append("no " + ext)
        return (not problems, "%s; before %r; after %r" % (problems, before, after))
    t.run("submission: STARTTLS offered, AUTH only after TLS, extensions",
          smtp_before_after_tls)

    t.run("submission: AUTH CRAM-MD5 as s3 (through Dovecot)", smtp_cram)

    def smtps():
        s = smtplib.SMTP_SSL(HOST, smtps_port, timeout=TIMEOUT, context=ctx())
        try:
            feats = smtp_ehlo_features(s)
            s.login("s1", "pw-s1")
        finally:
            s.quit()
        return ("AUTH" in feats, repr(feats))
    t.run("SMTPS verifies with MW_CA_FILE, AUTH as s1", smtps)

    def smtp_bad_auth():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            s.starttls(context=ctx())
            try:
                s.login("s1", "wrong")
            except smtplib.SMTPAuthenticationError as e:
                return (e.smtp_code == 535, repr(e))
            return (False, "wrong password accepted")
        finally:
            s.quit()
    t.run("submission: wrong password refused with 535", smtp_bad_auth)

    # End to end: submission (STARTTLS + AUTH s1) -> s2@domain -> Maildir -> POP3.
    token = "mailwire-smoke-%s" % uuid.uuid4().hex
    msg = ("From: s1@%s\r\nTo: s2@%s\r\nSubject: %s\r\n"
           "Message-ID: <%s@smoke.test>\r\n\r\n"
           "first line\r\n.leading dot\r\nlast line\r\n"
           % (domain, domain, token, token))

    def send_submission():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            s.starttls(context=ctx())
            s.login("s1", "pw-s1")
            refused = s.sendmail("s1@" + domain, ["s2@" + domain], msg)
        finally:
            s.quit()
        return (refused == {}, repr(refused))
    sent = t.run("submission: STARTTLS + AUTH as s1, mail to s2 accepted",
                 send_submission)

    def find_in_maildir(user, token, secs=120):
        base = os.path.join(maildirs, user, "Maildir")
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            for sub in ("new", "cur"):
                d = os.path.join(base, sub)
                for name in os.listdir(d):
                    try:
                        with open(os.path.join(d, name), "rb") as f:
                            if token.encode() in f.read():
                                return os.path.join(d, name)
                    except FileNotFoundError:
                        pass  # moved new -> cur meanwhile
            time.sleep(0.05)
        return None

    def arrived():
        if not sent:
            return (False, "nothing was sent")
        path = find_in_maildir("s2", token)
        return (path is not None, "no file with %s in s2's Maildir" % token)
    t.run("the message arrives in s2's Maildir", arrived)

    def pop3_retr():
        p = poplib.POP3(HOST, pop3_port, timeout=TIMEOUT)
        try:
            p.user("s2")
            p.pass_("pw-s2")
            _, listing, _ = p.list()
            found = None
            for entry in listing:
                num = int(entry.split()[0])
                _, lines, _ = p.retr(num)
                if any(token.encode() in ln for ln in lines):
                    found = lines
                    p.dele(num)
                    break
        finally:
            p.quit()
        if found is None:
            return (False, "token not found in %d messages" % len(listing))
        # poplib undoes dot-stuffing: the body line must be back as sent.
        return (b".leading dot" in found and b"last line" in found,
                "body %r" % found[-4:])
    t.run("the message is RETR'd over POP3 as s2 (dot-stuffing intact)",
          pop3_retr)

    def rcpt_unknown():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            s.starttls(context=ctx())
            s.login("s1", "pw-s1")
            code, _ = s.mail("s1@" + domain)
            if code != 250:
                return (False, "MAIL FROM answered %d" % code)
            code, text = s.rcpt("nosuchuser@" + domain)
        finally:
            s.quit()
        return (code == 550 and b"5.1.1" in text, "%d %r" % (code, text))
    t.run("RCPT to nosuchuser@test.domain refused with 550 5.1.1", rcpt_unknown)

    def no_relay_without_auth():
        s = smtplib.SMTP(HOST, smtp_port, timeout=TIMEOUT)
        try:
            s.starttls(context=ctx())
            s.ehlo("smoke.test")
            code, _ = s.mail("s1@" + domain)
            code, text = s.rcpt("s2@" + domain)
        finally:
            s.quit()
        return (500 <= code < 600, "%d %r" % (code, text))
    t.run("submission refuses RCPT without AUTH", no_relay_without_auth)

    def no_relay_outside():
        s = smtplib.SMTP(HOST, noauth_port, timeout=TIMEOUT)
        try:
            s.ehlo("smoke.test")
            s.mail("someone@example.org")
            code, text = s.rcpt("victim@example.org")
        finally:
            s.quit()
        return (500 <= code < 600, "%d %r" % (code, text))
    t.run("no-auth port refuses mail for other domains", no_relay_outside)

    token2 = "mailwire-smoke-noauth-%s" % uuid.uuid4().hex

    def noauth_send():
        s = smtplib.SMTP(HOST, noauth_port, timeout=TIMEOUT)
        try:
            feats = smtp_ehlo_features(s)
            if "AUTH" in feats or "STARTTLS" not in feats:
                return (False, "features %r" % feats)
            refused = s.sendmail("anyone@example.org", ["f1@" + domain],
                                 "Subject: %s\r\n\r\nbody\r\n" % token2)
        finally:
            s.quit()
        if refused:
            return (False, repr(refused))
        path = find_in_maildir("f1", token2)
        if path:
            os.unlink(path)
        return (path is not None, "not delivered to f1's Maildir")
    t.run("no-auth port: no AUTH, STARTTLS offered, mail to f1 delivered",
          noauth_send)

    def sink():
        s = smtplib.SMTP(HOST, sink_port, timeout=TIMEOUT)
        try:
            refused = s.sendmail("a@example.org", ["b@example.org"],
                                 "Subject: sink\r\n\r\nbody\r\n")
        finally:
            s.quit()
        return (refused == {}, repr(refused))
    t.run("smtp-sink accepts a message", sink)

    print("1..%d" % t.n)
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
