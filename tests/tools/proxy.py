#!/usr/bin/env python3
"""A small proxy for the tests: SOCKS5 (RFC 1928, with RFC 1929 user/password
when --auth is given) and HTTP CONNECT on one 127.0.0.1 port, relaying to
whatever the client asks for (the test servers are on 127.0.0.1 too).

    proxy.py [--auth USER:PASS] [--refuse] [--garbage] [--alias NAME=ADDR]...
             PORTFILE LOGFILE

It listens on a free port, writes the port number to PORTFILE, and appends
one line per request to LOGFILE: "socks5 HOST PORT", "socks5-ip ADDR PORT",
"http HOST PORT", or "auth-fail ...".  --refuse answers every CONNECT with
a failure (SOCKS5 reply 5, HTTP 502); --garbage answers with bytes that are
no proxy protocol.  --alias makes NAME, a name only the proxy knows,
connect to ADDR (the log shows NAME).  Runs until killed.  Test tooling, not part of mailwire.
"""
import argparse
import base64
import ipaddress
import os
import socket
import threading


def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b


def relay(a, b):
    def pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join()
    a.close()
    b.close()


def upstream(args, host, port):
    return socket.create_connection((args.aliases.get(host, host), port), timeout=10)


def socks5(c, args, first):
    nmethods = recv_exact(c, 1)[0]
    methods = recv_exact(c, nmethods)
    want = 2 if args.auth else 0
    if want not in methods:
        c.sendall(b"\x05\xff")
        log(args.log, "auth-fail no acceptable method")
        return
    c.sendall(bytes([5, want]))
    if want == 2:
        ver, ulen = recv_exact(c, 2)
        user = recv_exact(c, ulen)
        plen = recv_exact(c, 1)[0]
        pw = recv_exact(c, plen)
        if (user + b":" + pw).decode("latin-1") != args.auth:
            c.sendall(b"\x01\x01")
            log(args.log, "auth-fail socks5 " + user.decode("latin-1"))
            return
        c.sendall(b"\x01\x00")
    ver, cmd, _, atyp = recv_exact(c, 4)
    if atyp == 1:
        host = str(ipaddress.IPv4Address(recv_exact(c, 4)))
        kind = "socks5-ip"
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(recv_exact(c, 16)))
        kind = "socks5-ip"
    else:
        host = recv_exact(c, recv_exact(c, 1)[0]).decode("latin-1")
        kind = "socks5"
    port = int.from_bytes(recv_exact(c, 2), "big")
    log(args.log, "%s %s %d" % (kind, host, port))
    if args.garbage:
        c.sendall(b"\x04\x5a garbage")
        return
    if args.refuse or cmd != 1:
        c.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        return
    try:
        up = upstream(args, host, port)
    except OSError:
        c.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        return
    c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
    relay(c, up)


def http(c, args, first):
    head = first
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d:
            return
        head += d
    lines = head.split(b"\r\n")
    target = lines[0].split()[1].decode("latin-1")
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if args.auth:
        ok = any(l.lower().startswith(b"proxy-authorization: basic ") and
                 base64.b64decode(l.split()[-1]).decode("latin-1") == args.auth for l in lines)
        if not ok:
            c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                      b"Proxy-Authenticate: Basic realm=\"t\"\r\n\r\n")
            log(args.log, "auth-fail http")
            return
    log(args.log, "http %s %s" % (host, port))
    if args.garbage:
        c.sendall(b"SSH-2.0-not a proxy\r\n\r\n")
        return
    if args.refuse:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        return
    try:
        up = upstream(args, host, int(port))
    except OSError:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        return
    c.sendall(b"HTTP/1.1 200 Connection established\r\nVia: test-proxy\r\n\r\n")
    relay(c, up)


def serve(c, args):
    try:
        first = c.recv(1)
        if first == b"\x05":
            socks5(c, args, first)
        elif first:
            http(c, args, first)
    except (EOFError, OSError, ValueError, IndexError):
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--auth")
    ap.add_argument("--refuse", action="store_true")
    ap.add_argument("--garbage", action="store_true")
    ap.add_argument("--alias", action="append", default=[])
    ap.add_argument("portfile")
    ap.add_argument("log")
    args = ap.parse_args()
    args.aliases = dict(a.split("=", 1) for a in args.alias)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    tmp = args.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(tmp, args.portfile)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, args), daemon=True).start()


if __name__ == "__main__":
    main()
