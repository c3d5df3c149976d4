"""Runs examples/loop_uv.c (mw_loop inside libuv) against the real Dovecot
and Postfix: users a6 and a7 (tests/servers/README.md) each get messages,
the example fetches both at once and, on the same loop, each sends a note
to a5 through Postfix (STARTTLS, AUTH).  Every message must arrive
byte-identical in the local Maildir and be gone from the server, and a5
must get both notes.  TAP."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_tap import ok, comment, servers_or_skip, empty, put, files, read, wait_for, FAILED  # noqa: E402

NAMES = ["loop_uv exits 0", "one JSON fetch result per account, all 0 with QUIT +OK",
         "every message stored byte-identical", "server mailboxes empty",
         "one JSON send result per account, all 0 and sent",
         "a5 got both notes through Postfix, the leading dot intact"]
env = servers_or_skip(NAMES)
exe = sys.argv[1]
users = {"a6": 3, "a7": 5}
empty("a5")
sent = {}
for u, n in users.items():
    empty(u)
    msgs = [("From: uv@test.domain\nTo: %s@test.domain\nSubject: uv %d\n\n.dot line\nbody %d %s\n"
             % (u, k, k, "x" * (k * 700))).encode() for k in range(n)]
    put(u, msgs)
    sent[u] = sorted(msgs)
with tempfile.TemporaryDirectory() as base:
    args = [exe, "127.0.0.1", env["MW_POP3_PORT"], env["MW_SMTP_PORT"], env["MW_CA_FILE"], base,
            "a5@test.domain"]
    for u in users:
        args += [u, "pw-" + u]
    p = subprocess.run(args, capture_output=True, timeout=300)
    ok(p.returncode == 0, NAMES[0], p.stderr.decode(errors="replace") + p.stdout.decode())
    allres = [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]
    res = [r for r in allres if r["job"] == "fetch"]
    sends = [r for r in allres if r["job"] == "send"]
    ok(sorted(r["user"] for r in res) == sorted(users) and
       all(r["code"] == 0 and r["quit_ok"] == 1 and r["stored"] == users[r["user"]]
           and r["deleted"] == users[r["user"]] for r in res), NAMES[1], p.stdout.decode())
    got = {}
    for u in users:
        d = os.path.join(base, u, "new")
        got[u] = sorted(open(os.path.join(d, f), "rb").read() for f in os.listdir(d)) \
            if os.path.isdir(d) else []
    ok(got == sent, NAMES[2], "stored %s" % {u: len(v) for u, v in got.items()})
    left = {u: len(files(u)) for u in users}
    ok(all(v == 0 for v in left.values()), NAMES[3], "left on the server: %s" % left)
    ok(sorted(r["user"] for r in sends) == sorted(users) and
       all(r["code"] == 0 and r["sent"] == 1 for r in sends), NAMES[4], p.stdout.decode())
    notes = [read(f) for f in wait_for("a5", len(users))]
    ok(len(notes) == len(users) and
       all(any(b"Subject: loop_uv note from " + u.encode() in n and
               b"\n." + u.encode() + b" is being fetched" in n for n in notes) for u in users),
       NAMES[5], b"\n----\n".join(notes).decode(errors="replace"))
comment("loop_uv: %d accounts" % len(users))
print("1..%d" % len(NAMES))
sys.exit(1 if FAILED[0] else 0)
