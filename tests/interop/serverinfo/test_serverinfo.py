#!/usr/bin/env python3
"""`mailwire pop3|smtp serverinfo` against the real servers of tests/servers/
(Dovecot over STLS and POP3S, Postfix over STARTTLS and SMTPS), and the
--json error objects of pop3, fetch, send and smtp for a wrong password.

serverinfo must show what the server offers before login (after STLS /
STARTTLS) without logging in: the trace must hold no USER, PASS, APOP or
AUTH line, and no password source is set.  The certificate's SHA-256 must
equal what `openssl x509 -fingerprint -sha256` says of $MW_CERT_DIR/good.pem
(the servers' certificate).  Every JSON output is parsed with Python's json.

Users: h9 (wrong password for pop3 and fetch), h10 (wrong password for send
and smtp); nothing is delivered to either.  Without the servers
(MW_POP3_PORT unset) every case is a TAP SKIP."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import taplib  # noqa: E402

E = os.environ
HAVE = bool(E.get("MW_POP3_PORT"))
MW = os.path.join(E.get("MW_BUILD_DIR", ""), "cli", "mailwire")
cases = []
TMP = tempfile.mkdtemp(prefix="mw-serverinfo-")
ENGINE_LOG = os.path.join(TMP, "engine.log")


def case(name):
    def deco(fn):
        cases.append((name, fn))
        return fn
    return deco


def run(args, password=None, stdin=b""):
    env = dict(E)
    env.pop("MAILHOST", None)
    env.pop("MAILWIRE_PASSWORD", None)
    env["HOME"] = TMP  # no personal ~/.netrc
    if password is not None:
        env["MAILWIRE_PASSWORD"] = password
    if E.get("MAILWIRE_ENGINE") == "loop":  # each session noted (cli/engine.h)
        env["MAILWIRE_ENGINE_LOG"] = ENGINE_LOG
    p = subprocess.run([MW] + args, input=stdin, capture_output=True, env=env, timeout=120)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


def openssl_sha256():
    out = subprocess.run(["openssl", "x509", "-in", os.path.join(E["MW_CERT_DIR"], "good.pem"),
                          "-noout", "-fingerprint", "-sha256"], capture_output=True,
                         check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def json_lines(out):
    """Every non-empty line of stdout as one JSON value."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def common(host_port, tls, extra=()):
    return ["--host", "localhost", "--port", E[host_port], "--tls", tls,
            "--cafile", E["MW_CA_FILE"]] + list(extra)


def no_login(trace):
    with open(trace) as f:
        sent = [line for line in f if line.startswith("C: ")]
    bad = [line for line in sent if re.match(r"C: (USER|PASS|APOP|AUTH)\b", line, re.I)]
    return "login lines sent: %r" % bad if bad else None


def check_tls(t, how):
    want = openssl_sha256()
    if not isinstance(t, dict):
        return "tls is %r" % (t,)
    problems = []
    if t.get("sha256") != want:
        problems.append("sha256 %r, openssl says %r" % (t.get("sha256"), want))
    if t.get("how") != how:
        problems.append("how %r" % t.get("how"))
    if not re.fullmatch(r"TLSv1\.[23]", t.get("protocol", "")):
        problems.append("protocol %r" % t.get("protocol"))
    if "CN=localhost" not in t.get("subject", ""):
        problems.append("subject %r" % t.get("subject"))
    if "CN=mailwire test CA" not in t.get("issuer", ""):
        problems.append("issuer %r" % t.get("issuer"))
    for k in ("not_before", "not_after"):
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t.get(k, "")):
            problems.append("%s %r" % (k, t.get(k)))
    if t.get("not_before", "") >= t.get("not_after", ""):
        problems.append("validity not ordered")
    if t.get("verified") is not True or not t.get("cipher"):
        problems.append("verified %r cipher %r" % (t.get("verified"), t.get("cipher")))
    return "; ".join(problems) or None


