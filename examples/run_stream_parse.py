#!/usr/bin/env python3
# Runs the stream_parse example (TAP; no servers needed): a message built
# with Python's email module (a text part, a 50 MiB attachment, a file
# named "../escape.txt", an attached message) is piped to it, never stored.
# Its listing must name every part with its decoded size; the attachments
# must be written to the directory with the same bytes, the unsafe name
# replaced; its peak RSS may exceed that of parsing a small message by less
# than a quarter of the attachment's size (the baseline is measured: an ASan
# build starts at about 20 MiB); an existing file is never overwritten.
# usage: run_stream_parse.py PATH/TO/stream_parse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_tap import ok, comment

NAMES = ["stream_parse lists every part of a 50 MiB message (exit 0)",
         "the attachments are written with the same bytes, the unsafe name replaced",
         "its peak RSS grows by less than a quarter of the attachment's size",
         "an existing file is not overwritten: exit 1, the error names it"]
print("1..%d" % len(NAMES))
prog = sys.argv[1]
SIZE = 50 * 1024 * 1024
GROWTH_BOUND = SIZE // 4  # bytes of peak RSS over the small message's


def message(size):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@example.org", "b@example.org", "report"
    m.set_content("The report is attached.\n")
    big = random.Random(size).randbytes(size)
    m.add_attachment(big, maintype="application", subtype="octet-stream", filename="big.bin")
    m.add_attachment("do not write me outside\n", filename="../escape.txt")
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("an attached message\n")
    m.add_attachment(inner)
    return m.as_bytes(), hashlib.sha256(big).hexdigest()


def run(size, outdir):
    """Pipes a message to the example; returns exit status, output, peak RSS
    and the attachment's digest.  The message is built only once the child
    runs: Linux counts the parent's resident pages at the fork in the
    child's ru_maxrss."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen([prog, outdir], stdin=subprocess.PIPE, stdout=out,
                             stderr=subprocess.STDOUT)
        data, digest = message(size)
        try:
            for i in range(0, len(data), 1 << 20):
                p.stdin.write(data[i:i + (1 << 20)])
        except BrokenPipeError:
            pass
        p.stdin.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    comment(text)
    return p.returncode, text.splitlines(), usage.ru_maxrss * 1024, digest  # KiB on Linux


tmp = tempfile.mkdtemp(prefix="mw-parse-")
try:
    os.mkdir(os.path.join(tmp, "small"))
    rc0, _, base, _ = run(1024, os.path.join(tmp, "small"))
    outdir = os.path.join(tmp, "out")
    os.mkdir(outdir)
    rc, lines, rss, digest = run(SIZE, outdir)
    want = ["1 multipart/mixed",
            "1.1 text/plain - 24",
            "1.2 application/octet-stream big.bin %d" % SIZE,
            "1.3 text/plain part-1.3 24",
            "1.4 message/rfc822",
            "1.4.1 text/plain - 20",
            "6 parts, 2 files written, 0 warnings"]
    ok(rc0 == 0 and rc == 0 and lines == want, NAMES[0],
       "exit %d/%d\ngot:  %r\nwant: %r" % (rc0, rc, lines, want))

    def sha(p):
        with open(p, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    written = sorted(os.listdir(outdir))
    escaped = os.path.exists(os.path.join(tmp, "escape.txt"))
    ok(written == ["big.bin", "part-1.3"] and not escaped
       and sha(os.path.join(outdir, "big.bin")) == digest
       and open(os.path.join(outdir, "part-1.3")).read() == "do not write me outside\n",
       NAMES[1], "files %r, escaped %r" % (written, escaped))
    ok(0 < base and rss - base < GROWTH_BOUND,
       NAMES[2] + " (%.1f MiB - %.1f MiB < %.1f MiB)" % (rss / 2**20, base / 2**20,
                                                         GROWTH_BOUND / 2**20),
       "peak RSS %d bytes, baseline %d" % (rss, base))

    rc, lines, _, _ = run(1024, outdir)
    ok(rc == 1 and any("big.bin" in l and "exists" in l for l in lines)
       and sha(os.path.join(outdir, "big.bin")) == digest, NAMES[3], "exit %d" % rc)
finally:
    shutil.rmtree(tmp)
sys.exit(0)
