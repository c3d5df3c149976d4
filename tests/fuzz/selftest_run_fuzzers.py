#!/usr/bin/env python3
"""TAP: run_fuzzers.py reports a crashing fuzzer as `not ok` (with its
reproducer) and a clean one as `ok`, and skips visibly without a build —
so the fuzzing step of the test run can fail."""
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
runner = os.path.join(here, "run_fuzzers.py")
FAKE = """#!/bin/sh
for a in "$@"; do case $a in -artifact_prefix=*) p=${a#-artifact_prefix=};; esac; done
%s
"""


def run(build):
    env = dict(os.environ, MW_FUZZ_SECONDS="1", MW_FUZZ_SEED="7")
    if build is None:
        env.pop("MW_FUZZ_BUILD_DIR", None)
    else:
        env["MW_FUZZ_BUILD_DIR"] = build
    r = subprocess.run([sys.executable, runner, here], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout


checks = []
with tempfile.TemporaryDirectory() as d:
    fz = os.path.join(d, "tests", "fuzz")
    os.makedirs(fz)
    for name, body in (("boom", 'echo "ERROR: AddressSanitizer: boom" >&2; '
                                'printf x > "${p}crash-1"; exit 1'),
                       ("calm", 'echo "stat::number_of_executed_units: 42" >&2; exit 0')):
        path = os.path.join(fz, "fuzz-" + name)
        with open(path, "w") as f:
            f.write(FAKE % body)
        os.chmod(path, 0o755)
    rc, out = run(d)
    checks.append(("a crashing fuzzer fails the run (exit 1)", rc == 1))
    checks.append(("it is reported not ok with its reproducer",
                   "not ok 1 - fuzz boom" in out and "reproducer:" in out and "crash-1" in out))
    checks.append(("the sanitizer's report is shown", "AddressSanitizer: boom" in out))
    checks.append(("a clean fuzzer is ok with its count of inputs",
                   "ok 2 - fuzz calm: 42 inputs" in out))
    checks.append(("the seed is printed for a rerun", "MW_FUZZ_SEED=7" in out))
rc, out = run(None)
checks.append(("without a libFuzzer build: one visible skip, exit 0",
                rc == 0 and "# SKIP" in out and out.startswith("1..1")))
print("1..%d" % len(checks))
for i, (name, ok) in enumerate(checks, 1):
    print("%s %d - run_fuzzers: %s" % ("ok" if ok else "not ok", i, name))
    if not ok:
        print("#   output was: " + out.replace("\n", "\n#   "))
sys.exit(0 if all(ok for _, ok in checks) else 1)
