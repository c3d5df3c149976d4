#!/usr/bin/env python3
"""A tiny scriptable TCP/TLS client for the scripted server's self-tests.

    client_probe.py [--host H] --port P [--timeout SEC] ACTION...

Actions, done in order:
  send:TEXT        send TEXT + CRLF
  raw:ESC          send bytes (escapes \\r \\n \\t \\\\ \\xNN), nothing appended
  recv[:N]         read N lines (default 1), print each as '< ' + escaped bytes
  recvbytes:N      read exactly N bytes, print '< N bytes, sha256 HEX'
  recvall          read until the server closes; print '< N bytes, M lines, sha256 HEX'
  eof              the server must close now (no more bytes)
  tls:CA           TLS handshake, verifying the chain with CA and the name 'localhost'
  tlscert:CA:CERT:KEY  the same, presenting a client certificate
  sleep:MS         wait
  close            close the connection
  halfclose        shutdown(SHUT_WR) (plain TCP only)
  connect[:PORT]   (re)connect, to PORT or --port
  idle             wait (up to --timeout) for the server to close, print what came
Exit: 0 done; 3 closed when a line/EOF was expected otherwise; 4 read timeout;
5 TLS failure; 6 connection refused; 7 connection reset; 2 usage.
Every line printed on stdout is what the server sent, so a case can check
it exactly; errors go to stderr as 'probe: ...'."""
import hashlib
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from casefile import decode_esc  # noqa: E402


class Fail(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def esc(data):
    out = []
    for b in data:
        c = chr(b)
        if c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif c == "\\":
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


class Probe:
    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.buf = b""

    def connect(self, port=None):
        self.close()
        try:
            self.sock = socket.create_connection((self.host, port or self.port), self.timeout)
        except ConnectionRefusedError:
            raise Fail(6, f"connection to port {port or self.port} refused") from None
        except ConnectionResetError:
            # The server's RST can land before connect() has reported success.
            raise Fail(7, "connection reset by the server (while connecting)") from None
        self.sock.settimeout(self.timeout)
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _recv(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Fail(4, f"read timed out after {self.timeout:g} s") from None
        except ConnectionResetError:
            raise Fail(7, "connection reset by the server") from None
        except ssl.SSLError as e:
            raise Fail(5, f"TLS read error: {e.reason or e}") from None
        return data

    def line(self):
        while b"\n" not in self.buf:
            data = self._recv()
            if not data:
                if self.buf:
                    rest, self.buf = self.buf, b""
                    return rest
                raise Fail(3, "the server closed the connection")
            self.buf += data
        i = self.buf.index(b"\n") + 1
        ln, self.buf = self.buf[:i], self.buf[i:]
        return ln

    def nbytes(self, n):
        buf = bytearray(self.buf)   # bytearray: appending is linear, not quadratic
        while len(buf) < n:
            data = self._recv()
            if not data:
                raise Fail(3, f"the server closed after {len(buf)} of {n} bytes")
            buf += data
        out, self.buf = bytes(buf[:n]), bytes(buf[n:])
        return out

    def rest(self):
        chunks = [self.buf]
        self.buf = b""
        while True:
            data = self._recv()
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def tls(self, ca, cert=None, key=None):
        if self.buf:
            raise Fail(5, f"{len(self.buf)} bytes arrived before the TLS handshake: {esc(self.buf[:60])}")
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        except ssl.SSLCertVerificationError as e:
            raise Fail(5, f"certificate rejected: {e.verify_message}") from None
        except (ssl.SSLError, OSError) as e:
            raise Fail(5, f"TLS handshake failed: {getattr(e, 'reason', None) or e}") from None
        print(f"* TLS {self.sock.version()}", flush=True)


def run(args, probe):
    for act in args:
        verb, _, arg = act.partition(":")
        if verb != "connect" and verb != "sleep" and probe.sock is None:
            raise Fail(2, f"{act}: not connected")
        if verb == "send":
            probe.sock.sendall(arg.encode() + b"\r\n")
        elif verb == "raw":
            probe.sock.sendall(decode_esc(arg))
        elif verb == "recv":
            for _ in range(int(arg or 1)):
                print("< " + esc(probe.line()), flush=True)
        elif verb == "recvbytes":
            data = probe.nbytes(int(arg))
            print(f"< {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}", flush=True)
        elif verb == "recvall":
            data = probe.rest()
            nlines = data.count(b"\n")
            print(f"< {len(data)} bytes, {nlines} lines, "
                  f"sha256 {hashlib.sha256(data).hexdigest()}", flush=True)
        elif verb == "eof":
            data = probe.buf or probe._recv()
            if data:
                raise Fail(1, f"expected the server to close, got {esc(data[:80])}")
            print("* server closed", flush=True)
        elif verb == "idle":
            try:
                data = probe.rest()
                print(f"* server closed after {len(data)} bytes", flush=True)
            except Fail as e:
                raise Fail(e.code, f"idle: {e}") from None
        elif verb == "tls":
            probe.tls(arg)
        elif verb == "tlscert":
            ca, cert, key = arg.split(":")
            probe.tls(ca, cert, key)
        elif verb == "sleep":
            time.sleep(int(arg) / 1000)
        elif verb == "close":
            probe.close()
        elif verb == "halfclose":
            probe.sock.shutdown(socket.SHUT_WR)
        elif verb == "connect":
            probe.connect(int(arg) if arg else None)
        else:
            raise Fail(2, f"unknown action {act!r}")


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--no-connect", action="store_true",
                    help="do not connect before the first action")
    ap.add_argument("actions", nargs="*")
    a = ap.parse_args(argv)
    probe = Probe(a.host, a.port, a.timeout)
    try:
        if not a.no_connect:
            probe.connect()
        run(a.actions, probe)
    except Fail as e:
        print(f"probe: {e}", file=sys.stderr)
        return e.code
    except (BrokenPipeError, ConnectionResetError) as e:
        print(f"probe: connection reset by the server (while sending): {e}", file=sys.stderr)
        return 7
    finally:
        probe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
