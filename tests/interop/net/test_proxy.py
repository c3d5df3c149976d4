#!/usr/bin/env python3
"""mailwire through proxies (TAP): SOCKS5 (socks5h:// and socks5://, with and
without user/password) and HTTP CONNECT (with Basic credentials), each to
the real test servers (Dovecot POP3S, Postfix submission with STARTTLS),
plus the failures a proxy can cause: refused credentials, a refused
destination, an answer that is no proxy protocol, an unreachable proxy, a
bad URL.  The proxy is tests/tools/proxy.py, on 127.0.0.1.  Without the
servers every case is a named SKIP."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "..", "tools", "proxy.py")


def mailwire():
    return os.path.join(os.environ.get("MW_BUILD_DIR", ""), "cli", "mailwire")


class Proxy:
    def __init__(self, d, *flags):
        self.dir = tempfile.mkdtemp(dir=d)
        self.portfile = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "log")
        open(self.log, "w").close()
        self.p = subprocess.Popen([sys.executable, PROXY] + list(flags) +
                                  [self.portfile, self.log])
        for _ in range(100):
            if os.path.exists(self.portfile):
                break
            time.sleep(0.05)
        self.port = int(open(self.portfile).read())

    def lines(self):
        return open(self.log).read().splitlines()

    def stop(self):
        self.p.kill()
        self.p.wait()


def run(args, user="p1"):
    e = dict(os.environ)
    e["MAILWIRE_PASSWORD"] = "pw-" + user
    e["HOME"] = tempfile.gettempdir()
    e.pop("MAILHOST", None)
    p = subprocess.run([mailwire()] + args, capture_output=True, env=e, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def pop3s(proxy, host="127.0.0.1", user="p1"):
    return run(["pop3", "--host", host, "--port", os.environ["MW_POP3S_PORT"], "--tls",
                "implicit", "--cafile", os.environ["MW_CA_FILE"], "--user", user, "--proxy",
                proxy, "stat"], user)


cases = []


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


@case("POP3S through socks5h:// — the proxy gets the name localhost, TLS verifies localhost")
def socks5h(d):
    px = Proxy(d)
    try:
        rc, out, err = pop3s("socks5h://127.0.0.1:%d" % px.port, host="localhost")
        want = "socks5 localhost %s" % os.environ["MW_POP3S_PORT"]
        if rc != 0:
            return "exit %d: %s" % (rc, err.strip())
        if want not in px.lines():
            return "proxy log %r lacks %r" % (px.lines(), want)
    finally:
        px.stop()


@case("POP3S through socks5:// — the address is resolved here, the proxy gets 127.0.0.1")
def socks5_local(d):
    px = Proxy(d)
    try:
        rc, out, err = pop3s("socks5://127.0.0.1:%d" % px.port)
        want = "socks5-ip 127.0.0.1 %s" % os.environ["MW_POP3S_PORT"]
        if rc != 0 or want not in px.lines():
            return "exit %d, log %r: %s" % (rc, px.lines(), err.strip())
    finally:
        px.stop()


@case("SOCKS5 user/password (RFC 1929): the right pair connects, a wrong one exits 77 without "
      "printing it")
def socks5_auth(d):
    px = Proxy(d, "--auth", "alice:s3cr%t")
    try:
        rc, out, err = pop3s("socks5h://alice:s3cr%%25t@127.0.0.1:%d" % px.port)
        if rc != 0:
            return "good pair: exit %d: %s" % (rc, err.strip())
        rc, out, err = pop3s("socks5h://alice:wrong-pw@127.0.0.1:%d" % px.port)
        if rc != 77 or "refused the user name or password" not in err:
            return "bad pair: exit %d: %s" % (rc, err.strip())
        if "wrong-pw" in err:
            return "the proxy password was printed: " + err
        rc, out, err = pop3s("socks5h://127.0.0.1:%d" % px.port)
        if rc != 77 or "user name and password" not in err:
            return "no credentials: exit %d: %s" % (rc, err.strip())
    finally:
        px.stop()


@case("SMTP submission (STARTTLS, AUTH) capa through an HTTP CONNECT proxy with Basic "
      "credentials; 407 without them")
def http_connect(d):
    px = Proxy(d, "--auth", "bob:pw2")
    try:
        args = ["smtp", "--host", "127.0.0.1", "--port", os.environ["MW_SMTP_PORT"],
                "--cafile", os.environ["MW_CA_FILE"]]
        rc, out, err = run(args + ["--proxy", "http://bob:pw2@127.0.0.1:%d" % px.port, "capa"])
        if rc != 0 or "# after TLS" not in out:
            return "exit %d: %s %s" % (rc, out[-200:], err.strip())
        want = "http 127.0.0.1 %s" % os.environ["MW_SMTP_PORT"]
        if want not in px.lines():
            return "proxy log %r lacks %r" % (px.lines(), want)
        rc, out, err = run(args + ["--proxy", "http://127.0.0.1:%d" % px.port, "capa"])
        if rc != 77 or "407" not in err:
            return "without credentials: exit %d: %s" % (rc, err.strip())
    finally:
        px.stop()


@case("a proxy that refuses the destination: the reason named (SOCKS5 reply 5, HTTP 502)")
def refused(d):
    px = Proxy(d, "--refuse")
    try:
        rc, out, err = pop3s("socks5h://127.0.0.1:%d" % px.port)
        if rc == 0 or "could not connect to 127.0.0.1" not in err or "connection refused" not in err:
            return "socks5: exit %d: %s" % (rc, err.strip())
        rc, out, err = pop3s("http://127.0.0.1:%d" % px.port)
        if rc == 0 or "502 Bad Gateway" not in err:
            return "http: exit %d: %s" % (rc, err.strip())
    finally:
        px.stop()


@case("a proxy that answers no proxy protocol: a protocol error, not a hang or a crash")
def garbage(d):
    px = Proxy(d, "--garbage")
    try:
        rc, out, err = pop3s("socks5h://127.0.0.1:%d" % px.port)
        if rc == 0 or "not a SOCKS5 reply" not in err:
            return "socks5: exit %d: %s" % (rc, err.strip())
        rc, out, err = pop3s("http://127.0.0.1:%d" % px.port)
        if rc == 0 or "not an HTTP proxy" not in err:
            return "http: exit %d: %s" % (rc, err.strip())
    finally:
        px.stop()


@case("an unreachable proxy and a bad proxy URL are named as such")
def unreachable(d):
    px = Proxy(d)
    port = px.port
    px.stop()
    rc, out, err = pop3s("socks5h://127.0.0.1:%d" % port)
    if rc == 0 or "proxy: cannot connect to 127.0.0.1 port %d" % port not in err:
        return "unreachable: exit %d: %s" % (rc, err.strip())
    rc, out, err = pop3s("ftp://127.0.0.1:1")
    if rc == 0 or "socks5://, socks5h:// or http://" not in err:
        return "bad URL: exit %d: %s" % (rc, err.strip())
    return None


def main():
    with tempfile.TemporaryDirectory() as d:
        return taplib.run_cases(cases, bool(os.environ.get("MW_POP3S_PORT")), lambda fn: fn(d))


if __name__ == "__main__":
    sys.exit(main())
