#!/usr/bin/env python3
"""The scripted server: plays the [server] sections of a case file.

Used by run_cases.py (in-process, one thread per [server] section), or by
hand for debugging a client:

    python3 tests/script/server.py [--certdir DIR] FILE.case

prints 'port NAME=N' for every section, plays the scripts against whatever
connects, and prints the result of each (Ctrl-C stops it).

Every wait is bounded: by the case deadline and by a 'stop' signal the
runner gives when the client has exited (a self-pipe wakes the waits, so
nothing polls).  Format: tests/script/README.md."""
import base64
import collections
import os
import random
import re
import selectors
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import casefile  # noqa: E402

MAX_LINE = 1 << 20          # longest client line we buffer
MAX_UNTIL_LINES = 10_000_000
CHUNK = 1 << 16


class Mismatch(Exception):
    """The client did not do what the script says; str() says where/what."""


class _Stopped(Exception):
    """The runner said stop (the client exited) while we had to wait."""


class _Eof(Exception):
    pass


class _ClientGone(Exception):
    """The client closed or exited while the server was only talking or
    sleeping (a client that gives up on purpose: oversize line, deadline).
    The script ends; it fails only if a later directive needed the client
    (but see _reconnect_after: a closed connection before an `accept`).
    exited: the client process ended (not only this connection)."""

    def __init__(self, msg, exited=False):
        super().__init__(msg)
        self.exited = exited


# Directives that need the client to do something; the others only send.
NEEDS_CLIENT = {"C", "C-re", "C-any", "C-until", "C-raw", "accept", "tls", "scram-first"}


class _EndScript(Exception):
    """Ends the script successfully (C-opt saw a close, may-fail TLS failed)."""


