#!/usr/bin/env python3
"""Runs scripted-server cases and prints TAP.

    run_cases.py [-j N] [--filter RE] [--time-limit SEC] [-v] DIR|FILE...

Every *.case under the given directories (recursively) is one TAP test:
its [server] sections are played by server.py on free ports of 127.0.0.1,
its client command runs with the placeholders filled in, and exit status,
stdout, stderr, files, duration and every server script are checked.
Format: tests/script/README.md.  Exit status 0 when every case passed."""
import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import casefile  # noqa: E402
import server as scripted  # noqa: E402

DEFAULT_TIMEOUT = 20.0
SERVER_JOIN = 5.0           # how long a script may take to wind down after the client exited
TAIL_LINES = 15

# Client process groups still running, so an interrupted run (meson's
# timeout, Ctrl-C) can kill them: each client runs in its own session.
_running = set()
_running_lock = threading.Lock()
_temp_dirs = set()          # removed by the signal handler too


def _kill_running(signum, frame):
    with _running_lock:
        for pid in list(_running):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for d in list(_temp_dirs):
            shutil.rmtree(d, ignore_errors=True)
    print(f"Bail out! interrupted by signal {signum}; running clients killed", flush=True)
    os._exit(128 + signum)


class CertDir:
    """The certificate dir, made at most once per run and only if needed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.path = None
        self.error = None
        self.tmp = None

    def get(self):
        with self.lock:
            if self.path or self.error:
                return self.path
            env = os.environ.get("MW_CERT_DIR")
            if env and os.path.isfile(os.path.join(env, "good.pem")):
                self.path = env
                return self.path
            script = os.path.join(TOP, "tests", "servers", "mkcerts.sh")
            if not os.path.isfile(script):
                self.error = f"no MW_CERT_DIR and no {script}"
                return None
            self.tmp = tempfile.mkdtemp(prefix="mw-script-certs-")
            with _running_lock:
                _temp_dirs.add(self.tmp)
            try:
                r = subprocess.run(["bash", script, self.tmp], capture_output=True,
                                   text=True, timeout=120)
            except subprocess.TimeoutExpired:
                self.error = "mkcerts.sh took more than 120 s"
                return None
            if r.returncode != 0 or not os.path.isfile(os.path.join(self.tmp, "good.pem")):
                self.error = f"mkcerts.sh failed ({r.returncode}): {r.stderr.strip()[-300:]}"
                return None
            self.path = self.tmp
            return self.path

    def cleanup(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def free_closed_port():
    """A port where nothing listens: bound to find it, then closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tail(text, n=TAIL_LINES, width=300):
    lines = text.splitlines()
    out = [l if len(l) <= width else l[:width] + "..." for l in lines[-n:]]
    if len(lines) > n:
        out.insert(0, f"... ({len(lines) - n} earlier lines)")
    return out


# A Date or Message-ID field the client made itself (src/smtp/envelope.c,
# mw_mime_unique_id): the clock and random bytes differ between two runs,
# so --engines compares these two fields' values as "generated".
GENERATED = re.compile(rb"(?im)^(Date|Message-ID): (?:(?:[A-Z][a-z]{2}, )?\d{1,2} [A-Z][a-z]{2} \d{4} "
                       rb"\d{2}:\d{2}:\d{2} [+-]\d{4}|<\d+\.[0-9a-f]{8,}\.\d+@[^>\s]*>)(?=\r?$)")


