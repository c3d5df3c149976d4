#!/usr/bin/env python3
# Runs the fetch_and_reply example against the real test servers (TAP):
# six messages in a1's mailbox (written into its Maildir), three of them
# automatic (Auto-Submitted, Precedence: bulk, MAILER-DAEMON); the responder
# logs in as a1 and must reply to the other three, whose senders are a2
# (one through Reply-To), delete those three and keep the rest.  A message
# whose reply is refused (its Reply-To is an unknown user: 550 at RCPT) is
# kept, the run goes on with the next one and exits 1.  A second run finds
# nothing more to answer.
# usage: run_fetch_and_reply.py PATH/TO/fetch_and_reply
import email
import email.header
import email.policy
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_tap import ok, comment, servers_or_skip, files, empty, put, wait_for, read, FAILED

NAMES = ["fetch_and_reply: three replies, three skips and a refused reply reported (exit 1)",
         "the three replies reach the senders, threaded and marked auto-replied",
         "the answered messages are deleted, the automatic and the refused ones kept",
         "a second run sends nothing"]
print("1..%d" % len(NAMES))
env = servers_or_skip(NAMES)
prog = sys.argv[1]
dom = env.get("MW_MAIL_DOMAIN", "test.domain")
# a1 (responder) and a2 (senders) are this test's own users (tests/servers/README.md).
me, sender = "a1", "a2"
tag = "%d" % os.getpid()


def msg(headers, body="Hello.\n"):
    h = "".join("%s: %s\n" % kv for kv in headers)
    return (h + "To: %s@%s\n\n" % (me, dom) + body).encode()


a2 = "A Two <%s@%s>" % (sender, dom)
inbox = [
    msg([("From", a2), ("Subject", "hello one"), ("Message-ID", "<m1.%s@test>" % tag),
         ("References", "<m0.%s@test>" % tag)]),
    msg([("From", "Someone Else <other@elsewhere.invalid>"), ("Reply-To", "%s@%s" % (sender, dom)),
         ("Subject", "=?UTF-8?Q?caf=C3=A9_=E2=82=AC?="), ("Message-ID", "<m2.%s@test>" % tag)]),
    msg([("From", a2), ("Subject", "vacation notice"), ("Auto-Submitted", "auto-replied"),
         ("Message-ID", "<m3.%s@test>" % tag)]),
    msg([("From", a2), ("Subject", "newsletter"), ("Precedence", "bulk"),
         ("Message-ID", "<m4.%s@test>" % tag)]),
    msg([("From", "Mail Delivery System <MAILER-DAEMON@%s>" % dom),
         ("Subject", "Undelivered Mail"), ("Message-ID", "<m5.%s@test>" % tag)]),
    msg([("From", a2), ("Reply-To", "nobody-here@%s" % dom), ("Subject", "refused"),
         ("Message-ID", "<m7.%s@test>" % tag)]),
    # A long body (read and dropped) and a subject that already says "Re:".
    msg([("From", a2), ("Subject", "Re: last\n one"), ("Auto-Submitted", "no"),
         ("Message-ID", "<m6.%s@test>" % tag)], "x" * 70 + "\n" * 3000),
]
empty(me)
empty(sender)
put(me, inbox)


def run():
    p = subprocess.run([prog, "127.0.0.1", env["MW_SMTP_PORT"], env["MW_POP3_PORT"],
                        env["MW_CA_FILE"], me, dom], env=dict(env, MAILWIRE_PASSWORD="pw-" + me),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode(errors="replace")
    comment(out)
    return p.returncode, out.splitlines()


rc, lines = run()
replied = [l for l in lines if l.endswith(": replied to %s@%s, deleted" % (sender, dom))]
skipped = sorted(l.split("(")[1].split(")")[0] for l in lines if ": no reply (" in l)
refused = [l for l in lines if "sending the reply" in l and "nobody-here@" in l]
refused += [l for l in lines if ": not answered (" in l]
ok(rc == 1 and len(replied) == 3 and len(refused) == 2
   and skipped == ["Auto-Submitted", "Precedence", "from MAILER-DAEMON"], NAMES[0],
   "exit %d, replied %d, skipped %s, refused %d" % (rc, len(replied), skipped, len(refused)))

got = {}
for p in wait_for(sender, 3):
    m = email.message_from_bytes(read(p), policy=email.policy.default)
    got[str(m["In-Reply-To"])] = m
want = {"<m1.%s@test>" % tag: ("Re: hello one", "<m0.%s@test> <m1.%s@test>" % (tag, tag)),
        "<m2.%s@test>" % tag: ("Re: caf\u00e9 \u20ac", "<m2.%s@test>" % tag),
        "<m6.%s@test>" % tag: ("Re: last one", "<m6.%s@test>" % tag)}
bad = []
for irt, (subject, refs) in want.items():
    m = got.get(irt)
    if m is None:
        bad.append("no reply to %s" % irt)
        continue
    checks = {"Subject": (str(m["Subject"]), subject),
              "References": (" ".join(str(m["References"]).split()), refs),
              "Auto-Submitted": (str(m["Auto-Submitted"]), "auto-replied"),
              "To": (str(m["To"]), "%s@%s" % (sender, dom)),
              "From": (str(m["From"]), "%s@%s" % (me, dom)),
              "Return-Path (null reverse-path)": (str(m["Return-Path"]), "<>")}
    bad += ["%s: %s is %r, not %r" % (irt, k, v[0], v[1]) for k, v in checks.items() if v[0] != v[1]]
if len(got) != 3:
    bad.append("%d replies in %s's mailbox: %s" % (len(got), sender, sorted(got)))
ok(not bad, NAMES[1], "\n".join(bad))

left = sorted(email.message_from_bytes(read(p))["Message-ID"] for p in files(me))
ok(left == ["<m%d.%s@test>" % (i, tag) for i in (3, 4, 5, 7)], NAMES[2], left)

rc, lines = run()
again = [l for l in lines if "replied" in l]
ok(rc == 1 and not again and sum(": no reply (" in l for l in lines) == 3
   and len(files(sender)) == 3, NAMES[3], "exit %d, %s" % (rc, again))
empty(me)
empty(sender)
sys.exit(0)
