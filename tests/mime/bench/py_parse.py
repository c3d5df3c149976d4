#!/usr/bin/env python3
"""Bench (not a test): Python's email package, same measurement.
Usage: py_parse.py ITER FILE..."""
import email
import email.policy
import sys
import time

it = int(sys.argv[1])
data = [open(f, 'rb').read() for f in sys.argv[2:]]
total = sum(len(d) for d in data)
dec = 0
t = time.monotonic()
for _ in range(it):
    for d in data:
        m = email.message_from_bytes(d, policy=email.policy.compat32)
        for part in m.walk():
            if not part.is_multipart():
                p = part.get_payload(decode=True)
                dec += len(p or b'')
s = time.monotonic() - t
print('python   %.1f MB in %.3f s: %.1f MB/s (decoded %.1f MB)' % (total * it / 1e6, s, total * it / 1e6 / s, dec / 1e6))