def show(data, limit=160):
    """A readable, bounded quote of client/server bytes: printable ASCII as
    is, CR LF TAB as \\r \\n \\t, anything else as \\xNN."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    more = len(data) - limit
    out = []
    for b in bytes(data[:limit]):
        if b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x5C:
            out.append("\\\\")
        elif b == 0x27:
            out.append("\\'")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    q = "'" + "".join(out) + "'"
    return q + (f"...(+{more} bytes)" if more > 0 else "")


class Stopper:
    """A one-shot event that select() can wait on (a self-pipe)."""

    def __init__(self):
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        self.flag = threading.Event()

    def stop(self):
        if not self.flag.is_set():
            self.flag.set()
            os.write(self.wfd, b"x")

    def close(self):
        os.close(self.rfd)
        os.close(self.wfd)


class Conn:
    """A client connection: buffered reads, TLS upgrade, bounded waits."""

    def __init__(self, sock, stopper, deadline, log):
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.sock = sock
        self.stopper = stopper
        self.deadline = deadline
        self.log = log
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.tls = False

    def _wait(self, events):
        if events == selectors.EVENT_READ and self.tls and self.sock.pending():
            return
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, events)
            sel.register(self.stopper.rfd, selectors.EVENT_READ)
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise Mismatch("timed out waiting for the client (case timeout)")
                ready = sel.select(left)
                if any(k.fileobj is self.sock for k, _ in ready):
                    return
                if ready:
                    raise _Stopped()

    def _fill(self):
        """Reads more client bytes into buf; sets eof at end of stream."""
        if self.eof:
            return False
        while True:
            try:
                data = self.sock.recv(CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError):
                self._wait(selectors.EVENT_READ)
                continue
            except ssl.SSLWantWriteError:
                self._wait(selectors.EVENT_WRITE)
                continue
            except ConnectionResetError:
                self.eof = self.reset = True
                return False
            except ssl.SSLError as e:
                # A TLS client that closes without close_notify: treat as EOF
                # but keep the detail for the transcript.
                self.log.note(f"TLS read error: {e.reason or e}")
                self.eof = True
                return False
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True

    def read_line(self):
        """-> (line without ending, ending) or None at a clean EOF.
        ending is b'\\r\\n', b'\\n', or b'' (EOF in the middle of a line)."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if line.endswith(b"\r\n"):
                    return line[:-2], b"\r\n"
                return line[:-1], b"\n"
            start = len(self.buf)
            if len(self.buf) > MAX_LINE:
                raise Mismatch(f"client line longer than {MAX_LINE} bytes without LF: "
                               f"{show(self.buf)}")
            if not self._fill():
                if self.buf:
                    line = bytes(self.buf)
                    self.buf.clear()
                    return line, b""
                return None

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                break
        got = bytes(self.buf[:n])
        del self.buf[:n]
        return got

    def send(self, data):
        view = memoryview(data)
        try:
            while view:
                try:
                    n = self.sock.send(view[:CHUNK])
                except (BlockingIOError, ssl.SSLWantWriteError):
                    self._wait(selectors.EVENT_WRITE)
                    continue
                except ssl.SSLWantReadError:
                    self._wait(selectors.EVENT_READ)
                    continue
                view = view[n:]
        except (BrokenPipeError, ConnectionResetError) as e:
            raise _ClientGone(f"the client closed the connection while the server was "
                              f"sending ({e.strerror or e})") from None
        except ssl.SSLError as e:
            raise _ClientGone(f"TLS error while the server was sending: {e.reason or e}") from None
        except _Stopped:
            raise _ClientGone("the client exited while the server was sending",
                              exited=True) from None

    def starttls(self, ctx):
        self.sock = ctx.wrap_socket(self.sock, server_side=True,
                                    do_handshake_on_connect=False)
        self.tls = True
        while True:
            try:
                self.sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                self._wait(selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                self._wait(selectors.EVENT_WRITE)

    def leftover(self):
        """Client bytes already here but not read by the script."""
        if self.buf:
            return bytes(self.buf)
        if self.eof:
            return b""
        try:
            if self.tls:
                data = self.sock.recv(CHUNK) if self.sock.pending() else b""
                if not data:
                    data = self.sock.recv(CHUNK)
            else:
                data = self.sock.recv(CHUNK, socket.MSG_DONTWAIT)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return b""
        except (OSError, ssl.SSLError):
            self.eof = True
            return b""
        if not data:
            self.eof = True
        return data

    def close(self, rst=False):
        if self.sock is None:
            return
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
            elif self.tls:
                try:
                    self.sock.unwrap()      # sends close_notify, won't wait for the reply
                except (ssl.SSLError, OSError, ValueError):
                    pass
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def half_close(self):
        if self.tls:
            try:
                self.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Transcript:
    """What was said, kept bounded: the last entries plus counters."""

    def __init__(self, keep=60):
        self.entries = collections.deque(maxlen=keep)
        self.dropped = 0
        # Every line each side said, whole, for comparing two runs of a case
        # (run_cases.py --engines); a line the script matched by a pattern
        # is kept as that pattern, since it may differ between runs.
        self.canon = []

    def add(self, who, data):
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        self.entries.append(f"{who}: {show(data, 120)}")
        if who in ("C", "S"):
            self.canon.append((who, data.encode("utf-8") if isinstance(data, str) else bytes(data)))

    def canon_pattern(self, what):
        """The last client line is only known to match `what`."""
        if self.canon and self.canon[-1][0] == "C":
            self.canon[-1] = ("C", f"<{what}>".encode("utf-8", "surrogateescape"))

    def note(self, text):
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        self.entries.append(f"* {text}")

    def lines(self):
        head = [f"... ({self.dropped} earlier entries)"] if self.dropped else []
        return head + list(self.entries)


class ScriptServer:
    """Plays one [server] section on its own listening port."""

    def __init__(self, case_path, server, certdir=None):
        self.case_path = case_path
        self.server = server
        self.certdir = certdir
        host = server.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.stopper = Stopper()
        self.log = Transcript()
        self.error = None       # str when the script failed
        self.done = threading.Event()
        self.played = threading.Event()     # the script itself is over
        self.directives = list(server.directives)
        self.deadline = None
        self.thread = None
        self.connections = 0

    @property
    def label(self):
        return self.server.label

    def start(self, directives, deadline):
        """directives: the section's directives with placeholders replaced."""
        self.directives = directives
        self.deadline = deadline
        self.thread = threading.Thread(target=self._run, name=self.label, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopper.stop()

    def join(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self):
        try:
            self.lsock.close()
        finally:
            self.stopper.close()

    def _where(self, d):
        return f"{os.path.basename(self.case_path)}:{d.lineno}: {self.label}"

    # -- the player --------------------------------------------------------

    def _accept(self, d):
        with selectors.DefaultSelector() as sel:
            sel.register(self.lsock, selectors.EVENT_READ)
            sel.register(self.stopper.rfd, selectors.EVENT_READ)
            while True:
                try:
                    sock, peer = self.lsock.accept()
                    break
                except BlockingIOError:
                    pass
                left = self.deadline - time.monotonic()
                what = "the client to connect" if d is None else "the client to connect again (accept)"
                if left <= 0:
                    raise Mismatch(f"timed out waiting for {what}")
                ready = sel.select(left)
                if ready and not any(k.fileobj is self.lsock for k, _ in ready):
                    raise Mismatch(f"the client exited without connecting; expected {what}")
        self.connections += 1
        self.log.note(f"connection {self.connections} accepted from {peer[0]}:{peer[1]}")
        return Conn(sock, self.stopper, self.deadline, self.log)

    def _run(self):
        conn = None
        cur = None
        try:
            ds = self.directives
            if len(ds) == 1 and ds[0].op == "no-connection":
                self._no_connection()
                return
            conn = self._accept(None)
            i = 0
            while i < len(ds):
                d = ds[i]
                cur = d
                try:
                    conn = self._step(conn, d)
                except _ClientGone as gone:
                    nxt = self._reconnect_after(ds, i + 1, gone)
                    if nxt is not None:
                        # The client dropped this connection on purpose and
                        # connects again: what was left to send on the old
                        # one is moot; go on at the accept.
                        conn.log.note(f"{gone}; the script goes on at the accept on line "
                                      f"{ds[nxt].lineno}")
                        conn.close()
                        conn = None
                        i = nxt
                        continue
                    self._client_gone(conn, ds[i + 1:], str(gone))
                    conn = None
                    break
                i += 1
            cur = None
            if conn is not None:
                self._finish(conn)
                conn = None
        except _EndScript:
            pass
        except Mismatch as e:
            where = self._where(cur) if cur else f"{os.path.basename(self.case_path)}:" \
                f"{self.server.lineno}: {self.label}"
            self.error = f"{where}: {e}"
        except _Stopped:
            where = self._where(cur) if cur else self.label
            self.error = f"{where}: the client exited while the server waited at: {cur!r}"
        except Exception as e:  # a bug in the player itself must not hide
            where = self._where(cur) if cur else self.label
            self.error = f"{where}: internal error in server.py: {type(e).__name__}: {e}"
        finally:
            if conn is not None:
                conn.close()
            self.played.set()
            if self.error is None:
                self._check_extra_connections()
            self.done.set()

    def _reconnect_after(self, ds, start, gone):
        """Index of the `accept` that comes next when the client closed the
        connection (it did not exit) and only send-only directives stand
        before that accept; else None."""
        if gone.exited:
            return None
        for k in range(start, len(ds)):
            if ds[k].op == "accept":
                return k
            if ds[k].op in NEEDS_CLIENT:
                return None
        return None

    def _client_gone(self, conn, rest, why):
        (conn.log if conn else self.log).note(why)
        need = next((d for d in rest if d.op in NEEDS_CLIENT), None)
        if need is not None:
            raise Mismatch(f"{why}; the script still expected at line {need.lineno}: {need!r}")
        if conn is not None:
            conn.close()
        (conn.log if conn else self.log).note("the rest of the script only sends: it ends here")

    def _no_connection(self):
        # Waits for the runner's stop (client exited), then looks whether a
        # connection is queued.  A connection that came and went is still
        # in the accept queue, so this is not racy.
        with selectors.DefaultSelector() as sel:
            sel.register(self.stopper.rfd, selectors.EVENT_READ)
            left = self.deadline - time.monotonic()
            sel.select(max(left, 0))
        try:
            sock, _ = self.lsock.accept()
            sock.close()
            self.error = (f"{os.path.basename(self.case_path)}:{self.directives[0].lineno}: "
                          f"{self.label}: the client connected to a port marked no-connection")
        except BlockingIOError:
            self.log.note("no connection, as expected")

    def _check_extra_connections(self):
        with selectors.DefaultSelector() as sel:
            sel.register(self.stopper.rfd, selectors.EVENT_READ)
            sel.select(max(self.deadline - time.monotonic(), 0))
        try:
            sock, _ = self.lsock.accept()
            sock.close()
            self.error = (f"{os.path.basename(self.case_path)}:{self.server.lineno}: {self.label}: "
                          f"the client opened connection {self.connections + 1}, "
                          f"but the script accepts only {self.connections}")
        except BlockingIOError:
            pass

    def _finish(self, conn):
        """End of script: half-close, then the client must close too and
        must not have sent anything the script did not read."""
        extra = conn.leftover()
        if extra:
            raise Mismatch(f"unexpected client data after the end of the script: {show(extra)}")
        conn.half_close()
        try:
            extra = conn.read_exact(1)
        except _Stopped:
            extra = b""
        if extra:
            extra += conn.leftover()
            raise Mismatch(f"unexpected client data after the end of the script: {show(extra)}")
        conn.close()

    def _expect_line(self, conn, d):
        got = conn.read_line()
        if got is None:
            raise _Eof()
        line, ending = got
        conn.log.add("C", line)
        return line, ending

    @staticmethod
    def _ending_note(ending):
        if ending == b"\n":
            return " (line ended with bare LF, not CRLF)"
        if ending == b"":
            return " (connection closed in the middle of the line)"
        return ""

    def _closed_text(self, conn):
        return "the connection was reset" if conn.reset else "the client closed the connection"

    def _step(self, conn, d):
        op = d.op
        log = conn.log if conn else self.log
        if op == "S":
            data = d.arg.encode("utf-8") + b"\r\n"
            log.add("S", d.arg)
            conn.send(data)
        elif op == "S-raw":
            log.add("S", d.data)
            conn.send(d.data)
        elif op in ("C", "C-re", "C-opt"):
            want = d.arg
            try:
                line, ending = self._expect_line(conn, d)
            except (_Eof, _Stopped):
                if op == "C-opt":
                    log.note(f"client closed instead of optional {want!r}: script ends")
                    raise _EndScript() from None
                raise Mismatch(f"expected {op}: {show(want)}, but {self._closed_text(conn)}") from None
            text = line.decode("utf-8", "surrogateescape")
            ok = re.fullmatch(want, text) is not None if op == "C-re" else text == want
            if op == "C-re":
                log.canon_pattern(f"C-re {want}")
            if not ok or ending != b"\r\n":
                raise Mismatch(f"expected {op}: {show(want)}, got {show(line)}{self._ending_note(ending)}")
        elif op == "C-any":
            for i in range(d.count):
                try:
                    _, ending = self._expect_line(conn, d)
                    log.canon_pattern("C-any")
                except (_Eof, _Stopped):
                    raise Mismatch(f"expected {d.count} line(s) (C-any), "
                                   f"{self._closed_text(conn)} after {i}") from None
        elif op == "C-until":
            for i in range(MAX_UNTIL_LINES):
                got = conn.read_line()
                if got is None:
                    raise Mismatch(f"expected C-until: {show(d.arg)}, {self._closed_text(conn)} "
                                   f"after {i} other lines")
                line, ending = got
                if line.decode("utf-8", "surrogateescape") != d.arg:
                    log.canon.append(("C", bytes(line)))  # not shown, but compared
                if line.decode("utf-8", "surrogateescape") == d.arg:
                    log.add("C", line)
                    log.note(f"C-until skipped {i} lines")
                    if ending != b"\r\n":
                        raise Mismatch(f"C-until: {show(d.arg)}{self._ending_note(ending)}")
                    break
            else:
                raise Mismatch(f"C-until: {show(d.arg)} not seen in {MAX_UNTIL_LINES} lines")
        elif op == "C-raw":
            try:
                got = conn.read_exact(len(d.data))
            except _Stopped:
                got = bytes(conn.buf)
            log.add("C", got)
            if got != d.data:
                pos = next((i for i, (a, b) in enumerate(zip(got, d.data)) if a != b),
                           min(len(got), len(d.data)))
                tail = "" if len(got) == len(d.data) else \
                    f" ({len(got)} of {len(d.data)} bytes before the client stopped)"
                raise Mismatch(f"C-raw: first difference at byte {pos}: expected "
                               f"{show(d.data[pos:pos + 40])}, got {show(got[pos:pos + 40])}{tail}")
        elif op == "tls":
            self._tls(conn, d)
        elif op == "sleep":
            log.note(f"sleep {d.ms} ms")
            if self.stopper.flag.wait(d.ms / 1000.0):
                raise _ClientGone(f"the client exited during sleep {d.ms}", exited=True)
        elif op == "scram-first":
            # RFC 5802 §7: the client-first message is the last word of the
            # AUTH line (base64); the server-first message extends its nonce.
            try:
                line, ending = self._expect_line(conn, d)
            except (_Eof, _Stopped):
                raise Mismatch(f"expected an AUTH line with a SCRAM client-first message, "
                               f"but {self._closed_text(conn)}") from None
            log.canon_pattern("SCRAM client-first")
            try:
                first = base64.b64decode(line.split()[-1], validate=True).decode("ascii")
                cnonce = next(f[2:] for f in first.split(",") if f.startswith("r="))
            except (ValueError, IndexError, StopIteration, UnicodeDecodeError):
                raise Mismatch(f"no SCRAM client-first message in {show(line)}") from None
            msg = f"r={cnonce}SRV,s=QSXCR+Q6sek8bf92,i={d.iterations}"
            log.note(f"S: server-first {msg!r}")
            conn.send(f"{d.prefix} ".encode() + base64.b64encode(msg.encode()) + b"\r\n")
        elif op == "trickle":
            log.note(f"S: trickle {show(d.data, 40)}, one byte every {d.ms} ms")
            for i in range(len(d.data)):
                if i and self.stopper.flag.wait(d.ms / 1000.0):
                    raise _ClientGone(f"the client exited during trickle after {i} bytes",
                                     exited=True)
                conn.send(d.data[i:i + 1])
        elif op == "stall":
            log.note("stall: waiting for the client to close")
            seen = bytearray()      # what the client said meanwhile, for the transcript
            t0 = time.monotonic()
            try:
                while conn._fill():
                    seen += conn.buf[:200 - len(seen)]
                    conn.buf.clear()
            except _Stopped:
                pass
            seen += conn.buf[:200 - len(seen)]
            if seen:
                log.add("C (ignored: stalled)", bytes(seen))
            ms = (time.monotonic() - t0) * 1000
            log.note(f"client {'closed' if conn.eof else 'exited'} {ms:.0f} ms into the stall")
            conn.close()
            # Measured here, from the moment the server went silent, so a
            # deadline test does not count the client's start-up time.
            if d.max_ms is not None and ms > d.max_ms:
                raise Mismatch(f"the client gave up {ms:.0f} ms into the stall, "
                               f"later than max={d.max_ms} ms")
            if d.min_ms is not None and ms < d.min_ms:
                raise Mismatch(f"the client gave up {ms:.0f} ms into the stall, "
                               f"sooner than min={d.min_ms} ms")
            return None
        elif op == "close":
            log.note("server closes the connection")
            conn.close()
            return None
        elif op == "reset":
            log.note("server resets the connection (RST)")
            conn.close(rst=True)
            return None
        elif op == "expect-close":
            try:
                extra = conn.read_exact(1)
            except _Stopped:
                extra = b""
            if extra:
                extra += conn.leftover()
                log.add("C", extra)
                raise Mismatch(f"expected the client to close the connection, got {show(extra)}")
            log.note("client closed the connection")
            conn.close()
            return None
        elif op == "garbage":
            data = random.Random(d.seed).randbytes(d.count)
            log.note(f"S: garbage {d.count} bytes (seed {d.seed})")
            conn.send(data)
        elif op == "lines":
            log.note(f"S: lines {d.count} {d.text!r}")
            batch = []
            size = 0
            for n in range(1, d.count + 1):
                b = d.text.replace("{n}", str(n)).encode("utf-8") + b"\r\n"
                batch.append(b)
                size += len(b)
                if size >= CHUNK:
                    conn.send(b"".join(batch))
                    batch, size = [], 0
            if batch:
                conn.send(b"".join(batch))
        elif op == "repeat":
            log.note(f"S: repeat {d.count} x {show(d.data, 40)}")
            per = max(1, CHUNK // len(d.data))
            left = d.count
            while left:
                k = min(per, left)
                conn.send(d.data * k)
                left -= k
        elif op == "accept":
            if conn is not None:
                self._finish_before_accept(conn)
            return self._accept(d)
        else:
            raise Mismatch(f"unknown directive {op}")
        return conn

    def _finish_before_accept(self, conn):
        extra = conn.leftover()
        if extra:
            raise Mismatch(f"unexpected client data before accept: {show(extra)}")
        conn.log.note("server closes the connection (accept)")
        conn.close()

    def _tls(self, conn, d):
        opts = d.tls
        if self.certdir is None:
            raise Mismatch("tls: no certificate directory")
        # RFC 3207 §4 / RFC 2595 §4: after the STARTTLS/STLS reply the next
        # client bytes must be a TLS handshake record (type 22).  Bytes the
        # script already read, or queued bytes that are not a handshake
        # record, are plaintext the client sent too early (or injected).
        pending = bytes(conn.buf)
        if not pending:
            try:
                peek = conn.sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, OSError):
                peek = b""
            if peek and peek[0] != 0x16:
                pending = peek
        if pending:
            raise Mismatch(f"client sent {len(pending)} bytes before the TLS handshake that the "
                           f"script did not read (plaintext after STARTTLS?): {show(pending)}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert = os.path.join(self.certdir, opts["cert"] + ".pem")
        key = os.path.join(self.certdir, opts["cert"] + ".key")
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise Mismatch(f"tls: cannot load {cert} / {key}: {e}") from None
        ctx.num_tickets = 0
        versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
        if opts["min"]:
            ctx.minimum_version = versions[opts["min"]]
        if opts["max"]:
            ctx.maximum_version = versions[opts["max"]]
        if opts["client_cert"]:
            ctx.verify_mode = ssl.CERT_REQUIRED if opts["client_cert"] == "required" \
                else ssl.CERT_OPTIONAL
            ctx.load_verify_locations(os.path.join(self.certdir, "ca.pem"))
        log = conn.log
        log.note(f"TLS handshake with {opts['cert']}.pem")
        try:
            conn.starttls(ctx)
        except (ssl.SSLError, OSError, _Stopped) as e:
            reason = "the client exited" if isinstance(e, _Stopped) else \
                (getattr(e, "reason", None) or str(e) or type(e).__name__)
            log.note(f"TLS handshake failed: {reason}")
            if opts["fail"]:
                conn.close()
                raise _EndScript() from None
            raise Mismatch(f"TLS handshake with {opts['cert']} failed: {reason}") from None
        log.note(f"TLS handshake done: {conn.sock.version()} {conn.sock.cipher()[0]}")
        if opts["fail"] == "must-fail":
            raise Mismatch(f"the client completed the TLS handshake with certificate "
                           f"{opts['cert']!r}; it must have refused it")
        if opts["client_cn"]:
            peer = conn.sock.getpeercert() or {}
            cns = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
            if opts["client_cn"] not in cns:
                raise Mismatch(f"client certificate CN: expected {opts['client_cn']!r}, "
                               f"got {cns or 'no certificate'}")


def start_servers(case, certdir):
    """Listens on a free port for every [server] section of a parsed case
    (the players start later, once placeholders can be replaced).
    Returns {name: ScriptServer}."""
    servers = {}
    try:
        for s in case.servers:
            servers[s.name] = ScriptServer(case.path, s, certdir)
    except OSError:
        for srv in servers.values():
            srv.close()
        raise
    return servers


def substitute_directives(directives, subst):
    out = []
    for d in directives:
        nd = casefile.Directive(d.lineno, d.op, d.arg, **{k: v for k, v in d.__dict__.items()
                                                        if k not in ("lineno", "op", "arg")})
        if d.op in ("S", "C", "C-opt", "C-until"):
            nd.arg = subst(d.arg, regex=False)
        elif d.op == "C-re":
            nd.arg = subst(d.arg, regex=True)
        elif d.op == "lines":
            nd.text = subst(d.text, regex=False)
        out.append(nd)
    return out


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--certdir", default=os.environ.get("MW_CERT_DIR"))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("case")
    a = ap.parse_args(argv)
    try:
        case = casefile.parse_case(a.case)
    except (casefile.CaseError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    servers = start_servers(case, a.certdir)
    ports = {n: s.port for n, s in servers.items()}

    def subst(text, regex=False):
        def one(m):
            ph = m.group(1)
            if ph == "port" or ph.startswith("port:"):
                v = str(ports[ph[5:]])
            elif ph == "host":
                v = "127.0.0.1"
            else:
                return m.group(0)
            return re.escape(v) if regex else v
        return casefile.PLACEHOLDER_RE.sub(one, text)

    deadline = time.monotonic() + a.timeout
    for name, s in servers.items():
        print(f"port {name or 'default'}={s.port}", flush=True)
    for s in servers.values():
        s.start(substitute_directives(s.server.directives, subst), deadline)
    rc = 0
    try:
        for s in servers.values():
            while not s.played.wait(0.5):   # short waits keep Ctrl-C responsive
                pass
    except KeyboardInterrupt:
        pass
    for s in servers.values():
        s.stop()
    for s in servers.values():
        s.join(5)
    for s in servers.values():
        print(f"{s.label}: {'ok' if s.error is None else 'FAILED'}")
        if s.error:
            rc = 1
            print(f"  {s.error}")
        for line in s.log.lines():
            print(f"  {line}")
        s.close()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
