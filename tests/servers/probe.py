#!/usr/bin/env python3
"""Helpers for tests/servers/start.sh (Python 3 standard library only).

  probe.py ports N            print N free TCP ports on 127.0.0.1, one a line
  probe.py wait SECS CAFILE SPEC...
                              wait until every SPEC answers with its greeting;
                              SPEC is NAME:PORT:KIND, KIND one of
                              pop3 (plain, "+OK" greeting),
                              pop3s (TLS from the start, verified with CAFILE),
                              smtp (plain, "220" greeting),
                              smtps (TLS from the start, verified).
                              Exits 1 naming the services that did not answer.

Ports are taken from 20000-32767, below Linux's default ephemeral range
(32768-60999), so outgoing connections made by other tests cannot take them
between our choice and the servers' bind.  The caller holds a lock while it
chooses and until the servers listen, so two concurrent start.sh runs do not
pick the same ports.
"""
import random
import socket
import ssl
import sys
import threading
import time


def free_ports(n):
    ports = []
    tries = 0
    while len(ports) < n:
        tries += 1
        if tries > 10000:
            sys.exit("probe.py: cannot find %d free ports" % n)
        p = random.randint(20000, 32767)
        if p in ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # No SO_REUSEADDR: a port in TIME_WAIT is not considered free,
            # because a server without SO_REUSEADDR could not bind it either.
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(p)
    return ports


def greeting(port, kind, cafile, timeout):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if kind in ("pop3s", "smtps"):
            ctx = ssl.create_default_context(cafile=cafile)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            line += chunk
        want = b"+OK" if kind.startswith("pop3") else b"220"
        if not line.startswith(want):
            raise OSError("unexpected greeting %r" % line[:80])
        return line
    finally:
        sock.close()


def wait_one(deadline, cafile, name, port, kind, errors):
    last = "timeout"
    while time.monotonic() < deadline:
        try:
            greeting(port, kind, cafile, 2.0)
            return
        except (OSError, ssl.SSLError) as e:
            last = str(e)
        time.sleep(0.05)
    errors.append("probe.py: %s (%s on 127.0.0.1:%d) did not answer: %s"
                  % (name, kind, port, last))


def wait(secs, cafile, specs):
    # One thread per service: they start in parallel, so wait in parallel.
    deadline = time.monotonic() + secs
    errors = []
    threads = []
    for spec in specs:
        name, port, kind = spec.split(":")
        t = threading.Thread(target=wait_one,
                             args=(deadline, cafile, name, int(port), kind, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "ports":
        print("\n".join(str(p) for p in free_ports(int(sys.argv[2]))))
    elif len(sys.argv) >= 4 and sys.argv[1] == "wait":
        wait(float(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
