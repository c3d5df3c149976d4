#!/usr/bin/env python3
"""OAuth 2.0 end to end (tests/servers/start-oauth.sh), printing TAP.

usage: test_oauth.py MAILWIRE [SESSION_TOKEN]

`mailwire oauth login` against the real oidc-provider, the user played by
tests/servers/oauth/approve.py over HTTPS; then `send` through Postfix and
`fetch`/`pop3` from the Dovecot whose passdb introspects the tokens, with
XOAUTH2 and OAUTHBEARER; short-lived tokens outliving a 300-message fetch
(the fetch is held by a pausing forwarder until the token has expired, so
the verdict never depends on speed); a refused token refreshed once (a
clock behind the server's); a revoked grant (exit 77, "oauth login");
logout; tokens never in traces, JSON, argv or children's environments; the
provider's errors from a scripted HTTPS server (slow_down, expired_token,
HTTP 500, malformed and oversized JSON) and a bad certificate.

Users: o1..o10 (README "Users").  When the OAuth servers failed to start
(MW_OAUTH_FAILED) every case fails; when npm's registry was unreachable
(MW_OAUTH_SKIP) every case is skipped with that reason.
"""
import base64
import glob
import http.server
import json
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

MW = os.path.abspath(sys.argv[1])
SESSION_TOKEN = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
E = os.environ
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


CASES = []


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn
    return deco


# ---- environment ---------------------------------------------------------------
T = tempfile.mkdtemp(prefix="mw-oauth-")
HOME = os.path.join(T, "home")
DATA = os.path.join(T, "data")
os.makedirs(HOME)
CFG = os.path.join(T, "config")
ENV = dict(E, HOME=HOME, XDG_DATA_HOME=DATA, XDG_STATE_HOME=os.path.join(T, "state"),
           XDG_CONFIG_HOME=os.path.join(T, "cfg"))
ENV.pop("MAILWIRE_PASSWORD", None)
ISS = E.get("MW_OAUTH_ISSUER", "")
CA = E.get("MW_CA_FILE", "")
UID, GID = 65534, 65534


def account(name, user, port, tls, scope="openid offline_access mail", auth=None, extra=""):
    return """
account %s
host 127.0.0.1
port %s
tls %s
user %s
cafile %s
%soauth_provider custom
oauth_client_id mailwire
oauth_device_url %s/device/auth
oauth_auth_url %s/auth
oauth_token_url %s/token
oauth_revoke_url %s/token/revocation
oauth_scope "%s"
%s""" % (name, port, tls, user, CA, ("auth %s\n" % auth) if auth else "", ISS, ISS, ISS, ISS,
         scope, extra if "delivery" in extra else
         extra + "delivery maildir %s\n" % os.path.join(T, "md-" + name))


def write_config(extra_accounts=""):
    pop3s = E["MW_OAUTH_POP3S_PORT"]
    smtp = E["MW_OAUTH_SMTP_PORT"]
    text = ""
    text += account("o1", "o1", pop3s, "implicit")
    text += account("o1-send", "o1", smtp, "starttls", extra="from o1@test.domain\n")
    text += account("o2", "o2", E["MW_OAUTH_POP3_PORT"], "starttls", auth="OAUTHBEARER")
    text += account("o2-send", "o2", smtp, "starttls", auth="OAUTHBEARER",
                    extra="from o2@test.domain\n")
    text += account("o4", "o4", pop3s, "implicit")
    text += account("o5", "o5", pop3s, "implicit")
    text += account("o6", "o6", pop3s, "implicit")
    text += extra_accounts
    with open(CFG, "w") as f:
        f.write(text)


def mw(*args, stdin=None, timeout=300, env=None):
    return subprocess.run([MW] + list(args), input=stdin, capture_output=True,
                          timeout=timeout, env=env or ENV)


def login(acct, user, flow="device", deny=False, extra=()):
    """Runs `mailwire oauth login`, plays the user; returns (CompletedProcess-like, approve out)."""
    tr = os.path.join(T, "login-%s.trace" % acct)
    args = [MW, "oauth", "login", "--config", CFG, "--trace", tr, "--json"] + list(extra)
    args += ["--device" if flow == "device" else "--browser", acct]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    first = p.stdout.readline().decode()
    try:
        ev = json.loads(first)
    except ValueError:
        out, err = p.communicate(timeout=120)
        return (p.returncode, first + out.decode(), err.decode()), "no prompt"
    cmd = [sys.executable, E["MW_OAUTH_APPROVE"], "--ca", CA, "--user", user]
    if deny:
        cmd.append("--deny")
    if ev.get("event") == "device_code":
        cmd += ["device", ev["verification_uri"], ev["user_code"]]
    else:
        cmd += ["code", ev["url"]]
    ap = subprocess.run(cmd, capture_output=True, timeout=120)
    out, err = p.communicate(timeout=300)
    return (p.returncode, first + out.decode(), err.decode()), ap.stdout.decode() + ap.stderr.decode()


def store(user):
    p = os.path.join(DATA, "mailwire", "oauth", "%s_mailwire.json" % user)
    with open(p) as f:
        return p, json.load(f)


