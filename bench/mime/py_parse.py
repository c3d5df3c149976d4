#!/usr/bin/env python3
"""MIME bench (issue 5), Python reference: loads every FILE into memory, then
parses each with email.message_from_binary_file(policy=policy.default),
walks the tree (walk() goes into message/rfc822 parts) and decodes every
leaf with get_payload(decode=True).  Only the parse is timed.  Prints
"SECONDS INPUT_BYTES DECODED_BYTES LEAVES
CPU_SECONDS".  Not a test."""
import email
import email.policy
import io
import sys
import time

data = [open(f, "rb").read() for f in sys.argv[1:]]
decoded = leaves = 0
t0, c0 = time.monotonic(), time.process_time()
for d in data:
    msg = email.message_from_binary_file(io.BytesIO(d), policy=email.policy.default)
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        body = part.get_payload(decode=True)
        decoded += len(body or b"")
        leaves += 1
t1, c1 = time.monotonic(), time.process_time()
print("%.6f %d %d %d %.6f" % (t1 - t0, sum(map(len, data)), decoded, leaves, c1 - c0))
