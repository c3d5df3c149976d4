#!/usr/bin/env python3
"""The stub resolver (src/resolve) against the scripted DNS server
(tests/tools/dnsserver.py), through tests/tools/resolve_probe: each case a
resolv.conf and a hosts file of its own, one lookup, its addresses or its
error checked.  Timeouts in resolv.conf are generous except where the case
is the timeout itself (a silent server); no verdict depends on speed.  TAP.

    test_resolve_server.py PROBE DNSSERVER_DIR
"""

import os
import subprocess
import sys
import tempfile

probe, tools = sys.argv[1], sys.argv[2]
sys.path.insert(0, tools)
import dnsserver  # noqa: E402

main = dnsserver.Server("main")
backup = dnsserver.Server("backup")
tmp = tempfile.mkdtemp(prefix="mw-resolve-")
n = 0
failed = 0


def conf(text):
    global n
    path = os.path.join(tmp, "f%d" % n)
    n += 1
    with open(path, "w") as f:
        f.write(text)
    return path


ONE = "nameserver [127.0.0.1]:%d\noptions timeout:30 attempts:1\n" % main.port
BOTH = ("nameserver [127.0.0.1]:%d\nnameserver [127.0.0.1]:%d\nsearch test\n"
        "options timeout:30 attempts:1\n" % (main.port, backup.port))
HOSTS = conf("# hosts\n127.0.0.1 mail.hosts Alias # comment\n::1 mail.hosts\n"
             "192.0.2.200 ok.test\n")
EMPTY = conf("")

cases = []


def case(desc, resolv, name, check, family=0, hosts=EMPTY):
    cases.append((desc, resolv, name, check, family, hosts))


def addrs(*want):
    return lambda out: out == "addrs " + " ".join(want)


def error(code, *parts):
    return lambda out: out.startswith("error %d " % code) and all(p in out for p in parts)


case("A and AAAA, IPv6 first (RFC 8305 §4)", ONE, "ok.test",
     addrs("2001:db8::1", "192.0.2.1", "192.0.2.2"))
case("a final dot: the name as it is", ONE, "ok.test.", addrs("2001:db8::1", "192.0.2.1", "192.0.2.2"))
case("family 4: A only", ONE, "ok.test", addrs("192.0.2.1", "192.0.2.2"), family=4)
case("family 6: AAAA only", ONE, "ok.test", addrs("2001:db8::1"), family=6)
case("no AAAA: the A record", ONE, "v4only.test", addrs("192.0.2.7"))
case("no A for family 6: no address", ONE, "v4only.test",
     error(-3, "v4only.test: no address (no AAAA record)"), family=6)
case("NXDOMAIN named with its server", ONE, "nx.test",
     error(-3, "nx.test: no such name (NXDOMAIN) from 127.0.0.1:%d" % main.port))
case("SERVFAIL, then the second server answers", BOTH, "servfail.test", addrs("192.0.2.9"))
case("SERVFAIL from the only server", ONE, "servfail.test",
     error(-3, "servfail.test: server failure (SERVFAIL) (from 127.0.0.1:%d)" % main.port))
case("a silent server: the timeout of resolv.conf, named",
     "nameserver [127.0.0.1]:%d\nnameserver [127.0.0.1]:%d\noptions timeout:1 attempts:1\n"
     % (main.port, backup.port), "silent.test",
     error(-4, "silent.test: no answer within 1000 ms from 2 servers (1 attempt each)"))
case("truncated over UDP: asked again over TCP, every address kept up to 16", ONE, "tc.test",
     addrs(*["192.0.2.%d" % i for i in range(100, 116)]))
case("a reply with another ID is ignored, the right one taken", ONE, "wrongid.test",
     addrs("192.0.2.11"))
case("a reply to another question is refused, named", ONE, "mismatch.test",
     error(-10, "mismatch.test: the reply's question does not match"))
case("a compression pointer loop ends with an error", ONE, "ptrloop.test",
     error(-10, "a compression pointer loops or points forward"))
case("a CNAME chain (compressed) is followed", ONE, "cname.test", addrs("192.0.2.12"))
case("a CNAME chain of 10 is refused", ONE, "longchain.test",
     error(-10, "the CNAME chain is longer than 8 names"))
case("garbage after the right ID is refused", ONE, "garbage.test", error(-10, "garbage.test: "))
case("a UDP reply over 512 octets is refused", ONE, "big.test",
     error(-10, "a UDP reply is over 512 octets"))
case("the search list (ndots 1): short -> short.test", BOTH, "short", addrs("192.0.2.13"))
case("NXDOMAIN after the search list, named as given", BOTH, "nosuch",
     error(-3, "nosuch: no such name (NXDOMAIN)", "also with the search list"))
case("the hosts file first: both families, IPv6 first", ONE, "mail.hosts",
     addrs("::1", "127.0.0.1"), hosts=HOSTS)
case("the hosts file: an alias, without case", ONE, "ALIAS", addrs("127.0.0.1"), hosts=HOSTS)
case("the hosts file wins over DNS", ONE, "ok.test", addrs("192.0.2.200"), hosts=HOSTS)
case("the hosts file for family 6", ONE, "mail.hosts", addrs("::1"), family=6, hosts=HOSTS)
case("a bad name is refused before any query", ONE, "bad..name", error(-2, "empty label"))
case("a server that is not there (ICMP): the next one answers",
     "nameserver [127.0.0.1]:1\nnameserver [127.0.0.1]:%d\noptions timeout:30\n"
     % main.port, "ok.test", addrs("2001:db8::1", "192.0.2.1", "192.0.2.2"))

print("1..%d" % (len(cases) + 2))
t = 0
for desc, resolv, name, check, family, hosts in cases:
    t += 1
    r = subprocess.run([probe, conf(resolv), hosts, name, str(family)], capture_output=True,
                       text=True, timeout=300)
    out = r.stdout.strip()
    good = check(out) and not r.stderr.strip()
    if not good:
        failed = 1
    print("%sok %d - %s" % ("" if good else "not ", t, desc))
    print("# %s -> %s" % (name, out))
    for line in r.stderr.strip().splitlines()[:20]:
        print("# stderr: " + line)

t += 1
good = main.counts.get(("tc.test", "tcp"), 0) >= 1
print("%sok %d - the truncated reply was asked again over TCP" % ("" if good else "not ", t))
t += 1
good = main.counts.get(("silent.test", "udp"), 0) >= 1 and backup.counts.get(
    ("silent.test", "udp"), 0) >= 1
print("%sok %d - the silent case asked both servers" % ("" if good else "not ", t))
sys.exit(failed)