def claim_an_hour_left(user):
    """Makes user's token store claim an hour left (a clock behind the
    server's), written as the store is: 0600, renamed into place.  Returns
    the store's path."""
    p, s = store(user)
    now = int(time.time())
    s["expires_at"], s["obtained_at"] = now + 3600, now
    with open(p + ".new", "w") as f:
        json.dump(s, f)
    os.chmod(p + ".new", 0o600)
    os.rename(p + ".new", p)
    return p


def status(acct):
    r = mw("oauth", "status", "--config", CFG, "--json", acct)
    try:
        return json.loads(r.stdout.decode())
    except ValueError:
        return {"error": r.stdout.decode() + r.stderr.decode()}


def mailbox(user):
    return os.path.join(E["MW_MAILDIR_ROOT"], user, "Maildir")


def clear_mailbox(user):
    for sub in ("new", "cur", "tmp"):
        for f in glob.glob(os.path.join(mailbox(user), sub, "*")):
            os.unlink(f)


def put(user, msgs):
    for i, m in enumerate(msgs):
        name = "%d.M%dP%d.oauthtest,S=%d,W=%d:2," % (1700000000 + i, i, os.getpid(), len(m),
                                                       len(m) + m.count(b"\n"))
        p = os.path.join(mailbox(user), "cur", name)
        with open(p, "wb") as f:
            f.write(m)
        os.chown(p, UID, GID)


