#!/usr/bin/env python3
"""For the accounts bench: runs COMMAND and appends to FILE one line
"ONCPU RUNQUEUE WALL SELF" (seconds): the time its main thread ran, the
time it was ready but waited for a CPU (/proc/PID/schedstat, read when it
exited, before it is reaped), the wall time, and the CPU this wrapper used
(the bench takes it off the client's).  WALL - ONCPU - RUNQUEUE is the
time it slept: waiting for the network, or in a blocking call (fsync).

    python3 schedstat.py FILE COMMAND [ARG...]
"""
import os
import resource
import subprocess
import sys
import time


def sample(pid):
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return f.read().split()
    except OSError:
        return None


def main():
    out, cmd = sys.argv[1], sys.argv[2:]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd)
    last = None
    while True:
        last = sample(p.pid) or last
        # Exited: its counters are still there until it is reaped.
        if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            last = sample(p.pid) or last
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    rc = p.wait()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    if last:
        with open(out, "a") as f:
            f.write("%.3f %.3f %.3f %.3f\n" % (int(last[0]) / 1e9, int(last[1]) / 1e9, wall,
                                              ru.ru_utime + ru.ru_stime))
    sys.exit(rc)


if __name__ == "__main__":
    main()
