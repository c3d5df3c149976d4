#!/usr/bin/env python3
"""Fuzzes every parser for a few seconds each (TAP), in every test run.

The corpus replay (fuzz-replay-*) checks known inputs; this runs the
libFuzzer binaries of a clang build (-Dfuzzing=true, ASan+UBSan) that
scripts/test.sh makes in build-fuzz and names in MW_FUZZ_BUILD_DIR, so
each run explores new inputs too.  The seed changes from run to run and is
printed; a crash prints the reproducer's path and the sanitizer's report:
   MW_FUZZ_SEED=N  repeats a run,
   MW_FUZZ_SECONDS=N  seconds per target (default 6).
The checked-in corpus is only read: new inputs go to a temp directory.
Without a libFuzzer build the test is skipped, visibly.

usage: run_fuzzers.py CORPUS_ROOT   (tests/fuzz, holding <module>/corpus/<name>)
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def corpus_dir(root, name):
    """tests/fuzz/<module>/corpus/<short name> for fuzz-<module>_<short>."""
    for d in glob.glob(os.path.join(root, "*", "corpus", "*")):
        module = os.path.basename(os.path.dirname(os.path.dirname(d)))
        short = os.path.basename(d)
        if name in (short, module + "_" + short):
            return d
    return None


def fuzz_one(binary, seeds, seconds, seed, work):
    name = os.path.basename(binary)[len("fuzz-"):]
    out = os.path.join(work, name)
    os.makedirs(out)
    art = os.path.join(work, name + "-artifacts") + "/"
    os.makedirs(art)
    args = [binary, "-seed=%d" % seed, "-max_total_time=%d" % seconds, "-timeout=5",
            "-rss_limit_mb=1024", "-artifact_prefix=" + art, "-print_final_stats=1", out]
    if seeds:
        args.append(seeds)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    t0 = time.monotonic()
    try:
        r = subprocess.run(args, capture_output=True, text=True, errors="replace",
                           timeout=seconds + 60, env=env)
        rc, log = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, log = -1, "fuzzer did not stop in time\n" + (e.stderr or "")
    runs = "?"
    for line in log.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            runs = line.split(":")[-1].strip()
    crashes = sorted(os.listdir(art))
    return name, rc, runs, crashes, art, log, time.monotonic() - t0


def main():
    if len(sys.argv) != 2:
        print("usage: run_fuzzers.py CORPUS_ROOT", file=sys.stderr)
        return 2
    root = sys.argv[1]
    build = os.environ.get("MW_FUZZ_BUILD_DIR", "")
    bins = sorted(glob.glob(os.path.join(build, "tests", "fuzz", "fuzz-*"))) if build else []
    bins = [b for b in bins if os.access(b, os.X_OK) and not b.endswith(".p")]
    if not bins:
        print("1..1")
        print("ok 1 - fuzzing # SKIP no libFuzzer build (MW_FUZZ_BUILD_DIR unset or empty; "
              "scripts/test.sh makes one with clang)")
        return 0
    seconds = int(os.environ.get("MW_FUZZ_SECONDS", "6"))
    seed = int(os.environ.get("MW_FUZZ_SEED", str(int(time.time()) % 1000000007)))
    print("1..%d" % len(bins))
    print("# seed %d, %d s per target (MW_FUZZ_SEED=%d repeats it)" % (seed, seconds, seed))
    work = tempfile.mkdtemp(prefix="mw-fuzz-")
    failed = 0
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(fuzz_one, b, corpus_dir(root, os.path.basename(b)[5:]),
                                seconds, seed, work) for b in bins]
            for i, job in enumerate(jobs, 1):
                name, rc, runs, crashes, art, log, secs = job.result()
                if rc == 0 and not crashes:
                    print("ok %d - fuzz %s: %s inputs in %.0f s, no crash" % (i, name, runs, secs))
                    continue
                failed += 1
                print("not ok %d - fuzz %s: exit %d after %s inputs" % (i, name, rc, runs))
                keep = os.path.join(tempfile.gettempdir(), "mw-fuzz-crash-" + name)
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(art, keep)
                for c in crashes:
                    print("#   reproducer: %s (run: %s/tests/fuzz/fuzz-%s %s)"
                          % (os.path.join(keep, c), build, name, os.path.join(keep, c)))
                for line in log.splitlines()[-40:]:
                    print("#   " + line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