def wait_for(cond, bound=60.0, step=0.1):
    """Polls cond() until true; the bound is generous, never a measurement."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def maildir_files(path):
    out = []
    for sub in ("new", "cur"):
        for f in sorted(glob.glob(os.path.join(path, sub, "*"))):
            with open(f, "rb") as fh:
                out.append(fh.read())
    return out


def secrets_of(user):
    _, s = store(user)
    return [v for v in (s.get("access_token"), s.get("refresh_token")) if v]


def leaks(texts, secrets):
    for t in texts:
        if isinstance(t, str):
            t = t.encode()
        for s in secrets:
            if s.encode() in t:
                return True
    return False


def send_and_fetch(user, send_acct, fetch_acct, mech):
    """send through Postfix, fetch back from Dovecot; byte-identical body."""
    clear_mailbox(user)
    dest = os.path.join(T, "md-" + fetch_acct)
    shutil.rmtree(dest, ignore_errors=True)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dest, sub))
    msg = ("From: %s@test.domain\r\nTo: %s@test.domain\r\nSubject: oauth %s\r\n"
           "Date: Mon, 7 Dec 2026 06:00:00 +0000\r\n"
           "Message-ID: <%s.%d@oauth.test>\r\n\r\nline one\r\n.dot line\r\n\xe9 8bit? no: "
           "plain ascii\r\n" % (user, user, mech, mech, os.getpid())).encode("latin-1")
    msg = msg.replace(b"\xe9", b"e")
    tr_s = os.path.join(T, "send-%s.trace" % send_acct)
    r = mw("send", "--config", CFG, "--account", send_acct, "--trace", tr_s,
           "%s@test.domain" % user, stdin=msg)
    if r.returncode != 0:
        return "send exit %d: %s" % (r.returncode, r.stderr.decode())
    trace_s = open(tr_s, "rb").read()
    if ("AUTH " + mech).encode() not in trace_s:
        return "send did not use %s:\n%s" % (mech, trace_s.decode(errors="replace")[-1500:])
    if not wait_for(lambda: glob.glob(os.path.join(mailbox(user), "new", "*")), 60):
        return "Postfix did not deliver to %s" % user
    tr_f = os.path.join(T, "fetch-%s.trace" % fetch_acct)
    r = mw("fetch", "--config", CFG, "--account", fetch_acct, "--trace", tr_f, "--json")
    if r.returncode != 0:
        return "fetch exit %d: %s %s" % (r.returncode, r.stdout.decode(), r.stderr.decode())
    trace_f = open(tr_f, "rb").read()
    if ("AUTH " + mech).encode() not in trace_f:
        return "fetch did not use %s" % mech
    got = maildir_files(dest)
    if len(got) != 1:
        return "fetched %d messages, want 1" % len(got)
    want = msg.replace(b"\r\n", b"\n")
    if not got[0].endswith(want):
        return "fetched message differs:\n%r\nwant tail\n%r" % (got[0][-400:], want)
    sec = secrets_of(user)
    if leaks([trace_s, trace_f, r.stdout, r.stderr], sec):
        return "a token appears in a trace or the JSON output"
    return None


# ---- the cases ---------------------------------------------------------------------

@case("device flow login (o1): exit 0, refresh token stored 0600, status shows scope")
def t_device():
    r, ap = login("o1", "o1")
    if r[0] != 0:
        return "login exit %d\n%s\n%s\n%s" % (r[0], r[1], r[2], ap)
    p, s = store("o1")
    mode = os.stat(p).st_mode & 0o777
    if mode != 0o600:
        return "store mode %o" % mode
    if not s.get("refresh_token") or not s.get("access_token"):
        return "store lacks tokens: %s" % sorted(s)
    st = status("o1")
    if not st.get("logged_in") or "mail" not in st.get("scope", ""):
        return "status: %s" % st
    if leaks([r[1], r[2], open(os.path.join(T, "login-o1.trace")).read(), json.dumps(st)],
             secrets_of("o1")):
        return "a token appears in the login's output, trace or status"
    return None


@case("XOAUTH2: send via Postfix, fetch from Dovecot (device-flow tokens), byte-identical")
def t_xoauth2():
    return send_and_fetch("o1", "o1-send", "o1", "XOAUTH2")


@case("PKCE + loopback redirect login (o2): exit 0, tokens stored")
def t_pkce():
    r, ap = login("o2", "o2", flow="code")
    if r[0] != 0:
        return "login exit %d\n%s\n%s\n%s" % (r[0], r[1], r[2], ap)
    if "approved" not in ap:
        return "approve.py: " + ap
    _, s = store("o2")
    if not s.get("refresh_token"):
        return "no refresh token after the PKCE flow"
    return None


@case("OAUTHBEARER: send via Postfix, fetch over STLS (PKCE tokens), byte-identical")
def t_oauthbearer():
    return send_and_fetch("o2", "o2-send", "o2", "OAUTHBEARER")


@case("fetch --jobs 2 of two OAuth accounts (XOAUTH2 and OAUTHBEARER): all messages, byte-identical")
def t_jobs():
    want = {}
    for u in ("o1", "o2"):
        clear_mailbox(u)
        want[u] = [("From: j@test.domain\nSubject: %s job %d\n\nbody %d\n" % (u, i, i)).encode()
                   for i in range(20)]
        put(u, want[u])
        shutil.rmtree(os.path.join(T, "md-" + u), ignore_errors=True)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(T, "md-" + u, sub))
    tr = os.path.join(T, "jobs.trace")
    # On the event loop, no blocking fallback: the token provider is the job's.
    elog = os.path.join(T, "jobs.engine")
    env = dict(ENV, MAILWIRE_ENGINE="loop", MAILWIRE_ENGINE_LOG=elog)
    r = mw("fetch", "--config", CFG, "--jobs", "2", "--trace", tr, "--json", "o1", "o2", env=env)
    if r.returncode != 0:
        return "fetch exit %d: %s %s" % (r.returncode, r.stdout.decode(), r.stderr.decode())
    noted = open(elog).read().split() if os.path.exists(elog) else []
    if noted.count("fetch") != 2:
        return "the loop engine log says %r, want two fetch sessions" % noted
    for u in ("o1", "o2"):
        got = maildir_files(os.path.join(T, "md-" + u))
        if sorted(got) != sorted(want[u]):
            return "%s: fetched %d of %d" % (u, len(got), len(want[u]))
    trace = open(tr, "rb").read()
    if b"AUTH XOAUTH2" not in trace or b"AUTH OAUTHBEARER" not in trace:
        return "not both mechanisms in the trace"
    if leaks([trace, r.stdout, r.stderr], secrets_of("o1") + secrets_of("o2")):
        return "a token appears in the trace or the JSON output"
    return None


@case("the browser step denied: exit 77, access_denied named")
def t_denied():
    r, ap = login("o6", "o6", flow="code", deny=True)
    if r[0] != 77 or "access_denied" not in r[2]:
        return "exit %d\n%s\n%s" % (r[0], r[2], ap)
    return None


@case("device code denied: exit 77, access_denied named")
def t_device_denied():
    r, ap = login("o6", "o6", deny=True)
    if r[0] != 77 or "access_denied" not in r[2]:
        return "exit %d\n%s\n%s" % (r[0], r[2], ap)
    return None


class Pauser:
    """TCP forwarder to the OAuth POP3S port that stops relaying the server's
    bytes after `after` of them until release() (the fetch is then held, its
    token expires meanwhile)."""

    def __init__(self, target, after):
        self.target, self.after = target, after
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.paused = threading.Event()
        self.go = threading.Event()
        self.sent = 0
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
                if from_server and self.sent >= self.after and not self.go.is_set():
                    self.paused.set()
                    self.go.wait(600)
                dst.sendall(d)
                if from_server:
                    self.sent += len(d)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        self.go.set()

    def close(self):
        self.go.set()
        self.ls.close()


@case("5 s access tokens: a 300-message fetch held past the token's expiry completes; one refresh")
def t_short():
    pz = Pauser(int(E["MW_OAUTH_POP3S_PORT"]), 200000)
    try:
        write_config(account("o3", "o3", pz.port, "implicit",
                             scope="openid offline_access mail short"))
        r, ap = login("o3", "o3")
        if r[0] != 0:
            return "login exit %d\n%s\n%s" % (r[0], r[2], ap)
        st = status("o3")
        if not (0 < st.get("expires_in", 0) <= int(E["MW_OAUTH_SHORT_TTL"])):
            return "login token is not short-lived: %s" % st
        clear_mailbox("o3")
        msgs = [("From: a@test.domain\nSubject: m%d\n\n" % i + ("body %d " % i) * 150 + "\n").encode()
                for i in range(300)]
        put("o3", msgs)
        # The login's token must have expired: the fetch has to refresh.
        if not wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5):
            return "login token never expired: %s" % status("o3")
        dest = os.path.join(T, "md-o3")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub), exist_ok=True)
        tr = os.path.join(T, "fetch-o3.trace")
        p = subprocess.Popen([MW, "fetch", "--config", CFG, "--account", "o3",
                              "--trace", tr, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=ENV)
        if not pz.paused.wait(120):
            p.kill()
            return "the fetch never reached the pause point"
        # Held mid-fetch until the refreshed token has expired too.
        ok = wait_for(lambda: status("o3").get("refreshes") == 1 and
                      status("o3").get("expires_in", 1) < 0, 120, 0.5)
        held = len(maildir_files(dest))
        pz.release()
        out, err = p.communicate(timeout=300)
        if not ok:
            return "the refreshed token did not expire while the fetch was held: %s" % status("o3")
        if p.returncode != 0:
            return "fetch exit %d: %s %s" % (p.returncode, out.decode(), err.decode())
        got = maildir_files(dest)
        if sorted(got) != sorted(msgs):
            return "fetched %d messages (%d before the pause), want the 300 put" % (len(got), held)
        trace = open(tr, "rb").read()
        n = trace.count(b"grant_type=refresh_token")
        if n != 1:
            return "%d refreshes in the trace, want 1" % n
        if held >= 300:
            return "all messages were stored before the pause: the token did not expire mid-fetch"
        if leaks([trace, out, err], secrets_of("o3")):
            return "a token appears in the trace or the JSON output"
        return None
    finally:
        pz.close()


@case("server refuses an unexpired-looking token (clock behind): refreshed once, pop3 works")
def t_skew():
    # o3's token expired at the provider (the previous case); make the store
    # claim an hour left, as a clock behind the server's would.
    claim_an_hour_left("o3")
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short"))
    tr = os.path.join(T, "pop3-o3.trace")
    r = mw("pop3", "--config", CFG, "--account", "o3", "--trace", tr, "stat")
    trace = open(tr, "rb").read()
    if r.returncode != 0:
        return "pop3 exit %d: %s\n%s" % (r.returncode, r.stderr.decode(), trace.decode()[-2000:])
    if b"refused the access token" not in trace or trace.count(b"grant_type=refresh_token") != 1:
        return "no single refresh after the refusal:\n" + trace.decode()[-2000:]
    return None


@case("send on the loop engine, token refused (clock behind): refreshed once in a worker thread, AUTH again on the same connection, sent")
def t_skew_send_loop():
    # o3's token is dead at the provider (the previous cases); the store
    # claims an hour left, so the first AUTH must fail.
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short") +
                 account("o3-send", "o3", E["MW_OAUTH_SMTP_PORT"], "starttls",
                         scope="openid offline_access mail short",
                         extra="from o3@test.domain\n"))
    ok = wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5)
    if not ok:
        write_config()
        return "o3's token never expired: %s" % status("o3")
    claim_an_hour_left("o3")
    tr = os.path.join(T, "send-loop-o3.trace")
    elog = os.path.join(T, "send-loop.engine")
    env = dict(ENV, MAILWIRE_ENGINE="loop", MAILWIRE_ENGINE_LOG=elog)
    msg = (b"From: o3@test.domain\r\nTo: o3@test.domain\r\nSubject: loop refresh\r\n\r\n"
           b"sent after a refresh\r\n")
    r = mw("send", "--config", CFG, "--account", "o3-send", "--trace", tr, "o3@test.domain",
           stdin=msg, env=env)
    write_config()
    trace = open(tr, "rb").read() if os.path.exists(tr) else b""
    if r.returncode != 0:
        return "send exit %d: %s\n%s" % (r.returncode, r.stderr.decode(), trace.decode()[-2000:])
    noted = open(elog).read().split() if os.path.exists(elog) else []
    # One job: the token refused, refreshed off the loop's thread
    # (cli/token_async.c), AUTH again on the same connection.
    if noted.count("send") != 1:
        return "the loop engine log says %r, want one send job" % noted
    if trace.count(b"grant_type=refresh_token") != 1 or trace.count(b"C: AUTH XOAUTH2") != 2:
        return "want one refresh and two AUTH:\n" + trace.decode()[-2000:]
    if leaks([trace, r.stdout, r.stderr], secrets_of("o3")):
        return "a token in the trace or the output"
    return None


@case("library session, token_fn = mw_oauth_token_cb: refused token -> callback refreshes, AUTH again")
def t_session_cb():
    if not SESSION_TOKEN:
        return "session_token helper not given"
    # o3's last token (5 s, from the previous cases) must be dead at the
    # provider; then the store is made to claim an hour left.
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short"))
    if not wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5):
        return "o3's token never expired: %s" % status("o3")
    p = claim_an_hour_left("o3")
    tr = os.path.join(T, "session-cb.trace")
    r = subprocess.run([SESSION_TOKEN, p, ISS + "/token", CA, E["MW_OAUTH_POP3S_PORT"], "o3",
                        "XOAUTH2", tr, "pop3"], capture_output=True, timeout=300, env=ENV)
    out = r.stdout.decode()
    trace = open(tr).read() if os.path.exists(tr) else ""
    write_config()
    if r.returncode != 0 or not out.startswith("ok "):
        return "exit %d: %s %s\n%s" % (r.returncode, out, r.stderr.decode(), trace[-2000:])
    if trace.count("AUTH XOAUTH2") != 2 or trace.count("grant_type=refresh_token") != 1:
        return "want 2 AUTH and 1 refresh in one session:\n" + trace[-2000:]
    if leaks([trace, out], secrets_of("o3")):
        return "a token in the trace"
    return None


@case("library SMTP session, token_fn: refused token (Postfix via Dovecot) -> refreshed, AUTH again")
def t_session_cb_smtp():
    if not SESSION_TOKEN:
        return "session_token helper not given"
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short"))
    # The token of the previous case (5 s) must be dead at the provider.
    ok = wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5)
    write_config()
    if not ok:
        return "o3's token never expired: %s" % status("o3")
    p = claim_an_hour_left("o3")
    tr = os.path.join(T, "session-cb-smtp.trace")
    r = subprocess.run([SESSION_TOKEN, p, ISS + "/token", CA, E["MW_OAUTH_SMTP_PORT"], "o3",
                        "OAUTHBEARER", tr, "smtp"], capture_output=True, timeout=300, env=ENV)
    out = r.stdout.decode()
    trace = open(tr).read() if os.path.exists(tr) else ""
    if r.returncode != 0 or not out.startswith("ok smtp"):
        return "exit %d: %s %s\n%s" % (r.returncode, out, r.stderr.decode(), trace[-2000:])
    if trace.count("AUTH OAUTHBEARER") != 2 or trace.count("grant_type=refresh_token") != 1:
        return "want 2 AUTH and 1 refresh on one connection:\n" + trace[-2000:]
    if leaks([trace, out], secrets_of("o3")):
        return "a token in the trace"
    return None


@case("loop SMTP job, mw_loop_smtp_opts.token_fn: refused token (Postfix via Dovecot) -> refreshed, AUTH again")
def t_loop_smtp_cb():
    if not SESSION_TOKEN:
        return "session_token helper not given"
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short"))
    # The token of the previous case (5 s) must be dead at the provider.
    ok = wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5)
    write_config()
    if not ok:
        return "o3's token never expired: %s" % status("o3")
    p = claim_an_hour_left("o3")
    tr = os.path.join(T, "loop-smtp-cb.trace")
    r = subprocess.run([SESSION_TOKEN, p, ISS + "/token", CA, E["MW_OAUTH_SMTP_PORT"], "o3",
                        "XOAUTH2", tr, "loop-smtp"], capture_output=True, timeout=300, env=ENV)
    out = r.stdout.decode()
    trace = open(tr).read() if os.path.exists(tr) else ""
    if r.returncode != 0 or not out.startswith("ok loop-smtp"):
        return "exit %d: %s %s\n%s" % (r.returncode, out, r.stderr.decode(), trace[-2000:])
    # "C: ": the EHLO reply's "250-AUTH XOAUTH2 OAUTHBEARER" is not counted
    if trace.count("C: AUTH XOAUTH2") != 2 or trace.count("grant_type=refresh_token") != 1 \
            or trace.count("C: STARTTLS") != 1:
        return "want 2 AUTH and 1 refresh on one connection:\n" + trace[-2000:]
    if "again with a new token" not in trace:
        return "no trace of the refresh:\n" + trace[-2000:]
    if leaks([trace, out], secrets_of("o3")):
        return "a token in the trace"
    return None


@case("mw_fetch_account (the POP3 machine), token_fn: refused token -> refreshed once, AUTH again")
def t_fetch_cb():
    if not SESSION_TOKEN:
        return "session_token helper not given"
    write_config(account("o3", "o3", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         scope="openid offline_access mail short"))
    # The token of the previous case (5 s) must be dead at the provider.
    ok = wait_for(lambda: status("o3").get("expires_in", 1) < 0, 120, 0.5)
    write_config()
    if not ok:
        return "o3's token never expired: %s" % status("o3")
    p = claim_an_hour_left("o3")
    tr = os.path.join(T, "fetch-cb.trace")
    r = subprocess.run([SESSION_TOKEN, p, ISS + "/token", CA, E["MW_OAUTH_POP3S_PORT"], "o3",
                        "XOAUTH2", tr, "fetch"], capture_output=True, timeout=300, env=ENV)
    out = r.stdout.decode()
    trace = open(tr).read() if os.path.exists(tr) else ""
    if r.returncode != 0 or not out.startswith("ok fetched "):
        return "exit %d: %s %s\n%s" % (r.returncode, out, r.stderr.decode(), trace[-2000:])
    if trace.count("AUTH XOAUTH2") != 2 or trace.count("grant_type=refresh_token") != 1:
        return "want 2 AUTH and 1 refresh in one fetch:\n" + trace[-2000:]
    if "LIST" not in trace or leaks([trace, out], secrets_of("o3")):
        return "no LIST after the login, or a token in the trace:\n" + trace[-2000:]
    return None


@case("4 processes needing a refresh at once share one rotating refresh token: all log in, 1 refresh")
def t_concurrent():
    write_config(account("o10", "o10", E["MW_OAUTH_POP3S_PORT"], "implicit"))
    try:
        r, ap = login("o10", "o10")
        if r[0] != 0:
            return "login exit %d\n%s\n%s" % (r[0], r[2], ap)
        p, s = store("o10")
        now = int(time.time())
        s["expires_at"], s["obtained_at"] = now - 10, now - 3610  # stale: refresh due
        with open(p + ".new", "w") as f:
            json.dump(s, f)
        os.chmod(p + ".new", 0o600)
        os.rename(p + ".new", p)
        procs = [subprocess.Popen([MW, "pop3", "--config", CFG, "--account", "o10", "stat"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
                 for _ in range(4)]
        outs = [(q.wait(timeout=300), q.stderr.read().decode()) for q in procs]
        for q in procs:
            q.stdout.close()
            q.stderr.close()
        bad = [o for o in outs if o[0] != 0]
        if bad:
            return "failed: %s" % bad
        # The new access token lives an hour: whoever came second found it.
        if status("o10").get("refreshes") != 1:
            return "refreshes: %s" % status("o10")
        return None
    finally:
        write_config()


@case("refresh token revoked at the provider: fetch exits 77 and says to run oauth login")
def t_revoked():
    r, ap = login("o4", "o4")
    if r[0] != 0:
        return "login exit %d\n%s\n%s" % (r[0], r[2], ap)
    _, s = store("o4")
    # The provider's revocation endpoint, as an administrator would (RFC 7009).
    ctx = ssl.create_default_context(cafile=CA)
    import urllib.request
    import urllib.parse
    body = urllib.parse.urlencode({"token": s["refresh_token"], "client_id": "mailwire",
                                   "token_type_hint": "refresh_token"}).encode()
    urllib.request.urlopen(urllib.request.Request(ISS + "/token/revocation", data=body),
                           context=ctx, timeout=60).read()
    dest = os.path.join(T, "md-o4")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    r = mw("fetch", "--config", CFG, "o4")
    err = r.stderr.decode()
    if r.returncode != 77 or "oauth login" not in err or "invalid_grant" not in err:
        return "exit %d: %s" % (r.returncode, err)
    return None


@case("logout revokes at the provider: the old access token no longer logs in; status 77")
def t_logout():
    r, ap = login("o5", "o5")
    if r[0] != 0:
        return "login exit %d\n%s" % (r[0], r[2])
    _, s = store("o5")
    at = s["access_token"]
    r = mw("oauth", "logout", "--config", CFG, "o5")
    if r.returncode != 0:
        return "logout exit %d: %s" % (r.returncode, r.stderr.decode())
    if os.path.exists(os.path.join(DATA, "mailwire", "oauth", "o5_mailwire.json")):
        return "store still there"
    ctx = ssl.create_default_context(cafile=CA)
    p = poplib.POP3_SSL("127.0.0.1", int(E["MW_OAUTH_POP3S_PORT"]), context=ctx, timeout=60)
    ir = base64.b64encode(("user=o5\x01auth=Bearer %s\x01\x01" % at).encode()).decode()
    try:
        resp = p._shortcmd("AUTH XOAUTH2 " + ir)
        if resp.startswith(b"+ "):
            resp = p._shortcmd("")
        ok = resp.startswith(b"+OK")
    except poplib.error_proto:
        ok = False
    p.close()
    if ok:
        return "the revoked access token still logs in"
    r = mw("oauth", "status", "--config", CFG, "o5")
    if r.returncode != 77:
        return "status after logout: exit %d" % r.returncode
    return None


@case("refresh token in a secret-store command: not in the file; refresh and logout use it")
def t_secret_cmd():
    sec = os.path.join(T, "secret-o9")
    extra = ('oauth_secret_store "umask 077; cat > %s"\n'
             'oauth_secret_lookup "cat %s"\n' % (sec, sec))
    write_config(account("o9", "o9", E["MW_OAUTH_POP3S_PORT"], "implicit", extra=extra))
    try:
        r, ap = login("o9", "o9")
        if r[0] != 0:
            return "login exit %d\n%s\n%s" % (r[0], r[2], ap)
        p, s = store("o9")
        rt1 = open(sec).read().strip()
        if "refresh_token" in s or s.get("refresh_token_in") != "command" or len(rt1) < 10:
            return "store file: %s; secret file %d bytes" % (sorted(s), len(rt1))
        now = int(time.time())
        s["expires_at"], s["obtained_at"] = now - 10, now - 20
        with open(p + ".new", "w") as f:
            json.dump(s, f)
        os.chmod(p + ".new", 0o600)
        os.rename(p + ".new", p)
        tr = os.path.join(T, "pop3-o9.trace")
        r = mw("pop3", "--config", CFG, "--account", "o9", "--trace", tr, "stat")
        trace = open(tr).read()
        if r.returncode != 0 or trace.count("grant_type=refresh_token") != 1:
            return "pop3 exit %d: %s\n%s" % (r.returncode, r.stderr.decode(), trace[-1500:])
        rt2 = open(sec).read().strip()
        if rt2 == rt1:
            return "the rotated refresh token was not handed to the store command"
        if rt1 in trace or rt2 in trace:
            return "a refresh token in the trace"
        r = mw("oauth", "logout", "--config", CFG, "o9")
        if r.returncode != 0:
            return "logout exit %d: %s" % (r.returncode, r.stderr.decode())
        return None
    finally:
        write_config()


@case("tokens never in argv or environment of children (MDA), nor in JSON output")
def t_children():
    clear_mailbox("o1")
    put("o1", [b"From: x@test.domain\nSubject: child\n\nbody\n"])
    dump = os.path.join(T, "child-dump")
    mda = "sh -c 'cat >/dev/null; { ps -eo args; cat /proc/$$/environ; } >> %s'" % dump
    write_config(account("o1-mda", "o1", E["MW_OAUTH_POP3S_PORT"], "implicit",
                         extra="delivery mda %s\n" % mda))
    r = mw("fetch", "--config", CFG, "--account", "o1-mda", "--json")
    write_config()
    if r.returncode != 0:
        return "fetch exit %d: %s" % (r.returncode, r.stderr.decode())
    seen = open(dump, "rb").read() if os.path.exists(dump) else b""
    if b"mailwire" not in seen and MW.encode() not in seen:
        return "the MDA's dump did not see the running mailwire (test broken?)"
    if leaks([seen, r.stdout, r.stderr], secrets_of("o1")):
        return "a token appears in a child's argv/environment or the output"
    return None


@case("token endpoint with a self-signed certificate: exit 77, certificate named")
def t_badcert():
    bad = "https://127.0.0.1:%s" % E["MW_OAUTH_BADCERT_PORT"]
    write_config("""
