#!/usr/bin/env python3
"""Puts examples/fetch_and_send.c into the EXAMPLE section of mailwire(3),
between the lines '.\\" BEGIN EXAMPLE' and '.\\" END EXAMPLE', escaped for
roff.  With --check, changes nothing and prints TAP: ok when the page holds
exactly the program (so the page and the compiled example never drift).

usage: example_to_man.py [--check] EXAMPLE.c PAGE.3
"""
import sys

BEGIN = '.\\" BEGIN EXAMPLE'
END = '.\\" END EXAMPLE'


def to_roff(src):
    out = []
    for line in src.splitlines():
        line = line.replace('\\', '\\e')
        # '-' may print as a Unicode hyphen; code must copy as ASCII minus.
        line = line.replace('-', '\\-')
        # A line starting with '.' or "'" would be a roff request; '\&' is
        # a zero-width character that keeps it text.
        if line.startswith(('.', "'")):
            line = '\\&' + line
        out.append(line)
    return out


def splice(page, body):
    lines = page.splitlines()
    try:
        b = lines.index(BEGIN)
        e = lines.index(END, b)
    except ValueError:
        raise SystemExit('%s / %s markers not found' % (BEGIN, END))
    return '\n'.join(lines[:b + 1] + body + lines[e:]) + '\n'


def main(argv):
    check = argv[1:2] == ['--check']
    args = argv[2:] if check else argv[1:]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    example, page = args
    with open(example, encoding='utf-8') as f:
        body = to_roff(f.read())
    with open(page, encoding='utf-8') as f:
        text = f.read()
    want = splice(text, body)
    if check:
        print('1..1')
        if want == text:
            print('ok 1 - mailwire.3 EXAMPLE is examples/fetch_and_send.c')
        else:
            print('# run: python3 doc/example_to_man.py examples/fetch_and_send.c doc/mailwire.3')
            print('not ok 1 - mailwire.3 EXAMPLE is examples/fetch_and_send.c')
        return 0
    with open(page, 'w', encoding='utf-8') as f:
        f.write(want)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