class CaseRun:
    def __init__(self, path, certs, verbose, time_left, engine=None):
        self.path = path
        self.certs = certs
        self.verbose = verbose
        self.time_left = time_left
        self.engine = engine    # MAILWIRE_ENGINE for the client (cli/engine.h), or None
        self.name = os.path.basename(path)
        self.problems = []      # why the case failed
        self.diag = []          # extra # lines (transcripts, outputs)
        self.skip = None
        self.duration = None
        self.rc = None
        self.loop_sessions = None  # loop runs: did the client run a session on a loop?
        self.engine_log = None
        self.canon = {}         # server label -> [(who, bytes)], this run's values put back as placeholders

    # Placeholders --------------------------------------------------------

    def _values(self, ports, tmp):
        build = os.environ.get("MW_BUILD_DIR")
        vals = {"host": "127.0.0.1", "tmp": tmp, "srcdir": HERE, "top": TOP,
                "python": sys.executable, "closedport": str(self.closedport)}
        if build:
            vals["build"] = build
            vals["mailwire"] = os.path.join(build, "cli", "mailwire")
        for n, p in ports.items():
            vals["port:" + n if n else "port"] = str(p)
        return vals

    def subst(self, text, regex=False):
        def one(m):
            ph = m.group(1)
            if ph in ("certdir", "ca"):
                cd = self.certs.get()
                if cd is None:
                    raise casefile.CaseError(f"no certificate dir: {self.certs.error}")
                v = cd if ph == "certdir" else os.path.join(cd, "ca.pem")
            elif ph in self.vals:
                v = self.vals[ph]
            elif ph in ("build", "mailwire"):
                raise casefile.CaseError(f"{{{ph}}} needs MW_BUILD_DIR in the environment")
            else:
                raise casefile.CaseError(f"placeholder {{{ph}}} has no value")
            return re.escape(v) if regex else v
        return casefile.PLACEHOLDER_RE.sub(one, text)

    # The run -------------------------------------------------------------

    def run(self):
        try:
            case = casefile.parse_case(self.path)
        except (casefile.CaseError, OSError, UnicodeDecodeError) as e:
            self.problems.append(f"bad case file: {e}")
            return
        self.case = case
        self.name = case.name
        if self.engine == "loop" and case.get("loop-skip") is not None:
            self.skip = "not on the loop engine yet: " + case.get("loop-skip")
            return
        tmp = tempfile.mkdtemp(prefix="mw-case-")
        with _running_lock:
            _temp_dirs.add(tmp)
        servers = {}
        try:
            if case.needs_certs() and self.certs.get() is None:
                self.problems.append(f"no certificate dir: {self.certs.error}")
                return
            self.closedport = free_closed_port()
            try:
                servers = scripted.start_servers(case, self.certs.path)
            except OSError as e:
                if any(":" in s.listen for s in case.servers):
                    self.skip = f"cannot listen on the IPv6 loopback: {e.strerror or e}"
                    return
                raise
            self.vals = self._values({n: s.port for n, s in servers.items()}, tmp)
            for ln, req in case.multi["requires"]:
                p = self.subst(req)
                if not os.path.exists(p):
                    self.skip = f"requires {p}"
                    return
            self._run_client(case, servers, tmp)
        except casefile.CaseError as e:
            self.problems.append(str(e))
        finally:
            for s in servers.values():
                s.stop()
            for s in servers.values():
                if s.thread is not None and not s.join(SERVER_JOIN):
                    self.problems.append(f"{s.label}: the script did not finish within "
                                         f"{SERVER_JOIN:.0f} s after the client exited")
            for s in servers.values():
                s.close()
            if self.problems and os.environ.get("MW_SCRIPT_KEEP") == "1":
                self.problems.append(f"files kept in {tmp} (MW_SCRIPT_KEEP=1)")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
            with _running_lock:
                _temp_dirs.discard(tmp)

    def _run_client(self, case, servers, tmp):
        timeout = float(case.get("timeout", DEFAULT_TIMEOUT))
        left = self.time_left()
        if left < timeout:
            timeout = max(left, 1.0)
        env = dict(os.environ)
        env["HOME"] = tmp
        if self.engine:
            env["MAILWIRE_ENGINE"] = self.engine
            # The CLI notes each session it runs on a loop (cli/engine.h).
            self.engine_log = os.path.join(tmp, ".engine-log")
            env["MAILWIRE_ENGINE_LOG"] = self.engine_log
        env.pop("MAILHOST", None)
        for _, v in case.multi["env"]:
            k, _, val = v.partition("=")
            env[k] = self.subst(val)
        for _, k in case.multi["env-unset"]:
            env.pop(k, None)
        if case.get("cmd") is not None:
            argv = [self.subst(a) for a in shlex.split(case.get("cmd"))]
            shown = shlex.join(argv)
        else:
            argv = ["/bin/sh", "-c", self.subst(case.get("sh"))]
            shown = argv[2]
        stdin = None
        if case.get("stdin") is not None:
            stdin = casefile.decode_esc(self.subst(case.get("stdin")))
        elif case.get("stdin-file") is not None:
            p = os.path.join(os.path.dirname(self.path), self.subst(case.get("stdin-file")))
            with open(p, "rb") as f:
                stdin = f.read()
        elif case.block("stdin"):
            stdin = case.block("stdin")[0].data(self.subst)

        for b in case.block("input"):
            # Input files are written before the client starts; a relative
            # path is relative to {tmp} (the client's working directory).
            p = os.path.join(tmp, self.subst(b.target))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(b.data(self.subst))
            if b.mode is not None:
                os.chmod(p, b.mode)

        deadline = time.monotonic() + timeout + 5
        for s in servers.values():
            s.start(scripted.substitute_directives(s.server.directives, self.subst), deadline)

        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    cwd=tmp, start_new_session=True)
        except OSError as e:
            self.problems.append(f"cannot run the client {argv[0]}: {e.strerror or e}")
            return
        with _running_lock:
            _running.add(proc.pid)
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill_group(proc)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                out, err = b"", b"(output lost: a child kept the pipes open)"
        self.duration = time.monotonic() - t0
        # Anything the client left running in its session goes now.
        self._kill_group(proc)
        with _running_lock:
            _running.discard(proc.pid)
        for s in servers.values():
            s.stop()
        for s in servers.values():
            s.join(SERVER_JOIN)
        self.rc = proc.returncode
        if self.engine == "loop":
            self.loop_sessions = os.path.exists(self.engine_log)
        self._keep_canon(servers)
        self._check(case, servers, proc.returncode, out, err, timed_out, timeout, shown)

    def _keep_canon(self, servers):
        # Ports and the temp dir differ between runs: put the placeholders back.
        subs = sorted(((v.encode(), ("{" + k + "}").encode()) for k, v in self.vals.items()
                       if k != "host" and len(v) >= 4), key=lambda kv: -len(kv[0]))
        for s in servers.values():
            runs = []
            for who, data in s.log.canon:
                for v, ph in subs:
                    data = data.replace(v, ph)
                if who == "C":
                    data = GENERATED.sub(rb"\1: (generated)", data)
                if runs and runs[-1][0] == who:
                    runs[-1][1].extend(b"\n" + data)
                else:
                    runs.append((who, bytearray(data)))
            # What the server said after the client's last line depends on
            # when the client closed (a send into a closed socket ends the
            # script): not compared.
            while runs and runs[-1][0] == "S" and any(w == "C" for w, _ in runs):
                runs.pop()
            self.canon[s.label] = [(w, bytes(d)) for w, d in runs]

    @staticmethod
    def _kill_group(proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # Checks --------------------------------------------------------------

    def _check(self, case, servers, rc, out, err, timed_out, timeout, shown):
        P = self.problems
        if timed_out:
            P.append(f"client did not exit within the timeout of {timeout:g} s (killed)")
        else:
            want = case.get("exit", "0")
            if want == "nonzero":
                if rc == 0:
                    P.append("exit: expected nonzero, got 0")
            elif rc != int(want):
                P.append(f"exit: expected {want}, got {rc}"
                         + (f" (killed by signal {-rc})" if rc < 0 else ""))
        maxd = case.get("max-duration")
        if maxd is not None and self.duration > float(maxd):
            P.append(f"duration: {self.duration:.2f} s, more than max-duration {float(maxd):g} s")
        mind = case.get("min-duration")
        if mind is not None and self.duration < float(mind):
            P.append(f"duration: {self.duration:.2f} s, less than min-duration {float(mind):g} s")

        outs = out.decode("utf-8", "surrogateescape")
        errs = err.decode("utf-8", "surrogateescape")
        exact = None
        if case.get("stdout") is not None:
            exact = casefile.decode_esc(self.subst(case.get("stdout")))
        elif case.block("stdout"):
            exact = case.block("stdout")[0].data(self.subst)
        if exact is not None and out != exact:
            P.append(self._diff("stdout", exact, out))
        for key, text in (("stdout", outs), ("stderr", errs)):
            for ln, rx in case.multi[key + "-re"]:
                if not re.search(self.subst(rx, regex=True), text, re.M):
                    P.append(f"line {ln}: {key}-re: no match for {rx!r}")
            for ln, rx in case.multi[key + "-not-re"]:
                m = re.search(self.subst(rx, regex=True), text, re.M)
                if m:
                    P.append(f"line {ln}: {key}-not-re: {rx!r} matched {m.group(0)[:80]!r}")
        for b in case.block("file"):
            path = self.subst(b.target)
            try:
                with open(path, "rb") as f:
                    got = f.read()
            except OSError as e:
                P.append(f"line {b.lineno}: [file {path}]: {e.strerror}")
                continue
            want = b.data(self.subst)
            if got != want:
                P.append(f"line {b.lineno}: " + self._diff(f"file {path}", want, got))
        for ln, v in case.multi["file-re"]:
            p, rx = v.split(None, 1)
            p = self.subst(p)
            try:
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "surrogateescape")
            except OSError as e:
                P.append(f"line {ln}: file-re: {p}: {e.strerror}")
                continue
            if not re.search(self.subst(rx, regex=True), text, re.M):
                P.append(f"line {ln}: file-re: {p}: no match for {rx!r}")
        for ln, v in case.multi["file-absent"]:
            p = self.subst(v)
            if os.path.lexists(p):
                P.append(f"line {ln}: file-absent: {p} exists")

        for s in servers.values():
            if s.error:
                P.append(s.error)
        if P or self.verbose:
            self.diag.append(f"command: {shown}")
            self.diag.append(f"exit {rc}, {self.duration:.2f} s")
            for s in servers.values():
                self.diag.append(f"transcript {s.label} (port {s.port}):")
                self.diag += ["  " + l for l in s.log.lines()]
            if outs:
                self.diag.append("stdout:")
                self.diag += ["  " + l for l in tail(outs)]
            if errs:
                self.diag.append("stderr:")
                self.diag += ["  " + l for l in tail(errs)]

    @staticmethod
    def _diff(what, want, got):
        pos = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                   min(len(want), len(got)))
        line = want[:pos].count(b"\n") + 1
        return (f"{what}: differs at byte {pos} (line {line}): expected "
                f"{scripted.show(want[pos:pos + 60])}, got {scripted.show(got[pos:pos + 60])} "
                f"({len(want)} bytes expected, {len(got)} got)")