def pop3_info(port_var, tls, how):
    trace = os.path.join(TMP, "pop3-%s.trace" % tls)
    rc, out, err = run(["pop3"] + common(port_var, tls, ["--trace", trace, "--json"]) +
                       ["serverinfo"])
    if rc != 0:
        return "exit %d: %s" % (rc, err)
    j = json_lines(out)
    if len(j) != 1:
        return "want one JSON value, got %d" % len(j)
    j = j[0]
    why = check_tls(j.get("tls"), how) or no_login(trace)
    if why:
        return why
    caps = j.get("capabilities", [])
    # Dovecot before login: SASL mechanisms and USER are offered (they are
    # not in the post-login list); STLS is not offered again over TLS.
    if "USER" not in caps or not any(c.startswith("SASL ") for c in caps) or "STLS" in caps:
        return "capabilities %r" % caps
    if "SCRAM-SHA-256" not in j.get("sasl", []) or j.get("capa") is not True:
        return "sasl %r capa %r" % (j.get("sasl"), j.get("capa"))
    if "Dovecot" not in j.get("greeting", ""):
        return "greeting %r" % j.get("greeting")
    return None


@case("pop3 serverinfo, Dovecot over STLS: TLS details (SHA-256 = openssl's), pre-login CAPA over TLS, no login")
def _():
    return pop3_info("MW_POP3_PORT", "starttls", "STLS")


@case("pop3 serverinfo, Dovecot POP3S: TLS details (SHA-256 = openssl's), pre-login CAPA, no login")
def _():
    return pop3_info("MW_POP3S_PORT", "implicit", "implicit")


@case("pop3 serverinfo (text), Dovecot over STLS: greeting, SHA-256 line, SASL and USER listed")
def _():
    rc, out, err = run(["pop3"] + common("MW_POP3_PORT", "starttls") + ["serverinfo"])
    if rc != 0:
        return "exit %d: %s" % (rc, err)
    need = [r"^Greeting: \+OK Dovecot", r"^TLS \(STLS\):$",
            r"^    SHA-256:     " + re.escape(openssl_sha256()) + "$",
            r"^    SASL PLAIN LOGIN", r"^    USER$", r"^Login: SASL .*USER"]
    miss = [n for n in need if not re.search(n, out, re.M)]
    return "missing %r in:\n%s" % (miss, out) if miss else None


def smtp_info(port_var, tls, how):
    trace = os.path.join(TMP, "smtp-%s.trace" % tls)
    rc, out, err = run(["smtp"] + common(port_var, tls, ["--trace", trace, "--json"]) +
                       ["serverinfo"])
    if rc != 0:
        return "exit %d: %s" % (rc, err)
    j = json_lines(out)
    if len(j) != 1:
        return "want one JSON value, got %d" % len(j)
    j = j[0]
    why = check_tls(j.get("tls"), how) or no_login(trace)
    if why:
        return why
    # Postfix (tests/servers/README.md): SIZE 209715200; AUTH only over TLS.
    if j.get("size") != 209715200:
        return "size %r" % j.get("size")
    if "SCRAM-SHA-256" not in j.get("auth", []) or "PLAIN" not in j.get("auth", []):
        return "auth %r" % j.get("auth")
    caps = j.get("capabilities", [])
    if "STARTTLS" in caps or "CHUNKING" not in caps or j.get("esmtp") is not True:
        return "capabilities %r esmtp %r" % (caps, j.get("esmtp"))
    if "ESMTP Postfix" not in j.get("greeting", ""):
        return "greeting %r" % j.get("greeting")
    return None


@case("smtp serverinfo, Postfix submission over STARTTLS: TLS details (SHA-256 = openssl's), SIZE, AUTH after TLS, no AUTH sent")
def _():
    return smtp_info("MW_SMTP_PORT", "starttls", "STARTTLS")


@case("smtp serverinfo, Postfix SMTPS: TLS details, SIZE, AUTH, no AUTH sent")
def _():
    return smtp_info("MW_SMTPS_PORT", "implicit", "implicit")


@case("smtp serverinfo --tls none, Postfix submission: plain text, STARTTLS offered, no AUTH before TLS")
def _():
    rc, out, err = run(["smtp", "--host", "localhost", "--port", E["MW_SMTP_PORT"], "--tls", "none",
                        "--json", "serverinfo"])
    if rc != 0:
        return "exit %d: %s" % (rc, err)
    j = json_lines(out)[0]
    if j.get("tls") is not None or "STARTTLS" not in j.get("capabilities", []):
        return "tls %r capabilities %r" % (j.get("tls"), j.get("capabilities"))
    return "auth before TLS: %r" % j["auth"] if j.get("auth") else None


