#!/usr/bin/env python3
"""POP3 retrieval bench: mailwire against the raw pipelined reference, mpop,
curl and Python's poplib, in one run, against a private Dovecot.

Run through bench/run.sh (it builds, starts the servers and exports their
environment).  Prints medians and ratios to the raw reference, and writes the
same as JSON next to the Markdown table in bench/results/."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ENV = os.environ
HOST = "127.0.0.1"
BUILD = ENV["MW_BENCH_BUILD"]
MAILWIRE = os.path.join(BUILD, "cli", "mailwire")
RAW = os.path.join(BUILD, "rawpop3")
HERE = os.path.dirname(os.path.abspath(__file__))
uid, gid = (int(x) for x in ENV["MW_MAIL_OWNER"].split(":"))


def fill(user, count, size):
    """Writes count messages of about size bytes straight into the user's
    Maildir/cur, named with S= and W= so Dovecot needs no reads for sizes."""
    md = os.path.join(ENV["MW_MAILDIR_ROOT"], user, "Maildir")
    cur = os.path.join(md, "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.chown(os.path.join(md, sub), uid, gid)
    for f in os.listdir(cur):
        os.unlink(os.path.join(cur, f))
    line = b"The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrst\n"
    dotline = b".a line that starts with a dot and must be dot-stuffed on the wire\n"
    now = int(time.time())
    for n in range(count):
        head = (f"From: bench@test.domain\nTo: {user}@test.domain\n"
                f"Subject: bench message {n + 1}\nMessage-ID: <b{n}@bench>\n\n").encode()
        body_len = max(0, size - len(head))
        reps = body_len // len(line)
        # Whole message built in memory only for small sizes; big ones stream.
        path_tmp = os.path.join(md, "tmp", f"fill{n}")
        lines = 0
        written = 0
        with open(path_tmp, "wb") as f:
            f.write(head)
            written += len(head)
            lines += head.count(b"\n")
            chunk = (line * 99 + dotline)
            per = chunk.count(b"\n")
            full, rest = divmod(reps, 100)
            block = chunk * 64
            for _ in range(full // 64):
                f.write(block)
            for _ in range(full % 64):
                f.write(chunk)
            f.write(line * rest)
            written += full * len(chunk) + rest * len(line)
            lines += full * per + rest
        wsize = written + lines
        name = f"{now}.M{n}P1.bench,S={written},W={wsize}:2,S"
        os.rename(path_tmp, os.path.join(cur, name))
        os.chown(os.path.join(cur, name), uid, gid)
    return md


def run_once(argv, env=None, cwd=None):
    """Runs argv under GNU time: a forked Python child inherits Python's own
    peak RSS in ru_maxrss, GNU time's small process does not."""
    fd, tfile = tempfile.mkstemp(prefix="mwbench-time-")
    os.close(fd)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", tfile] + argv,
                       capture_output=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    with open(tfile) as f:
        rss_kb, user, system = f.read().split()[-3:]
    os.unlink(tfile)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    return wall, float(user) + float(system), int(rss_kb), out, err, None


def count_files(d):
    n = 0
    for root, _, files in os.walk(d):
        n += len(files)
    return n