account o7
host 127.0.0.1
port %s
tls implicit
user o7
cafile %s
oauth_client_id mailwire
oauth_device_url %s/device/auth
oauth_token_url %s/token
""" % (E["MW_OAUTH_POP3S_PORT"], CA, bad, bad))
    r = mw("oauth", "login", "--config", CFG, "o7")
    if r.returncode != 77 or "certificate" not in r.stderr.decode():
        return "exit %d: %s" % (r.returncode, r.stderr.decode())
    return None


# ---- a scripted provider for what the real one does not do -----------------------------

class Scripted:
    """HTTPS server (test CA certificate) answering /device and /token from a
    script: a list of (status, body) for /token polls; records poll times."""

    def __init__(self, token_answers, device_body=None):
        self.answers = list(token_answers)
        self.polls = []
        outer = self
        dev = device_body or json.dumps({"device_code": "dc", "user_code": "UC-1",
                                         "verification_uri": "https://127.0.0.1/x",
                                         "expires_in": 120, "interval": 1})

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                if self.path == "/device":
                    st, body = 200, dev
                else:
                    outer.polls.append(time.monotonic())
                    st, body = outer.answers.pop(0) if outer.answers else (500, "{}")
                b = body.encode() if isinstance(body, str) else body
                self.send_response(st)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(E["MW_CERT_DIR"], "good.pem"),
                            os.path.join(E["MW_CERT_DIR"], "good.key"))
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def scripted_login(answers, device_body=None, args=()):
    s = Scripted(answers, device_body)
    try:
        write_config("""
