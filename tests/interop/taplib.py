"""TAP for the Python interop tests: one line per case, a named SKIP for every
case when the servers are not running (never a silent pass), and a crash of
a case counted as its failure."""
import sys


def run_cases(cases, have, call=lambda fn: fn()):
    """cases: (name, fn) pairs; fn (through call) returns None when the case
    passed, else why it failed.  Returns the exit status."""
    print("1..%d" % len(cases))
    failed = 0
    for n, (name, fn) in enumerate(cases, 1):
        if not have:
            print("ok %d - %s # SKIP servers not running" % (n, name))
            continue
        try:
            why = call(fn)
        except Exception as e:  # a crash of the test is a failure, never a pass
            why = "%s: %s" % (type(e).__name__, e)
        if why:
            failed += 1
            print("not ok %d - %s" % (n, name))
            for line in str(why).splitlines():
                print("# " + line)
        else:
            print("ok %d - %s" % (n, name))
        sys.stdout.flush()
    return 1 if failed else 0
