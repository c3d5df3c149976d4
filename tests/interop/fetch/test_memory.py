#!/usr/bin/env python3
"""Memory as tests: the peak RSS of the mailwire process (ru_maxrss of the
child, from os.wait4) for a 1 GiB message, each at most 16 MB:

  - pop3 retr of it (to /dev/null);
  - fetch of it into a Maildir (the 1 GiB copy is deleted at once);
  - mime parse --extract of a 1 GiB message (a base64 attachment) from stdin.

The messages are generated as they are sent (a POP3 server in this script
streams the lines, or they are written to the child's stdin): nothing big
is kept on disk but what the command itself writes, deleted after each
case.  A case is skipped, naming the reason, when its file system has less
than 3 GiB free.

The build measured is the RELEASE one (-O3, no sanitizers), which
scripts/test.sh builds next to the ASan build it runs the suite with
($MW_BUILD_DIR-release): AddressSanitizer's shadow memory, quarantine and
runtime alone are well over 16 MB, so an ASan figure would measure ASan.
MW_RELEASE_BUILD_DIR names another release build; without one the cases
are skipped, visibly.

No verdict depends on time: the deadlines are generous bounds (minutes for
what takes seconds on an idle machine)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading


RSS_LIMIT_MB = 16
GIB = 1 << 30
NEED_FREE = 3 * GIB
LINE = b"x" * 76 + b"\r\n"
BLOCK = LINE * 13443  # 1 048 554 octets of whole lines
NBLOCKS = 1024  # 1 073 719 296 octets: 1 GiB of body lines
HEADER = b"Subject: big\r\n\r\n"
MSG_SIZE = len(HEADER) + len(BLOCK) * NBLOCKS
DEADLINE = 900  # seconds: a bound for a wedged child, never a measurement


def release_binary():
    d = os.environ.get("MW_RELEASE_BUILD_DIR")
    if not d and os.environ.get("MW_BUILD_DIR"):
        d = os.environ["MW_BUILD_DIR"].rstrip("/") + "-release"
    if not d and len(sys.argv) > 1:
        d = sys.argv[1]  # meson: the build dir + "-release", as scripts/test.sh names it
    if not d:
        return None
    exe = os.path.join(d, "cli", "mailwire")
    return exe if os.access(exe, os.X_OK) else None


class Pop3Server:
    """One-message POP3 server on 127.0.0.1: message 1 is HEADER then
    NBLOCKS x BLOCK, generated while it is sent.  Serves connections one
    after the other until stopped."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.retr_sent = 0
        self.dele = 0
        self.errors = []
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(c)
            except OSError:
                pass  # the client went away
            except Exception as e:  # noqa: BLE001 — reported by the case
                self.errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                c.close()

    def session(self, c):
        f = c.makefile("rb")
        c.sendall(b"+OK memory test POP3\r\n")
        for raw in f:
            cmd = raw.rstrip(b"\r\n").decode("ascii", "replace")
            word = cmd.split(" ")[0].upper()
            if word == "CAPA":
                c.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
            elif word in ("USER", "PASS", "NOOP", "RSET"):
                c.sendall(b"+OK\r\n")
            elif word == "STAT":
                c.sendall(b"+OK 1 %d\r\n" % MSG_SIZE)
            elif cmd.upper() == "LIST":
                c.sendall(b"+OK\r\n1 %d\r\n.\r\n" % MSG_SIZE)
            elif word == "LIST":
                c.sendall(b"+OK 1 %d\r\n" % MSG_SIZE)
            elif cmd.upper() == "UIDL":
                c.sendall(b"+OK\r\n1 big-1\r\n.\r\n")
            elif word == "UIDL":
                c.sendall(b"+OK 1 big-1\r\n")
            elif cmd.upper() == "RETR 1":
                c.sendall(b"+OK %d octets\r\n" % MSG_SIZE + HEADER)
                for _ in range(NBLOCKS):
                    c.sendall(BLOCK)
                c.sendall(b".\r\n")
                self.retr_sent += 1
            elif cmd.upper() == "DELE 1":
                self.dele += 1
                c.sendall(b"+OK\r\n")
            elif word == "QUIT":
                c.sendall(b"+OK bye\r\n")
                return
            else:
                c.sendall(b"-ERR unknown command\r\n")

    def stop(self):
        self.sock.close()