account o8
host 127.0.0.1
port %s
tls implicit
user o8
cafile %s
oauth_client_id mailwire
oauth_device_url %s/device
oauth_token_url %s/token
""" % (E["MW_OAUTH_POP3S_PORT"], CA, s.url, s.url))
        tr = os.path.join(T, "scripted.trace")
        r = mw("oauth", "login", "--config", CFG, "--trace", tr, *args, "o8", timeout=300)
        return r, s.polls, open(tr).read() if os.path.exists(tr) else ""
    finally:
        s.close()


GOOD = json.dumps({"access_token": "AT-scripted-secret", "token_type": "Bearer",
                   "expires_in": 60, "refresh_token": "RT-scripted-secret"})


@case("scripted: authorization_pending then slow_down: the poll interval grows by 5 s; login ok")
def t_slowdown():
    pend = (400, json.dumps({"error": "authorization_pending"}))
    slow = (400, json.dumps({"error": "slow_down"}))
    r, polls, trace = scripted_login([pend, slow, pend, (200, GOOD)])
    if r.returncode != 0:
        return "exit %d: %s" % (r.returncode, r.stderr.decode())
    if len(polls) != 4:
        return "%d polls, want 4" % len(polls)
    # interval 1 s, then 6 s after slow_down: lower bounds only.
    if polls[2] - polls[1] < 5.5 or polls[3] - polls[2] < 5.5:
        return "poll gaps after slow_down: %s" % [round(b - a, 2) for a, b in zip(polls, polls[1:])]
    if "AT-scripted-secret" in trace or "RT-scripted-secret" in trace:
        return "a token in the trace"
    return None


def expect(answers, code, words, device_body=None):
    r, _, _ = scripted_login(answers, device_body)
    err = r.stderr.decode()
    if r.returncode != code or any(w not in err for w in words):
        return "exit %d (want %d): %s" % (r.returncode, code, err)
    return None


@case("scripted: expired_token: exit 75, named, says to log in again")
def t_expired():
    return expect([(400, json.dumps({"error": "expired_token"}))], 75, ["expired_token", "oauth login"])


@case("scripted: HTTP 500 from the token endpoint: exit 75, named")
def t_500():
    return expect([(500, "<html>oops</html>")], 75, ["HTTP 500"])


@case("scripted: HTTP 404 with an HTML page (wrong endpoint): exit 75, says check the URL")
def t_404():
    return expect([(404, "<html>not found</html>")], 75, ["HTTP 404", "endpoint URL"])


@case("scripted: HTTP 401 invalid_client: exit 77, says check the client id")
def t_401():
    return expect([(401, json.dumps({"error": "invalid_client"}))], 77,
                  ["invalid_client", "oauth_client_id"])


@case("scripted: malformed JSON: exit 75, named")
def t_malformed():
    return expect([(200, '{"access_token": "x", ')], 75, ["malformed JSON"])


@case("scripted: oversized JSON (1 MiB): exit 75, named, bounded")
def t_oversized():
    big = '{"access_token": "' + "A" * (1 << 20) + '"}'
    return expect([(200, big)], 75, ["over 65536 bytes"])


@case("scripted: a token of the wrong type in JSON: exit 75, named")
def t_wrongtype():
    return expect([(200, json.dumps({"access_token": 12345, "token_type": "Bearer"}))], 75,
                  ["access_token", "not a string"])


def spki_pin(pem):
    der = subprocess.run(["openssl", "x509", "-in", pem, "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der,
                         capture_output=True, check=True).stdout
    import hashlib
    return "sha256:" + base64.b64encode(hashlib.sha256(key).digest()).decode()


@case("scripted: --pin of the endpoint's key: login ok; another pin: exit 77, named")
def t_pin():
    good = spki_pin(os.path.join(E["MW_CERT_DIR"], "good.pem"))
    other = spki_pin(os.path.join(E["MW_CERT_DIR"], "selfsigned.pem"))
    r, _, _ = scripted_login([(200, GOOD)], args=("--pin", other + ";" + good))
    if r.returncode != 0:
        return "right pin (second of two): exit %d: %s" % (r.returncode, r.stderr.decode())
    r, _, _ = scripted_login([(200, GOOD)], args=("--pin", other))
    if r.returncode != 77 or "certificate" not in r.stderr.decode():
        return "wrong pin: exit %d: %s" % (r.returncode, r.stderr.decode())
    return None


@case("scripted: --proxy (HTTP CONNECT, tests/tools/proxy.py) carries the provider's requests")
def t_proxy():
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "proxy.py")
    pf, lf = os.path.join(T, "proxy.port"), os.path.join(T, "proxy.log")
    px = subprocess.Popen([sys.executable, tool, pf, lf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 60):
            return "proxy.py did not start"
        port = open(pf).read().strip()
        r, _, _ = scripted_login([(200, GOOD)], args=("--proxy", "http://127.0.0.1:%s" % port))
        if r.returncode != 0:
            return "exit %d: %s" % (r.returncode, r.stderr.decode())
        log = open(lf).read() if os.path.exists(lf) else ""
        if log.count("http 127.0.0.1") < 2:  # the device endpoint and one poll
            return "proxy log: %r" % log
        return None
    finally:
        px.kill()
        px.wait()


@case("scripted: invalid_grant at the device poll: exit 77, says to log in again")
def t_invalid_grant():
    return expect([(400, json.dumps({"error": "invalid_grant"}))], 77, ["invalid_grant", "oauth login"])


def main():
    skip = E.get("MW_OAUTH_SKIP")
    have = bool(E.get("MW_OAUTH_ISSUER"))
    if not have and not skip and not E.get("MW_OAUTH_FAILED") and not E.get("MW_POP3_PORT"):
        skip = "servers not running"
    print("1..%d" % len(CASES))
    sys.stdout.flush()
    if not skip and have:
        write_config()
    only = os.environ.get("MW_OAUTH_CASES")  # development: "2,4" runs those
    for k, (name, fn) in enumerate(CASES, 1):
        if only and str(k) not in only.split(","):
            tap(True, name, skip="not selected")
            continue
        if skip:
            tap(True, name, skip=skip)
            continue
        if not have:
            tap(False, name, "the OAuth servers did not start: %s" % E.get("MW_OAUTH_FAILED", "MW_OAUTH_ISSUER unset"))
            continue
        try:
            why = fn()
        except Exception as e:  # a crash of a case is its failure
            why = "%s: %s" % (type(e).__name__, e)
        tap(not why, name, why or "")
        if name.startswith("scripted") or name.startswith("token endpoint"):
            write_config()
    shutil.rmtree(T, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