def compare_engines(b, lp, problems):
    """Both runs passed: the servers must have seen the same bytes, line for
    line (consecutive lines of one side joined), and the client must have
    exited the same way."""
    if b.rc != lp.rc:
        problems.append(f"engines: exit {b.rc} with blocking, {lp.rc} on the loop")
    for label in sorted(set(b.canon) | set(lp.canon)):
        x, y = b.canon.get(label, []), lp.canon.get(label, [])
        for i in range(max(len(x), len(y))):
            ex = x[i] if i < len(x) else ("-", b"(nothing more)")
            ey = y[i] if i < len(y) else ("-", b"(nothing more)")
            if ex != ey:
                pos = next((k for k, (c, d) in enumerate(zip(ex[1], ey[1])) if c != d),
                           min(len(ex[1]), len(ey[1])))
                problems.append(
                    f"engines: transcript {label} differs at entry {i + 1}, byte {pos}: "
                    f"blocking {ex[0]}: {scripted.show(ex[1][max(0, pos - 20):pos + 60])}, "
                    f"loop {ey[0]}: {scripted.show(ey[1][max(0, pos - 20):pos + 60])}")
                break


def collect(paths, filt):
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".case")]
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise SystemExit(f"run_cases.py: no such file or directory: {p}")
    if filt:
        rx = re.compile(filt)
        keep = []
        for f in files:
            name = ""
            try:
                name = casefile.parse_case(f).name
            except (casefile.CaseError, OSError, UnicodeDecodeError):
                pass
            if rx.search(f) or rx.search(name):
                keep.append(f)
        files = keep
    return files


