#!/usr/bin/env python3
"""Checks that mailwire(1) documents every option the commands offer: runs
`mailwire CMD --help` for each command, collects the options it names
(--long and -x), and looks for each in the page (written \\-\\-long, \\-x).
Prints TAP, one test per command.

usage: check_options.py MAILWIRE_BINARY PAGE.1
"""
import re
import subprocess
import sys

COMMANDS = ['fetch', 'pop3', 'send', 'smtp', 'mime', 'queue', 'oauth']
# Tokens in the help text that look like options but are not ones.
NOT_OPTIONS = {'-'}


def options_of(binary, cmd):
    p = subprocess.run([binary, cmd, '--help'], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    text = p.stdout.decode('utf-8', 'replace')
    found = set(re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])', text))
    return p.returncode, text, sorted(found - NOT_OPTIONS)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, page = argv[1], argv[2]
    with open(page, encoding='utf-8') as f:
        roff = f.read()
    # Roff writes '-' as '\-'; undo that and drop font changes.
    plain = re.sub(r'\\f[BIRP]', '', roff.replace('\\-', '-'))
    print('1..%d' % len(COMMANDS))
    for n, cmd in enumerate(COMMANDS, 1):
        rc, text, opts = options_of(binary, cmd)
        if rc != 0 or not opts:
            print('# mailwire %s --help exited %d' % (cmd, rc))
            print('not ok %d - mailwire(1) documents every option of %s' % (n, cmd))
            continue
        missing = [o for o in opts
                   if not re.search(r'(?<![\w-])' + re.escape(o) + r'(?![\w-])', plain)]
        for o in missing:
            print('# %s: %s is in --help but not in %s' % (cmd, o, page))
        status = 'not ok' if missing else 'ok'
        print('%s %d - mailwire(1) documents every option of %s (%d options)'
              % (status, n, cmd, len(opts)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