# The peak RSS must be the command's own.  Linux carries the peak of the
# address space a process replaces at execve into its ru_maxrss (fs/exec.c),
# so a command started from this Python process (vfork or fork) reports at
# least Python's own peak: /bin/true started from a Python holding 50 MB
# shows 60 MB.  So the command is started by a tiny C runner: it forks (its
# own peak is about 1 MB), the child execs the command, and the runner
# writes the child's ru_maxrss from wait4 to a file.
RUNNER_C = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    if (argc < 3) return 125;
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) {
        execv(argv[2], argv + 2);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) return 125;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 125;
    fprintf(f, "%ld\n", ru.ru_maxrss);
    if (fclose(f)) return 125;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"""
RUNNER = None


def build_runner(tmp):
    """Compiles the runner (without sanitizers); returns None or why not."""
    global RUNNER
    cc = os.environ.get("CC", "cc")
    src = os.path.join(tmp, "rss_run.c")
    exe = os.path.join(tmp, "rss_run")
    with open(src, "w") as f:
        f.write(RUNNER_C)
    try:
        r = subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot compile the RSS runner with %s: %s" % (cc, e)
    if r.returncode != 0:
        return "cannot compile the RSS runner: %s" % r.stderr.decode("utf-8", "replace")[:300]
    RUNNER = exe
    return None


def spawn(argv, tmp, **kw):
    """Starts argv under the runner, in its own process group."""
    rss_file = os.path.join(tmp, "maxrss")
    if os.path.exists(rss_file):
        os.unlink(rss_file)
    p = subprocess.Popen([RUNNER, rss_file] + argv, start_new_session=True, **kw)
    p.rss_file = rss_file
    return p


def wait_rss(p, timeout=DEADLINE):
    """Waits for p (bounded: the whole group is killed past the deadline)
    and returns (exit status, the command's peak RSS in MB)."""
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        return p.returncode, None
    try:
        with open(p.rss_file) as f:
            kb = int(f.read().strip())
    except (OSError, ValueError):
        return p.returncode, None
    return p.returncode, kb / 1024.0


def rss_problem(rss):
    if rss is None:
        return "no peak RSS figure from the runner"
    if rss > RSS_LIMIT_MB:
        return "peak RSS %.1f MB > %d MB" % (rss, RSS_LIMIT_MB)
    return None


def show(rss):
    return "?" if rss is None else "%.1f" % rss


def free_space_reason(path):
    free = shutil.disk_usage(path).free
    if free < NEED_FREE:
        return "only %.1f GB free in %s, 3 GB needed" % (free / 1e9, path)
    return None


def env_pw():
    e = dict(os.environ)
    e["MAILWIRE_PASSWORD"] = "pw"
    e.pop("MAILHOST", None)
    return e


def case_runner_measures(tmp):
    """The measure itself: a command that fills 32 MB must show over 16 MB
    (a runner that reported Python's peak, or nothing, would not tell)."""
    p = spawn([sys.executable, "-c", "b = b'a' * (32 << 20)"], tmp)
    rc, rss = wait_rss(p)
    print("# a command filling 32 MB: exit %d, peak RSS %s MB" % (rc, show(rss)))
    if rc != 0 or rss is None or rss < 32:
        return "the runner reported %s MB for a command holding 32 MB" % show(rss)
    return None


def case_pop3_retr(exe, srv, tmp):
    before = srv.retr_sent
    p = spawn([exe, "pop3", "--host", "127.0.0.1", "--port", str(srv.port), "--tls", "none",
               "--user", "u", "--allow-plaintext-password", "retr", "1"], tmp,
              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_pw())
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t.start()
    rc, rss = wait_rss(p)
    t.join()
    print("# pop3 retr of %d octets: exit %d, peak RSS %s MB" % (MSG_SIZE, rc, show(rss)))
    if rc != 0:
        return "exit %d: %s" % (rc, err[0].decode("utf-8", "replace")[:500])
    if srv.retr_sent != before + 1:
        return "the server did not send the whole message"
    return rss_problem(rss)


def case_fetch(exe, srv, tmp):
    why = free_space_reason(tmp)
    if why:
        return "SKIP " + why
    md = os.path.join(tmp, "Maildir")
    try:
        p = spawn([exe, "fetch", "--host", "127.0.0.1", "--port", str(srv.port), "--tls",
                   "none", "--user", "u", "--allow-plaintext-password", "--auth", "user",
                   "--maildir", md, "--state", os.path.join(tmp, "state"), "--keep", "--quiet"],
                  tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_pw())
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()))
        t.start()
        rc, rss = wait_rss(p)
        t.join()
        print("# fetch of %d octets into a Maildir: exit %d, peak RSS %s MB" %
              (MSG_SIZE, rc, show(rss)))
        if rc != 0:
            return "exit %d: %s" % (rc, err[0].decode("utf-8", "replace")[:500])
        new = os.listdir(os.path.join(md, "new"))
        if len(new) != 1:
            return "%d files in new/, 1 expected" % len(new)
        size = os.path.getsize(os.path.join(md, "new", new[0]))
        # The store writes LF line ends (store.c): one octet less per line.
        want = MSG_SIZE - (2 + 13443 * NBLOCKS)
        if size != want:
            return "stored %d octets, %d expected" % (size, want)
        return rss_problem(rss)
    finally:
        shutil.rmtree(md, ignore_errors=True)