def error_object(out, rc, program, category):
    vals = json_lines(out)
    if not vals:
        return "nothing on stdout"
    e = vals[-1]
    keys = {"ok", "program", "error", "category", "exit", "command", "reply", "code",
            "enhanced", "resp_code"}
    if not isinstance(e, dict) or not keys <= set(e):
        return "not an error object: %r" % (e,)
    if e["ok"] is not False or e["exit"] != rc or e["program"] != program:
        return "ok/exit/program: %r" % (e,)
    if e["category"] != category:
        return "category %r: %r" % (e["category"], e)
    return None


@case("pop3 --json, wrong password (Dovecot): error object, category auth, exit 77, the AUTH reply")
def _():
    rc, out, err = run(["pop3"] + common("MW_POP3_PORT", "starttls", ["--user", "h9", "--json"]) +
                       ["stat"], password="wrong-h9")
    why = error_object(out, rc, "pop3", "auth")
    if why or rc != 77:
        return "%s (exit %d) %s" % (why, rc, err)
    e = json_lines(out)[-1]
    if e["resp_code"] != "AUTH" or not e["command"].startswith("AUTH ") or "wrong-h9" in out:
        return "resp_code/command: %r" % e
    return None


@case("fetch --json, wrong password (Dovecot): one JSON array, the account record with the error fields (auth, 77)")
def _():
    rc, out, err = run(["fetch"] + common("MW_POP3_PORT", "starttls", ["--user", "h9", "--json"]) +
                       ["--maildir", os.path.join(TMP, "md")], password="wrong-h9")
    vals = json_lines(out)
    if rc != 77 or len(vals) != 1 or not isinstance(vals[0], list) or len(vals[0]) != 1:
        return "exit %d, want one array of one record: %r %s" % (rc, out, err)
    rec = vals[0][0]
    keys = {"ok", "error", "category", "exit", "command", "reply", "code", "enhanced",
            "resp_code", "account"}
    if not keys <= set(rec) or rec["ok"] is not False or rec["exit"] != 77:
        return "record %r" % rec
    if rec["category"] != "auth" or rec["resp_code"] != "AUTH" or "wrong-h9" in out:
        return "record %r" % rec
    return None


@case("send --json, wrong password (Postfix via Dovecot): error object, auth, exit 77, 535 5.7.8")
def _():
    rc, out, err = run(["send"] + common("MW_SMTP_PORT", "starttls", ["--user", "h10", "--json"]) +
                       ["-i", "-f", "h10@test.domain", "h10@test.domain"],
                       password="wrong-h10", stdin=b"Subject: x\n\nnever sent\n")
    why = error_object(out, rc, "send", "auth")
    if why or rc != 77:
        return "%s (exit %d) %s" % (why, rc, err)
    e = json_lines(out)[-1]
    if e["code"] != 535 or e["enhanced"] != "5.7.8" or not e["command"].startswith("AUTH"):
        return "code/enhanced/command: %r" % e
    return None


@case("smtp send --json, wrong password (Postfix via Dovecot): error object, auth, exit 77")
def _():
    msg = os.path.join(TMP, "m.eml")
    with open(msg, "w") as f:
        f.write("Subject: x\n\nnever sent\n")
    rc, out, err = run(["smtp"] + common("MW_SMTP_PORT", "starttls", ["--user", "h10", "--json"]) +
                       ["send", "--from", "h10@test.domain", "--to", "h10@test.domain", msg],
                       password="wrong-h10")
    why = error_object(out, rc, "smtp", "auth")
    return "%s (exit %d) %s" % (why, rc, err) if why or rc != 77 else None


if E.get("MAILWIRE_ENGINE") == "loop":
    @case("MAILWIRE_ENGINE=loop: every command above put its session on a loop")
    def _():
        noted = open(ENGINE_LOG).read().split() if os.path.exists(ENGINE_LOG) else []
        # 3 pop3 serverinfo, 3 smtp serverinfo, then pop3, send, smtp with a wrong password
        want = {"pop3": 4, "smtp": 4, "send": 1}
        got = {k: noted.count(k) for k in want}
        return None if got == want else "sessions noted on a loop: %r, want %r" % (got, want)


sys.exit(taplib.run_cases(cases, HAVE))
