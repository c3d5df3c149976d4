#!/usr/bin/env python3
"""mailwire through proxies on the event loop (TAP): MAILWIRE_ENGINE=loop
(no blocking fallback; the engine log shows the loop ran) and
`mailwire fetch --jobs`, through tests/tools/proxy.py to the real Dovecot
(POP3S, and STLS for the fetch), users v1..v8 (tests/servers/README.md).
The failures a proxy causes (credentials refused or missing, a refused
destination, an answer that is no proxy protocol, an unreachable proxy, a
bad URL) end the loop's job with the blocking engine's words and exit
status.  Without the servers every case is a named SKIP."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "fetch"))
import taplib  # noqa: E402
from test_proxy import Proxy, mailwire  # noqa: E402

ENV = os.environ


def run(args, user, engine="loop", d=None, extra=None):
    e = dict(ENV)
    e["MAILWIRE_PASSWORD"] = "pw-" + user
    e["HOME"] = d or tempfile.gettempdir()
    e["XDG_STATE_HOME"] = os.path.join(d or tempfile.gettempdir(), "state")
    e["MAILWIRE_ENGINE"] = engine
    e.pop("MAILHOST", None)
    log = os.path.join(d or tempfile.gettempdir(), "engine.log")
    if os.path.exists(log):
        os.unlink(log)
    e["MAILWIRE_ENGINE_LOG"] = log
    e.update(extra or {})
    p = subprocess.run([mailwire()] + args, capture_output=True, env=e, timeout=120)
    on_loop = os.path.exists(log) and open(log).read().strip() != ""
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace").strip(), on_loop)


def pop3s(d, proxy, host="127.0.0.1", user="v8", engine="loop"):
    return run(["pop3", "--host", host, "--port", ENV["MW_POP3S_PORT"], "--tls", "implicit",
                "--cafile", ENV["MW_CA_FILE"], "--user", user, "--proxy", proxy, "stat"],
               user, engine, d)


cases = []


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


@case("POP3S on the loop through socks5h:// (the proxy gets the name), socks5:// (the name "
      "looked up on the loop, the proxy gets 127.0.0.1), http:// with Basic credentials")
def loop_kinds(d):
    port = ENV["MW_POP3S_PORT"]
    px = Proxy(d)
    pa = Proxy(d, "--auth", "bob:pw 2")
    try:
        for url, log, want in (("socks5h://127.0.0.1:%d" % px.port, px, "socks5 localhost " + port),
                               ("socks5://127.0.0.1:%d" % px.port, px,
                                "socks5-ip 127.0.0.1 " + port),
                               ("http://bob:pw%%202@127.0.0.1:%d" % pa.port, pa,
                                "http localhost " + port)):
            rc, out, err, on_loop = pop3s(d, url, host="localhost")
            if rc != 0 or not on_loop:
                return "%s: exit %d, on the loop %s: %s" % (url, rc, on_loop, err)
            if want not in log.lines():
                return "%s: proxy log %r lacks %r" % (url, log.lines(), want)
    finally:
        px.stop()
        pa.stop()


def config(d, accounts):
    path = os.path.join(d, "config")
    with open(path, "w") as f:
        f.write("defaults\nhost localhost\nport %s\ntls starttls\ncafile %s\n\n" %
                (ENV["MW_POP3_PORT"], ENV["MW_CA_FILE"]))
        for u, proxy in accounts:
            f.write("account %s\nuser %s\npassword pw-%s\nproxy %s\ndelivery maildir %s\n\n" %
                    (u, u, u, proxy, os.path.join(d, "md-" + u)))
    os.chmod(path, 0o600)
    return path


@case("fetch --jobs 2 on the loop: v1 through http:// CONNECT with credentials, v2 through "
      "socks5h://, STLS inside the tunnels; every message byte-exact, the servers emptied")
def fetch_jobs(d):
    from fetch_common import make_message, maildir_files, on_server, put, reset_mailbox
    ph = Proxy(d, "--auth", "al:pw")
    ps = Proxy(d)
    try:
        sent = {}
        for u, sizes in (("v1", (0, 900, 40000)), ("v2", (10, 200000))):
            reset_mailbox(u)
            sent[u] = [make_message(u, size=s) for s in sizes]
            put(u, sent[u])
        cfg = config(d, [("v1", "http://al:pw@127.0.0.1:%d" % ph.port),
                         ("v2", "socks5h://127.0.0.1:%d" % ps.port)])
        rc, out, err, on_loop = run(["fetch", "--config", cfg, "--all", "--jobs", "2", "--json"],
                                    "v1", d=d)
        if rc != 0 or not on_loop:
            return "exit %d, on the loop %s: %s %s" % (rc, on_loop, out[-400:], err)
        js = {j["account"]: j for j in json.loads(out)}
        for u in sent:
            if js.get(u, {}).get("fetched") != len(sent[u]):
                return "%s: record %r" % (u, js.get(u))
            if sorted(maildir_files(os.path.join(d, "md-" + u))) != sorted(sent[u]):
                return "%s: the Maildir differs from what was sent" % u
            if on_server(u):
                return "%s: %d messages left on the server" % (u, len(on_server(u)))
        port = ENV["MW_POP3_PORT"]
        if "http localhost " + port not in ph.lines() or "socks5 localhost " + port not in \
                ps.lines():
            return "proxy logs %r %r" % (ph.lines(), ps.lines())
    finally:
        ph.stop()
        ps.stop()


def same_words(d, url, user="v8"):
    """The loop's exit status and message against the blocking engine's."""
    lrc, _, lerr, _ = pop3s(d, url, user=user)
    brc, _, berr, _ = pop3s(d, url, user=user, engine="blocking")
    if lrc != brc or lerr != berr:
        return "loop: exit %d %r; blocking: exit %d %r" % (lrc, lerr, brc, berr)
    return None


@case("on the loop, credentials refused or missing (SOCKS5, HTTP 407): the blocking words "
      "and exit 77, the password never printed")
def credentials(d):
    px = Proxy(d, "--auth", "alice:s3cret")
    try:
        for url in ("socks5h://alice:wrong-pw@127.0.0.1:%d" % px.port,
                    "socks5h://127.0.0.1:%d" % px.port, "http://127.0.0.1:%d" % px.port,
                    "http://alice:wrong-pw@127.0.0.1:%d" % px.port):
            why = same_words(d, url)
            if why:
                return url + ": " + why
        rc, out, err, _ = pop3s(d, "socks5h://alice:wrong-pw@127.0.0.1:%d" % px.port)
        if rc != 77 or "refused the user name or password" not in err or "wrong-pw" in err:
            return "bad pair: exit %d: %s" % (rc, err)
    finally:
        px.stop()


@case("on the loop, a refused destination and an answer that is no proxy protocol: the "
      "blocking words")
def refused_and_garbage(d):
    pr = Proxy(d, "--refuse")
    pg = Proxy(d, "--garbage")
    try:
        for url, words in (("socks5h://127.0.0.1:%d" % pr.port, "connection refused"),
                           ("http://127.0.0.1:%d" % pr.port, "502 Bad Gateway"),
                           ("socks5h://127.0.0.1:%d" % pg.port, "not a SOCKS5 reply"),
                           ("http://127.0.0.1:%d" % pg.port, "not an HTTP proxy")):
            why = same_words(d, url)
            rc, out, err, _ = pop3s(d, url)
            if why or words not in err or rc == 0:
                return "%s: %s %s" % (url, why, err)
    finally:
        pr.stop()
        pg.stop()


@case("on the loop, an unreachable proxy and a bad proxy URL are named as such; a fetch "
      "through a refusing proxy deletes nothing")
def unreachable(d):
    from fetch_common import make_message, on_server, put, reset_mailbox
    px = Proxy(d)
    port = px.port
    px.stop()
    rc, out, err, _ = pop3s(d, "socks5h://127.0.0.1:%d" % port)
    if rc != 69 or "proxy: cannot connect to 127.0.0.1 port %d" % port not in err:
        return "unreachable: exit %d: %s" % (rc, err)
    why = same_words(d, "ftp://127.0.0.1:1")
    rc, out, err, _ = pop3s(d, "ftp://127.0.0.1:1")
    if why or rc != 64 or "socks5://, socks5h:// or http://" not in err:
        return "bad URL: exit %d: %s %s" % (rc, err, why)
    pr = Proxy(d, "--refuse")
    try:
        reset_mailbox("v3")
        msgs = [make_message("v3", size=100)]
        put("v3", msgs)
        cfg = config(d, [("v3", "socks5h://127.0.0.1:%d" % pr.port)])
        rc, out, err, _ = run(["fetch", "--config", cfg, "--all", "--jobs", "2"], "v3", d=d)
        if rc == 0 or "could not connect to localhost port" not in err + out:
            return "fetch: exit %d: %s %s" % (rc, out[-300:], err)
        if on_server("v3") != msgs:
            return "fetch through a refusing proxy changed the server mailbox"
    finally:
        pr.stop()


def main():
    with tempfile.TemporaryDirectory() as d:
        return taplib.run_cases(cases, bool(ENV.get("MW_POP3S_PORT")), lambda fn: fn(d))


if __name__ == "__main__":
    sys.exit(main())
