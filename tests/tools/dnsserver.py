#!/usr/bin/env python3
"""A scripted DNS server for the stub resolver's tests (src/resolve), on
127.0.0.1, UDP and TCP on one free port; the Python standard library only.

What it answers depends on the name asked (RFC 1035 §4.1 messages):
  ok.test         A 192.0.2.1 192.0.2.2, AAAA 2001:db8::1
  v4only.test     A 192.0.2.7, no AAAA
  mail.test       A 127.0.0.1, no AAAA (the interop fetch)
  cached.test     A 127.0.0.1 with TTL 3600, no AAAA (the loop's cache)
  ttl0.test       A 127.0.0.1 with TTL 0, no AAAA (not to be kept)
  mail2.test      SERVFAIL from a "main" server, A 127.0.0.1 from a "backup"
  tcmail.test     over UDP an empty reply with TC set; over TCP A 127.0.0.1
  short.test      A 192.0.2.13 (found through the search list)
  servfail.test   SERVFAIL from a "main" server, A 192.0.2.9 from a "backup"
  silent.test     no reply at all
  tc.test         over UDP an empty reply with TC set; over TCP 20 A records
  wrongid.test    first a reply with another ID, then the right one
  mismatch.test   a reply whose question is another name
  ptrloop.test    an answer whose owner name is a pointer to itself
  cname.test      CNAME a.cname.test, CNAME b.cname.test, A 192.0.2.12
  longchain.test  a chain of 10 CNAMEs
  garbage.test    the right ID, then random octets
  big.test        a UDP reply of over 512 octets
  anything else   NXDOMAIN

Run alone, it prints its port on a line and serves until its standard input
closes: `python3 dnsserver.py [--role main|backup] [--log FILE]`; with --log
a line "NAME TYPE TRANSPORT" is appended to FILE for each query, before it
is answered.
"""

import os
import socket
import struct
import sys
import threading


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_query(msg):
    """(id, name, qtype, question octets) of a query, or None."""
    if len(msg) < 17:
        return None
    qid = struct.unpack("!H", msg[:2])[0]
    pos, labels = 12, []
    while pos < len(msg) and msg[pos] != 0:
        n = msg[pos]
        if n > 63 or pos + 1 + n > len(msg):
            return None
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    if pos + 5 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[pos + 1:pos + 3])[0]
    return qid, ".".join(labels), qtype, msg[12:pos + 5]


def rr(owner, rtype, rdata, ttl=60):
    """A record of class IN, TTL 60; owner already in wire form."""
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def reply(qid, question, answers=(), rcode=0, tc=False, qdcount=1):
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    head = struct.pack("!HHHHHH", qid, flags, qdcount, len(answers), 0, 0)
    return head + question + b"".join(answers)


QPTR = b"\xc0\x0c"  # the question's name (RFC 1035 §4.1.4)
A, CNAME, AAAA = 1, 5, 28


def addr_rrs(qtype, v4, v6=(), ttl=60):
    if qtype == A:
        return [rr(QPTR, A, socket.inet_pton(socket.AF_INET, a), ttl) for a in v4]
    if qtype == AAAA:
        return [rr(QPTR, AAAA, socket.inet_pton(socket.AF_INET6, a), ttl) for a in v6]
    return []