def case_mime_extract(exe, tmp):
    why = free_space_reason(tmp)
    if why:
        return "SKIP " + why
    out = os.path.join(tmp, "extract")
    os.mkdir(out)
    b64line = b"QUJD" * 19 + b"\r\n"  # 76 base64 chars = 57 octets "ABC..."
    b64block = b64line * 13443
    head = (b"From: a@example.org\r\nSubject: big attachment\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
            b"--zz\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=big.bin\r\n\r\n")
    tail = b"--zz--\r\n"
    total = len(head) + len(b64block) * NBLOCKS + len(tail)
    try:
        p = spawn([exe, "mime", "parse", "--extract", out, "-"], tmp, stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_pw())
        res = {}
        ts = [threading.Thread(target=lambda: res.__setitem__("out", p.stdout.read())),
              threading.Thread(target=lambda: res.__setitem__("err", p.stderr.read()))]
        for t in ts:
            t.start()

        def feed():
            try:
                p.stdin.write(head)
                for _ in range(NBLOCKS):
                    p.stdin.write(b64block)
                p.stdin.write(tail)
                p.stdin.close()
            except BrokenPipeError:
                pass
        w = threading.Thread(target=feed)
        w.start()
        rc, rss = wait_rss(p)
        w.join()
        for t in ts:
            t.join()
        print("# mime parse --extract of %d octets: exit %d, peak RSS %s MB" %
              (total, rc, show(rss)))
        if rc != 0:
            return "exit %d: %s" % (rc, res.get("err", b"").decode("utf-8", "replace")[:500])
        files = os.listdir(out)
        sizes = [os.path.getsize(os.path.join(out, f)) for f in files]
        want = 57 * 13443 * NBLOCKS
        if want not in sizes:
            return "extracted %r (%r), none of %d octets" % (files, sizes, want)
        return rss_problem(rss)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    exe = release_binary()
    tmp = tempfile.mkdtemp(prefix="mw-memory-")
    srv = Pop3Server()
    names = ["RSS runner self-check: a command filling 32 MB shows at least 32 MB",
             "release build: pop3 retr of a 1 GiB message, peak RSS <= 16 MB",
             "release build: fetch of a 1 GiB message into a Maildir, peak RSS <= 16 MB",
             "release build: mime parse --extract of a 1 GiB message, peak RSS <= 16 MB"]
    fns = [lambda: case_runner_measures(tmp), lambda: case_pop3_retr(exe, srv, tmp), lambda: case_fetch(exe, srv, tmp),
           lambda: case_mime_extract(exe, tmp)]
    print("1..%d" % len(names))
    failed = 0
    no_runner = build_runner(tmp) if exe else None
    try:
        for n, (name, fn) in enumerate(zip(names, fns), 1):
            if not exe:
                print("ok %d - %s # SKIP no release build (scripts/test.sh builds "
                      "$MW_BUILD_DIR-release; or set MW_RELEASE_BUILD_DIR)" % (n, name))
                continue
            if no_runner:
                print("ok %d - %s # SKIP %s" % (n, name, no_runner))
                continue
            try:
                why = fn()
            except Exception as e:  # a crash of the test is a failure
                why = "%s: %s" % (type(e).__name__, e)
            if why and why.startswith("SKIP "):
                print("ok %d - %s # SKIP %s" % (n, name, why[5:]))
            elif why or srv.errors:
                failed += 1
                print("not ok %d - %s" % (n, name))
                for line in str(why or srv.errors).splitlines():
                    print("# " + line)
            else:
                print("ok %d - %s" % (n, name))
            sys.stdout.flush()
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
