#!/usr/bin/env python3
"""Counts test cases across every test program of a meson run.

Each program speaks TAP; a program that crashed or timed out without saying
'not ok' counts as one failure.  Skips are listed by name, never silent.
The last line printed is 'N passed, N failed, N skipped'."""
import json
import re
import sys

def main(path):
    passed = failed = skipped = 0
    failures, skips = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            t = json.loads(line)
            name, result = t["name"], t.get("result", "")
            out = t.get("stdout", "") or ""
            p = fa = 0
            for l in out.splitlines():
                m = re.match(r"^(not ok|ok)\b\s*\d*\s*-?\s*(.*)$", l)
                if not m:
                    continue
                desc = m.group(2)
                if re.search(r"#\s*skip", desc, re.I):
                    skipped += 1
                    skips.append(f"{name}: {desc}")
                elif m.group(1) == "ok":
                    p += 1
                else:
                    fa += 1
                    failures.append(f"{name}: {desc}")
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and fa == 0:
                fa = 1
                failures.append(f"{name}: {result} (exit {t.get('returncode')})")
            if result == "SKIP" and p == 0 and fa == 0:
                skipped += 1
                skips.append(f"{name}: whole program skipped")
            passed += p
            failed += fa
    for s in skips:
        print(f"skipped: {s}")
    for s in failures:
        print(f"FAILED: {s}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
