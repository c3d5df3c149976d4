#!/usr/bin/env python3
"""Lock-step reference client: Python's poplib, one RETR at a time, each
message written to DIR/N.eml.  Usage: poplib_client.py HOST PORT USER PASS MODE CAFILE DIR"""
import poplib
import ssl
import sys

host, port, user, pw, mode, cafile, outdir = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "implicit":
    p = poplib.POP3_SSL(host, int(port), context=ctx)
else:
    p = poplib.POP3(host, int(port))
    if mode == "stls":
        p.stls(context=ctx)
p.user(user)
p.pass_(pw)
count, _ = p.stat()
for i in range(1, count + 1):
    _, lines, _ = p.retr(i)
    with open(f"{outdir}/{i}.eml", "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
p.quit()