class Server:
    def __init__(self, role="main", log=None):
        self.role = role
        self.log = log
        self.counts = {}
        self.lock = threading.Lock()
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(16)
        for f in (self.serve_udp, self.serve_tcp):
            threading.Thread(target=f, daemon=True).start()

    def count(self, name, transport, qtype=0):
        with self.lock:
            k = (name, transport)
            self.counts[k] = self.counts.get(k, 0) + 1
            if self.log:
                with open(self.log, "a") as f:
                    f.write("%s %d %s\n" % (name, qtype, transport))

    def answer(self, msg, transport):
        """The messages to send back for one query (maybe none)."""
        q = parse_query(msg)
        if not q:
            return []
        qid, name, qtype, question = q
        self.count(name, transport, qtype)
        if name == "cached.test":
            return [reply(qid, question, addr_rrs(qtype, ["127.0.0.1"], ttl=3600))]
        if name == "ttl0.test":
            return [reply(qid, question, addr_rrs(qtype, ["127.0.0.1"], ttl=0))]
        if name == "ok.test":
            return [reply(qid, question, addr_rrs(qtype, ["192.0.2.1", "192.0.2.2"],
                                                  ["2001:db8::1"]))]
        if name == "v4only.test":
            return [reply(qid, question, addr_rrs(qtype, ["192.0.2.7"]))]
        if name == "mail.test":
            return [reply(qid, question, addr_rrs(qtype, ["127.0.0.1"]))]
        if name == "mail2.test":
            if self.role == "main":
                return [reply(qid, question, rcode=2)]
            return [reply(qid, question, addr_rrs(qtype, ["127.0.0.1"]))]
        if name == "tcmail.test":
            if transport == "udp":
                return [reply(qid, question, tc=True)]
            return [reply(qid, question, addr_rrs(qtype, ["127.0.0.1"]))]
        if name == "short.test":
            return [reply(qid, question, addr_rrs(qtype, ["192.0.2.13"]))]
        if name == "servfail.test":
            if self.role == "main":
                return [reply(qid, question, rcode=2)]
            return [reply(qid, question, addr_rrs(qtype, ["192.0.2.9"]))]
        if name == "silent.test":
            return []
        if name == "tc.test":
            if transport == "udp":
                return [reply(qid, question, tc=True)]
            return [reply(qid, question,
                          addr_rrs(qtype, ["192.0.2.%d" % i for i in range(100, 120)]))]
        if name == "wrongid.test":
            good = reply(qid, question, addr_rrs(qtype, ["192.0.2.11"]))
            bad = reply(qid ^ 0x5555, question, addr_rrs(qtype, ["198.51.100.66"]))
            return [bad, good]
        if name == "mismatch.test":
            other = wire_name("other.test") + question[-4:]
            return [reply(qid, other, [rr(QPTR, A, bytes([198, 51, 100, 1]))] if qtype == A
                          else [])]
        if name == "ptrloop.test":
            # The answer's owner: a pointer to itself, at offset 12 + len(question).
            off = 12 + len(question)
            selfptr = bytes([0xc0 | off >> 8, off & 0xff])
            return [reply(qid, question, [rr(selfptr, A, bytes([198, 51, 100, 2]))])]
        if name == "cname.test":
            return [self.cname_chain(qid, question, qtype, 2, "192.0.2.12")]
        if name == "longchain.test":
            return [self.cname_chain(qid, question, qtype, 10, "198.51.100.3")]
        if name == "garbage.test":
            return [msg[:2] + b"\x81\x80" + os.urandom(40)]
        if name == "big.test":
            return [reply(qid, question,
                          addr_rrs(qtype, ["192.0.2.%d" % i for i in range(1, 60)],
                                   ["2001:db8::%x" % i for i in range(1, 60)]))]
        return [reply(qid, question, rcode=3)]

    @staticmethod
    def cname_chain(qid, question, qtype, hops, last_addr):
        """CNAMEs from the question to n1.<name>, ..., then the address;
        every target written as a label and a pointer to the previous
        owner (compression)."""
        answers, owner_off = [], 12
        off = 12 + len(question)
        for i in range(hops):
            target = bytes([2]) + b"n%d" % i if i < 10 else bytes([3]) + b"n%d" % i
            target += bytes([0xc0 | owner_off >> 8, owner_off & 0xff])
            owner = bytes([0xc0 | owner_off >> 8, owner_off & 0xff])
            r = rr(owner, CNAME, target)
            answers.append(r)
            owner_off = off + len(owner) + 10  # the target's position
            off += len(r)
        final = bytes([0xc0 | owner_off >> 8, owner_off & 0xff])
        if qtype == A:
            answers.append(rr(final, A, socket.inet_pton(socket.AF_INET, last_addr)))
        return reply(qid, question, answers)

    def serve_udp(self):
        while True:
            try:
                msg, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            for out in self.answer(msg, "udp"):
                self.udp.sendto(out, peer)

    def serve_tcp(self):
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_conn, args=(conn,), daemon=True).start()

    def serve_conn(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    msg, buf = buf[2:2 + n], buf[2 + n:]
                    for out in self.answer(msg, "tcp"):
                        # The length and the message in two writes: the
                        # client must put them together.
                        conn.sendall(struct.pack("!H", len(out)))
                        conn.sendall(out)


def main():
    role, log = "main", None
    args = sys.argv[1:]
    while len(args) >= 2 and args[0] in ("--role", "--log"):
        if args[0] == "--role":
            role = args[1]
        else:
            log = args[1]
        args = args[2:]
    s = Server(role, log)
    sys.stdout.write("%d\n" % s.port)  # one write: the reader stops at the newline
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes it
    print("dnsserver: %s on port %d: standard input closed, stopping" % (role, s.port),
          file=sys.stderr)


if __name__ == "__main__":
    main()
