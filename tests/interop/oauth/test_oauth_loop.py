#!/usr/bin/env python3
"""`mailwire fetch --jobs 2` on the loop engine: an OAuth account's token
refresh does not stall the loop's other session (cli/token_async.c,
src/loop/ltoken.c).  Prints TAP.

usage: test_oauth_loop.py MAILWIRE

w1 logs in (device flow, tests/servers/oauth/approve.py); its store then
says the access token expired, so the fetch must refresh it, and its token
URL is a holding forwarder: the refresh request is held until w2's whole
session (login, RETR, DELE, QUIT: w2's server mailbox empty) is over, then
passed to the provider.  w2 (a password account on the first Dovecot) is
reached through a TCP forwarder that relays nothing from the server until
w1's refresh request has arrived, so w2 runs only while w1's refresh is
pending: the order is forced by events, not time.  A fetch whose loop
waited in the refresh would hold w2 too, and the forwarder would let the
refresh go only at its bound ("released by the bound": not ok).

Users: w1, w2 (tests/servers/README.md "Users").  Skips as test_oauth.py
does when the OAuth servers are not there.
"""
import glob
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MW = os.path.abspath(sys.argv[1])
E = os.environ
BOUND = 120.0  # generous bounds on waits for events, never a measurement
n_test = 0
failed = 0


def tap(ok, name, *diag, skip=None):
    global n_test, failed
    n_test += 1
    print(("ok" if ok else "not ok") + " %d - %s" % (n_test, name) + (" # SKIP " + skip if skip else ""))
    if not ok:
        failed += 1
        for d in diag:
            for line in str(d).splitlines()[:40]:
                print("# " + line)
    sys.stdout.flush()


T = tempfile.mkdtemp(prefix="mw-oauth-loop-")
HOME = os.path.join(T, "home")
DATA = os.path.join(T, "data")
os.makedirs(HOME)
CFG = os.path.join(T, "config")
ENV = dict(E, HOME=HOME, XDG_DATA_HOME=DATA, XDG_STATE_HOME=os.path.join(T, "state"),
           XDG_CONFIG_HOME=os.path.join(T, "cfg"))
ENV.pop("MAILWIRE_PASSWORD", None)
CA = E.get("MW_CA_FILE", "")
UID, GID = 65534, 65534


def wait_for(cond, bound=BOUND, step=0.05):
    end = time.monotonic() + bound
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def mailbox(user):
    return os.path.join(E["MW_MAILDIR_ROOT"], user, "Maildir")


def server_count(user):
    return sum(len(glob.glob(os.path.join(mailbox(user), s, "*"))) for s in ("new", "cur"))


def put(user, msgs):
    for sub in ("new", "cur", "tmp"):
        for f in glob.glob(os.path.join(mailbox(user), sub, "*")):
            os.unlink(f)
    for i, m in enumerate(msgs):
        # S= the file's size, W= the size with CRLF line ends (RETR's).
        name = "%d.M%dP%d.tokloop,S=%d,W=%d:2," % (1700000000 + i, i, os.getpid(), len(m),
                                                   len(m) + m.count(b"\n"))
        p = os.path.join(mailbox(user), "cur", name)
        with open(p, "wb") as f:
            f.write(m)
        os.chown(p, UID, GID)


def local_files(path):
    out = []
    for sub in ("new", "cur"):
        for f in sorted(glob.glob(os.path.join(path, sub, "*"))):
            with open(f, "rb") as fh:
                out.append(fh.read())
    return out


def config(token_url):
    iss = E["MW_OAUTH_ISSUER"]
    text = """
account w1
host 127.0.0.1
port %s
tls implicit
user w1
cafile %s
oauth_provider custom
oauth_client_id mailwire
oauth_device_url %s/device/auth
oauth_auth_url %s/auth
oauth_token_url %s
oauth_revoke_url %s/token/revocation
oauth_scope "openid offline_access mail"
delivery maildir %s

account w2
host 127.0.0.1
port %d
tls implicit
user w2
password pw-w2
cafile %s
delivery maildir %s
""" % (E["MW_OAUTH_POP3S_PORT"], CA, iss, iss, token_url, iss, os.path.join(T, "md-w1"),
       W2FWD.port, CA, os.path.join(T, "md-w2"))
    with open(CFG, "w") as f:
        f.write(text)
    os.chmod(CFG, 0o600)


def login(user):
    args = [MW, "oauth", "login", "--config", CFG, "--json", "--device", user]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    first = p.stdout.readline().decode()
    try:
        ev = json.loads(first)
    except ValueError:
        out, err = p.communicate(timeout=120)
        return "no device prompt: %s %s %s" % (first, out.decode(), err.decode())
    ap = subprocess.run([sys.executable, E["MW_OAUTH_APPROVE"], "--ca", CA, "--user", user, "device",
                         ev["verification_uri"], ev["user_code"]], capture_output=True, timeout=120)
    out, err = p.communicate(timeout=300)
    if p.returncode != 0:
        return "login exit %d: %s %s %s" % (p.returncode, out.decode(), err.decode(), ap.stdout.decode())
    return None


def store_path(user):
    return os.path.join(DATA, "mailwire", "oauth", "%s_mailwire.json" % user)


def expire_store(user):
    """The store says the access token expired: the next use refreshes."""
    p = store_path(user)
    with open(p) as f:
        s = json.load(f)
    now = int(time.time())
    s["expires_at"], s["obtained_at"] = now - 60, now - 3660
    with open(p + ".new", "w") as f:
        json.dump(s, f)
    os.chmod(p + ".new", 0o600)
    os.rename(p + ".new", p)
    return [v for v in (s.get("access_token"), s.get("refresh_token")) if v]


