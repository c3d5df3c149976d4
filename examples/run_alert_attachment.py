#!/usr/bin/env python3
# Runs the alert_attachment example against the real test servers (TAP):
# a 30 MiB generated file (in a temporary directory, removed after) is sent
# from a3 to a4 through Postfix submission (STARTTLS, AUTH).  The example's
# peak RSS may exceed that of sending a 1 KiB file by less than a quarter of
# the big file's size: the file is streamed, never held (holding it would
# add its size, its base64 form 4/3 of it).  The baseline is measured, not
# assumed, as an ASan build starts at about 20 MiB.  The delivered message
# is read back from a4's Maildir and its attachment must decode to the same
# bytes.  A missing file is a clear error.
# usage: run_alert_attachment.py PATH/TO/alert_attachment
import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_tap import ok, comment, servers_or_skip, empty, wait_for, read

NAMES = ["alert_attachment sends a 1 KiB and a 30 MiB attachment (exit 0)",
         "its peak RSS grows by less than a quarter of the file's size",
         "the delivered attachment decodes to the same bytes, with its name and text",
         "a missing file: exit 1, the error names it"]
print("1..%d" % len(NAMES))
env = servers_or_skip(NAMES)
prog = sys.argv[1]
dom = env.get("MW_MAIL_DOMAIN", "test.domain")
# a3 sends to a4: this test's own users (tests/servers/README.md).
sender, rcpt = "a3", "a4"
SIZE = 30 * 1024 * 1024
GROWTH_BOUND = SIZE // 4  # bytes of peak RSS over the 1 KiB send

tmp = tempfile.mkdtemp(prefix="mw-alert-")
try:
    small = os.path.join(tmp, "small.bin")
    with open(small, "wb") as f:
        f.write(os.urandom(1024))
    path = os.path.join(tmp, "disk-report.bin")
    with open(path, "wb") as f:
        for _ in range(SIZE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    empty(rcpt)

    # Linux counts the parent's resident pages at the fork in the child's
    # ru_maxrss: this script holds nothing big when it starts the example.
    def run(file):
        args = [prog, "127.0.0.1", env["MW_SMTP_PORT"], env["MW_CA_FILE"],
                "%s@%s" % (sender, dom), "%s@%s" % (rcpt, dom), "Alert: disk full",
                "The disk report is attached.\n", file]
        p = subprocess.Popen(args, env=dict(env, MAILWIRE_USER=sender, MAILWIRE_PASSWORD="pw-" + sender),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        comment(out)
        return p.returncode, out, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux

    rc0, out0, base = run(small)
    rc, out, rss = run(path)
    ok(rc0 == 0 and rc == 0 and out.startswith("sent "), NAMES[0], "exit %d, %d" % (rc0, rc))
    ok(0 < base and rss - base < GROWTH_BOUND,
       NAMES[1] + " (%.1f MiB - %.1f MiB < %.1f MiB)" % (rss / 2**20, base / 2**20,
                                                         GROWTH_BOUND / 2**20),
       "peak RSS %d bytes, baseline %d" % (rss, base))

    bad = []
    got = [email.message_from_bytes(read(p), policy=email.policy.default)
           for p in wait_for(rcpt, 2)]
    big = [m for m in got if any(p.get_filename() == "disk-report.bin" for p in m.walk())]
    if len(got) != 2 or len(big) != 1:
        bad.append("%d messages in %s's mailbox, %d with the file" % (len(got), rcpt, len(big)))
    else:
        m = big[0]
        parts = list(m.iter_parts()) if m.is_multipart() else []
        if m.get_content_type() != "multipart/mixed" or len(parts) != 2:
            bad.append("not multipart/mixed with two parts: %s" % m.get_content_type())
        else:
            if parts[0].get_content() != "The disk report is attached.\n":
                bad.append("text part: %r" % parts[0].get_content()[:200])
            if parts[1].get_filename() != "disk-report.bin":
                bad.append("file name: %r" % parts[1].get_filename())
            data = parts[1].get_payload(decode=True)
            with open(path, "rb") as f:
                if data != f.read():
                    bad.append("attachment differs: %d bytes received" % len(data or b""))
        if str(m["Subject"]) != "Alert: disk full":
            bad.append("subject %r" % str(m["Subject"]))
    ok(not bad, NAMES[2], "\n".join(bad))

    missing = os.path.join(tmp, "no-such-file")
    rc, out, _ = run(missing)
    ok(rc == 1 and missing in out, NAMES[3], "exit %d: %s" % (rc, out))
finally:
    shutil.rmtree(tmp)
    empty(rcpt)
sys.exit(0)