def clients(port, mode, user, pw, ca, outdir):
    tlsarg = {"none": "none", "stls": "starttls", "implicit": "implicit"}[mode]
    env = dict(ENV, MAILWIRE_PASSWORD=pw)
    yield "raw", [RAW, HOST, str(port), user, pw, mode, ca], env, None
    mw = [MAILWIRE, "pop3", "--host", HOST, "--port", str(port), "--tls", tlsarg,
          "--user", user, "retr", "all", "-o", outdir]
    mw[2:2] = ["--allow-plaintext-password"] if mode == "none" else ["--cafile", ca]
    yield "mailwire", mw, env, None
    conf = os.path.join(outdir, "..", "mpoprc")
    md = os.path.join(outdir, "mpop-maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    with open(conf, "w") as f:
        f.write(f"account default\nhost {HOST}\nport {port}\nuser {user}\npassword {pw}\n"
                f"auth user\ntls {'off' if mode == 'none' else 'on'}\n"
                f"tls_starttls {'on' if mode == 'stls' else 'off'}\ntls_trust_file {ca}\n"
                f"delivery maildir {md}\nkeep on\nonly_new off\n"
                f"uidls_file {os.path.join(outdir, '..', 'mpop-uidls')}\n")
    os.chmod(conf, 0o600)
    yield "mpop", ["mpop", "-C", conf, "-q", "default"], env, None
    scheme = "pop3s" if mode == "implicit" else "pop3"
    curl = ["curl", "-s", "-S", "--cacert", ca, "-u", f"{user}:{pw}",
            f"{scheme}://{HOST}:{port}/[1-{{count}}]", "-o", os.path.join(outdir, "#1.eml")]
    if mode == "stls":
        curl[1:1] = ["--ssl-reqd"]
    yield "curl", curl, env, None
    yield "poplib", [sys.executable, os.path.join(HERE, "poplib_client.py"), HOST, str(port), user,
                     pw, mode, ca, outdir], env, None


def bench_set(label, user, count, size, modes, reps, results):
    fill(user, count, size)
    pw = f"pw-{user}"
    ca = ENV["MW_CA_FILE"]
    ports = {"none": ENV["MW_POP3_PORT"], "stls": ENV["MW_POP3_PORT"],
             "implicit": ENV["MW_POP3S_PORT"]}
    for mode in modes:
        rows = {}
        for name, argv, env, _ in clients(ports[mode], mode, user, pw, ca, "OUT"):
            walls, cpus, rss = [], [], []
            for r in range(reps):
                work = tempfile.mkdtemp(prefix="mwbench-")
                outdir = os.path.join(work, "out")
                os.makedirs(outdir)
                real = [a.replace("OUT", outdir).replace("{count}", str(count)) for a in argv]
                if name == "mpop":
                    # regenerate its config for this outdir
                    for n2, a2, _, _ in clients(ports[mode], mode, user, pw, ca, outdir):
                        if n2 == "mpop":
                            real = a2
                wall, cpu, maxrss, out, err, _ = run_once(real, env=env)
                got = count_files(outdir) if name != "raw" else int(out.split()[0] or 0)
                shutil.rmtree(work, ignore_errors=True)
                if got < count:
                    print(f"  {name} {mode}: only {got}/{count} messages: {err.strip()[:300]}",
                          file=sys.stderr)
                    walls = []
                    break
                walls.append(wall)
                cpus.append(cpu)
                rss.append(maxrss)
            if walls:
                rows[name] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus),
                              "rss_kb": max(rss), "runs": len(walls)}
        base = rows.get("raw")
        for name, r in rows.items():
            if base:
                r["wall_ratio"] = r["wall"] / base["wall"]
                r["cpu_ratio"] = r["cpu"] / base["cpu"] if base["cpu"] else None
        results.append({"set": label, "mode": mode, "clients": rows})
        print_table(label, mode, rows)


def print_table(label, mode, rows):
    print(f"\n{label}, TLS: {mode}")
    print(f"  {'client':<10} {'median s':>9} {'x raw':>7} {'cpu s':>7} {'cpu x raw':>9} {'max RSS MB':>10}")
    for name, r in rows.items():
        cr = r.get("cpu_ratio")
        print(f"  {name:<10} {r['wall']:9.3f} {r.get('wall_ratio', 0):7.2f} {r['cpu']:7.3f} "
              f"{(cr if cr is not None else 0):9.2f} {r['rss_kb'] / 1024:10.1f}")
    sys.stdout.flush()


def big_message(reps, results):
    """One message of 1 GiB retrieved by mailwire: peak RSS is the figure."""
    user = "f3"
    fill(user, 1, 1 << 30)
    ca = ENV["MW_CA_FILE"]
    env = dict(ENV, MAILWIRE_PASSWORD=f"pw-{user}")
    work = tempfile.mkdtemp(prefix="mwbench-big-")
    try:
        argv = [MAILWIRE, "pop3", "--host", HOST, "--port", ENV["MW_POP3_PORT"], "--cafile", ca,
                "--user", user, "retr", "1", "-o", work]
        wall, cpu, maxrss, out, err, _ = run_once(argv, env=env)
        size = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work))
        r = {"wall": wall, "cpu": cpu, "rss_kb": maxrss, "bytes": size}
        print(f"\n1 GiB message, mailwire pop3 retr over STLS: {wall:.2f} s, "
              f"{size / wall / 1e6:.0f} MB/s, peak RSS {maxrss / 1024:.1f} MB "
              f"({'ok' if maxrss <= 16 * 1024 else 'OVER'} the 16 MB target)")
        if err.strip():
            print("  stderr:", err.strip()[:300])
        results.append({"set": "1x1GiB", "mode": "stls", "clients": {"mailwire": r}})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        fill(user, 0, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer messages, 3 runs, plain only")
    ap.add_argument("--no-big", action="store_true", help="skip the 1 GiB message")
    ap.add_argument("--modes", default="none,stls,implicit")
    a = ap.parse_args()
    modes = a.modes.split(",")
    results = []
    if a.quick:
        bench_set("200 x 20 KB", "f1", 200, 20_000, ["none"], 3, results)
    else:
        bench_set("2000 x 20 KB", "f1", 2000, 20_000, modes, a.reps, results)
        bench_set("200 x 1 MB", "f2", 200, 1_000_000, modes, a.reps, results)
        if not a.no_big:
            big_message(1, results)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(HERE, "results", f"pop3-{stamp}.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