def is_parallel(path):
    try:
        return casefile.parse_case(path).get("parallel", "yes") == "yes"
    except (casefile.CaseError, OSError, UnicodeDecodeError):
        return True


def main(argv):
    ap = argparse.ArgumentParser(description="Runs scripted-server cases; prints TAP.")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--filter")
    ap.add_argument("--time-limit", type=float, default=480.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--engines", action="store_true",
                    help="run each case with MAILWIRE_ENGINE=blocking, then =loop: both must "
                         "pass and the servers must see the same bytes")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args(argv)

    signal.signal(signal.SIGTERM, _kill_running)
    signal.signal(signal.SIGINT, _kill_running)
    files = collect(a.paths, a.filter)
    if not files:
        print(f"1..0 # SKIP no cases in {' '.join(a.paths)}", flush=True)
        return 0
    print(f"1..{len(files) * (2 if a.engines else 1)}", flush=True)
    end = time.monotonic() + a.time_limit
    time_left = lambda: end - time.monotonic()  # noqa: E731
    certs = CertDir()
    lock = threading.Lock()
    counter = [0, 0]            # reported, failed

    def report(r):
        r.name = r.name.replace("#", "\\#")   # TAP: '#' starts a directive
        with lock:
            counter[0] += 1
            n = counter[0]
            if r.skip:
                print(f"ok {n} - {r.name} # SKIP {r.skip}")
            elif r.problems:
                counter[1] += 1
                print(f"not ok {n} - {r.name}")
                print(f"# {r.path}")
                for p in r.problems:
                    print(f"# {p}")
            else:
                print(f"ok {n} - {r.name} ({r.duration:.2f} s)")
            for d in r.diag:
                print(f"#   {d}")
            sys.stdout.flush()

    def run_one(path):
        """The results to report: one, or with --engines two (the blocking
        run, then the loop run compared with it)."""
        if not a.engines:
            return [run_engine(path, None)]
        b = run_engine(path, "blocking")
        b.name += " [blocking]"
        if b.skip or b.problems:
            lp = CaseRun(path, certs, a.verbose, time_left, "loop")
            lp.name = b.name[:-len(" [blocking]")] + " [loop]"
            lp.skip = "the blocking run did not pass"
            return [b, lp]
        lp = run_engine(path, "loop")
        lp.name += " [loop, same bytes as blocking]"
        if not lp.problems and not lp.skip:
            compare_engines(b, lp, lp.problems)
            if not lp.loop_sessions:
                # A loop run that ran no session on a loop shows nothing.
                lp.problems.append("engines: the loop run added no session to a loop; mark the "
                                   "case loop-skip with the reason, or run its command there")
        return [b, lp]

    def run_engine(path, engine):
        r = CaseRun(path, certs, a.verbose, time_left, engine)
        if time_left() <= 0:
            r.problems.append(f"not run: the runner's time limit of {a.time_limit:g} s was reached")
            return r
        try:
            r.run()
        except Exception as e:  # a bug in the runner is a failure, never a pass
            r.problems.append(f"internal error in run_cases.py: {type(e).__name__}: {e}")
        return r

    t0 = time.monotonic()
    par = [f for f in files if is_parallel(f)]
    seq = [f for f in files if f not in par]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            for fut in concurrent.futures.as_completed([pool.submit(run_one, f) for f in par]):
                for r in fut.result():
                    report(r)
        for f in seq:
            for r in run_one(f):
                report(r)
    finally:
        certs.cleanup()
    print(f"# {counter[0]} cases, {counter[1]} failed, {time.monotonic() - t0:.1f} s", flush=True)
    return 1 if counter[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