class Gate:
    """w2's way to the first Dovecot's POP3S: nothing from the server is
    relayed before `opened` is set (w1's refresh request arrived)."""

    def __init__(self, target, opened):
        self.target, self.opened = target, opened
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(s, c, True), daemon=True).start()

    def pump(self, src, dst, from_server):
        try:
            while True:
                d = src.recv(16384)
                if not d:
                    break
                if from_server:
                    self.opened.wait(BOUND)
                dst.sendall(d)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.ls.close()


class Holder(http.server.BaseHTTPRequestHandler):
    """w1's token URL: each POST is held until `release` is set, then passed
    to the provider's token endpoint and its answer given back."""
    state = None

    def log_message(self, *a):
        pass

    def do_POST(self):
        st = Holder.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        st["asked"] += 1
        st["asked_ev"].set()
        st["release"].wait(BOUND)
        req = urllib.request.Request(E["MW_OAUTH_ISSUER"] + "/token", data=body, method="POST")
        for k in ("Content-Type", "Authorization", "Accept"):
            if self.headers.get(k):
                req.add_header(k, self.headers[k])
        ctx = ssl.create_default_context(cafile=CA)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=BOUND) as r:
                code, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            code, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "application/json")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)


def holder_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Holder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(E["MW_CERT_DIR"], "good.pem"),
                        os.path.join(E["MW_CERT_DIR"], "good.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


W2FWD = None


def run():
    global W2FWD
    asked = threading.Event()
    release = threading.Event()
    Holder.state = {"asked": 0, "asked_ev": asked, "release": release, "released_by": None}
    W2FWD = Gate(int(E["MW_POP3S_PORT"]), asked)
    srv = holder_server()
    config(E["MW_OAUTH_ISSUER"] + "/token")
    why = login("w1")
    tap(not why, "w1 logs in (device flow)", why or "")
    if why:
        return
    secrets = expire_store("w1")
    config("https://127.0.0.1:%d/token" % srv.server_address[1])
    want1 = [("From: a@test.domain\nSubject: w1 %d\n\nbody %d\n" % (i, i)).encode() for i in range(3)]
    want2 = [("From: b@test.domain\nSubject: w2 %d\n\nbody %d\n" % (i, i)).encode() for i in range(5)]
    put("w1", want1)
    put("w2", want2)
    for u in ("w1", "w2"):
        shutil.rmtree(os.path.join(T, "md-" + u), ignore_errors=True)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(T, "md-" + u, sub))

    # w2 done (DELE applied at QUIT: its server mailbox empty) releases w1's refresh.
    def watch():
        done = asked.wait(BOUND) and wait_for(lambda: server_count("w2") == 0)
        Holder.state["released_by"] = "w2 done" if done else "the bound"
        release.set()
    threading.Thread(target=watch, daemon=True).start()

    tr = os.path.join(T, "fetch.trace")
    elog = os.path.join(T, "fetch.engine")
    env = dict(ENV, MAILWIRE_ENGINE="loop", MAILWIRE_ENGINE_LOG=elog)
    r = subprocess.run([MW, "fetch", "--config", CFG, "--jobs", "2", "--trace", tr, "--json", "w1", "w2"],
                       capture_output=True, timeout=600, env=env)
    release.set()
    trace = open(tr, "rb").read() if os.path.exists(tr) else b""
    noted = open(elog).read().split() if os.path.exists(elog) else []
    tap(r.returncode == 0 and noted.count("fetch") == 2,
        "fetch --jobs 2 of w1 (OAuth, refresh due) and w2 on the loop engine: exit 0, two loop sessions",
        "exit %d %s %s engine %r" % (r.returncode, r.stdout.decode(), r.stderr.decode(), noted))
    st = Holder.state
    tap(st["asked"] == 1 and st["released_by"] == "w2 done",
        "w1's refresh was held until w2's whole session was over (the loop did not wait for it)",
        "refresh requests %d, released by %s" % (st["asked"], st["released_by"]))
    got1, got2 = local_files(os.path.join(T, "md-w1")), local_files(os.path.join(T, "md-w2"))
    tap(sorted(got1) == sorted(want1) and sorted(got2) == sorted(want2),
        "both accounts fetched whole, byte-identical, after the refresh",
        "w1 %d/%d, w2 %d/%d" % (len(got1), len(want1), len(got2), len(want2)))
    tap(b"waiting for the token provider" in trace and b"AUTH XOAUTH2" in trace,
        "the trace says w1 waited for its token provider, then logged in with XOAUTH2",
        trace.decode(errors="replace")[-1500:])
    with open(store_path("w1")) as f:
        s = json.load(f)
    fresh = [v for v in (s.get("access_token"), s.get("refresh_token")) if v]
    texts = [trace, r.stdout, r.stderr]
    leak = any(x.encode() in t for t in texts for x in secrets + fresh)
    tap(not leak, "no token (old or refreshed) in the trace or the JSON output")
    srv.shutdown()
    W2FWD.close()


def main():
    skip = E.get("MW_OAUTH_SKIP")
    have = bool(E.get("MW_OAUTH_ISSUER"))
    if not have and not skip and not E.get("MW_OAUTH_FAILED") and not E.get("MW_POP3_PORT"):
        skip = "servers not running"
    if skip:
        print("1..1")
        tap(True, "fetch --jobs with an OAuth refresh on the loop", skip=skip)
        return 0
    if not have:
        print("1..1")
        tap(False, "fetch --jobs with an OAuth refresh on the loop",
            "the OAuth servers did not start: %s" % E.get("MW_OAUTH_FAILED", "MW_OAUTH_ISSUER unset"))
        return 1
    try:
        run()
    except Exception as e:  # a crash is a failure
        tap(False, "the test ran", "%s: %s" % (type(e).__name__, e))
    print("1..%d" % n_test)
    shutil.rmtree(T, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
