"""Runs a command and reports on stderr whether its peak RSS stayed under a
bound: "maxrss-ok N KiB" or "maxrss-over N KiB (bound B KiB)".  Exits with
the command's status.  The bound (MW_MAXRSS_KIB, default 131072) is far above
what a bounded client needs even under ASan and far below what buffering the
gigabyte the scripted server offers would take."""
import os
import resource
import subprocess
import sys

bound = int(os.environ.get("MW_MAXRSS_KIB", "131072"))
rc = subprocess.call(sys.argv[1:])
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if kib <= bound:
    print(f"maxrss-ok {kib} KiB", file=sys.stderr)
else:
    print(f"maxrss-over {kib} KiB (bound {bound} KiB)", file=sys.stderr)
sys.exit(rc if rc >= 0 else 128 - rc)
