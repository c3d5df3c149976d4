#!/usr/bin/env python3
"""Checks mailwire's --json output with Python's json parser (never a loose
regex), for the scripted cases (tests/script/cases/*/json-*.case,
serverinfo-*.case) and the interop tests.

    jsoncheck.py --exit CODE FILE [CHECK...]

FILE is the client's stdout: every non-empty line must parse as one JSON
value (the command's output, then, on failure, the error object of
mailwire(1) JSON ERRORS as the last line).  The checks apply to the LAST
value:
    path=VALUE    the field equals VALUE (numbers and true/false/null compared
                  as JSON when VALUE parses as JSON, else as a string)
    path~REGEX    the field is a string matching REGEX (re.search)
    path?         the field exists
    !path         the field does not exist
path is dot-separated keys and list indexes ("tls.sha256", "capabilities.0").
With --error, the last value must be a complete error object (every key of
the documented object, "ok": false, "exit" equal to CODE).  With --record
PATH, the value at PATH of the last value must be one (fetch: an account's
record carries the same fields but "program").  With --single, stdout
must hold exactly one JSON value.

Prints the last value and "jsoncheck: ok"; exits with CODE (the client's
exit status, so the case still checks it) when every check holds, else 99
after naming each failed check on stderr."""
import json
import re
import sys

ERROR_KEYS = {"ok": bool, "program": str, "error": str, "category": str, "exit": int,
              "command": str, "reply": str, "code": int, "enhanced": str, "resp_code": str}


def get(v, path):
    for k in path.split("."):
        if isinstance(v, list):
            v = v[int(k)]
        elif isinstance(v, dict):
            v = v[k]
        else:
            raise KeyError(k)
    return v


def main(argv):
    exit_code = None
    want_error = False
    record = None
    single = False
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--exit":
            exit_code = int(argv[i + 1])
            i += 2
        elif argv[i] == "--error":
            want_error = True
            i += 1
        elif argv[i] == "--single":
            single = True
            i += 1
        elif argv[i] == "--record":
            record = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if exit_code is None or not args:
        print("usage: jsoncheck.py --exit CODE [--error] FILE [CHECK...]", file=sys.stderr)
        return 98
    with open(args[0], "rb") as f:
        text = f.read().decode("utf-8")
    values = []
    bad = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError as e:
            bad.append("line %d is not JSON (%s): %r" % (n, e, line[:200]))
    if not values:
        bad.append("no JSON value on stdout")
    last = values[-1] if values else None
    if single and len(values) != 1:
        bad.append("%d JSON values on stdout, not one" % len(values))
    target = last
    if record is not None and last is not None:
        try:
            target = get(last, record)
        except (KeyError, IndexError, ValueError, TypeError):
            bad.append("no value at %s" % record)
            target = None
    if (want_error or record is not None) and target is not None:
        last_saved, last = last, target
        if not isinstance(last, dict):
            bad.append("the error value is not an object")
        else:
            for k, t in ERROR_KEYS.items():
                if record is not None and k == "program":
                    continue
                if k not in last:
                    bad.append("error object without %r" % k)
                elif type(last[k]) is not t:
                    bad.append("error object: %r is %s, not %s" % (k, type(last[k]).__name__,
                                                                 t.__name__))
            if last.get("ok") is not False:
                bad.append("error object: ok is not false")
            if last.get("exit") != exit_code:
                bad.append("error object: exit %r, but the client exited %d"
                           % (last.get("exit"), exit_code))
        last = last_saved
    for c in args[1:]:
        try:
            if c.startswith("!"):
                try:
                    get(last, c[1:])
                    bad.append("%s: present" % c)
                except (KeyError, IndexError, ValueError):
                    pass
            elif c.endswith("?"):
                get(last, c[:-1])
            elif "~" in c and ("=" not in c or c.index("~") < c.index("=")):
                path, rx = c.split("~", 1)
                v = get(last, path)
                if not isinstance(v, str) or not re.search(rx, v):
                    bad.append("%s: got %r" % (c, v))
            else:
                path, want = c.split("=", 1)
                v = get(last, path)
                try:
                    w = json.loads(want)
                except ValueError:
                    w = want
                if v != w and not (isinstance(v, str) and v == want):
                    bad.append("%s: got %r" % (c, v))
        except (KeyError, IndexError, ValueError, TypeError) as e:
            bad.append("%s: missing (%s)" % (c, e))
    print(json.dumps(last, sort_keys=True))
    if bad:
        for b in bad:
            print("jsoncheck: " + b, file=sys.stderr)
        return 99
    print("jsoncheck: ok")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
