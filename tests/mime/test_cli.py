#!/usr/bin/env python3
"""TAP tests of `mailwire mime build` and `mailwire mime parse`.
Usage: test_cli.py MAILWIRE CORPUS_DIR"""
import json
import os
import subprocess
import sys
import tempfile

mw, corpus = sys.argv[1], sys.argv[2]
n = 0
failed = 0


def ok(cond, name, detail=''):
    global n, failed
    n += 1
    print(('ok %d - %s' if cond else 'not ok %d - %s') % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:20]:
            print('# ' + line)


def run(*args, stdin=b''):
    return subprocess.run([mw, 'mime'] + list(args), input=stdin, capture_output=True)


tmp = tempfile.mkdtemp(prefix='mw-mime-cli-')
text = 'Hello,\nGr\u00fc\u00dfe aus K\u00f6ln.\n.leading dot\n'.encode()
html = b'<p>hi</p>\n'
blob = bytes((i * 37 + 11) % 256 for i in range(70000))
for name, data in (('t.txt', text), ('t.html', html), ('data.bin', blob)):
    with open(os.path.join(tmp, name), 'wb') as f:
        f.write(data)

r = run('build', '--from', 'J\u00f6rg <j@example.org>', '--to', 'a@example.org, "Smith, Bob" <b@x.org>',
        '--cc', 'c@example.org', '--subject', 'Gr\u00fc\u00dfe \u20ac', '--text', '-',
        '--html', os.path.join(tmp, 't.html'), '--attach', os.path.join(tmp, 'data.bin'), stdin=text)
ok(r.returncode == 0, 'build exits 0', r.stderr)
msg = r.stdout
ok(all(msg[i - 1:i] == b'\r' for i in range(1, len(msg)) if msg[i:i + 1] == b'\n') and
   not msg.startswith(b'\n'), 'build writes CRLF line ends only')
ok(max(len(l) for l in msg.split(b'\r\n')) <= 998, 'no line over 998 octets')
path = os.path.join(tmp, 'm.eml')
with open(path, 'wb') as f:
    f.write(msg)
r = run('parse', '--json', path)
ok(r.returncode == 0, 'parse --json exits 0', r.stderr)
try:
    tree = json.loads(r.stdout)
except ValueError as e:
    tree = []
    ok(False, 'parse --json is JSON', e)
else:
    ok(True, 'parse --json is JSON')
got = [(p['path'], p['type']) for p in tree]
ok(got == [('1', 'multipart/mixed'), ('1.1', 'multipart/alternative'), ('1.1.1', 'text/plain'),
           ('1.1.2', 'text/html'), ('1.2', 'application/octet-stream')], 'build then parse: tree', got)
hdr = dict((k.lower(), v) for k, v in tree[0]['headers']) if tree else {}
ok(hdr.get('subject') == 'Gr\u00fc\u00dfe \u20ac', 'subject decodes back', hdr.get('subject'))
ok(hdr.get('from') == 'J\u00f6rg <j@example.org>', 'from decodes back', hdr.get('from'))
ok(hdr.get('to') == 'a@example.org, "Smith, Bob" <b@x.org>', 'to kept', hdr.get('to'))
ok('date' in hdr and 'message-id' in hdr and hdr.get('mime-version') == '1.0',
   'Date, Message-ID, MIME-Version generated')
sizes = {p['path']: p['size'] for p in tree}
ok(sizes.get('1.1.1') == len(text) + text.count(b'\n'), 'text size (CRLF canonical)', sizes)
ok(sizes.get('1.2') == len(blob), 'attachment size', sizes)
out = os.path.join(tmp, 'out')
os.mkdir(out)
r = run('parse', '--extract', out, path)
ok(r.returncode == 0 and os.listdir(out) == ['1.2-data.bin'], 'extract writes the attachment',
   (r.returncode, os.listdir(out), r.stderr))
with open(os.path.join(out, '1.2-data.bin'), 'rb') as f:
    ok(f.read() == blob, 'extracted attachment is byte-identical')
r = run('parse', '--extract', out, path)
ok(r.returncode != 0, 'extract never overwrites an existing file', r.returncode)

# Hostile file names never leave DIR.
evil = (b'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n'
        b'Content-Disposition: attachment; filename="../../evil.sh"\r\n\r\nx\r\n--b\r\n'
        b'Content-Disposition: attachment; filename="/etc/passwd"\r\n\r\ny\r\n--b\r\n'
        b'Content-Disposition: attachment; filename="..\\\\..\\\\win.bat"\r\n\r\nz\r\n--b\r\n'
        b'Content-Disposition: attachment; filename=".."\r\n\r\nw\r\n--b--\r\n')
sub = os.path.join(tmp, 'x', 'y')
os.makedirs(sub)
r = run('parse', '--extract', sub, '-', stdin=evil)
names = sorted(os.listdir(sub))
ok(r.returncode == 0 and names == ['1.1-evil.sh', '1.2-passwd', '1.3-win.bat', '1.4-part.bin'],
   'hostile file names are made safe', (names, r.stderr))
ok(sorted(os.listdir(os.path.join(tmp, 'x'))) == ['y'] and not os.path.exists(os.path.join(tmp, 'evil.sh')),
   'nothing written outside DIR')

r = run('build', '--from', 'a@b.org', '--to', 'c@d.org', '--subject', 'hi\r\nBcc: victim@x.org')
ok(r.returncode == 65 and r.stdout == b'', 'CR/LF in --subject refused (header injection)', r)
r = run('build', '--from', 'a@b.org', '--to', 'c@d.org\nBcc: victim@x.org', '--subject', 'x')
ok(r.returncode == 65 and r.stdout == b'', 'CR/LF in --to refused (header injection)', r)
r = run('build', '--from', 'a@b.org', '--to', 'not an address', '--subject', 'x')
ok(r.returncode == 65, 'address without a domain refused', r)
r = run('build', '--from', 'a@b.org', '--subject', 'x')
ok(r.returncode == 64, 'missing --to is a usage error', r.returncode)
r = run('build', '--from', 'a@b.org', '--to', 'c@d.org', '--subject', 'x', '--attach', '/nonexistent/f')
ok(r.returncode == 66, 'missing attachment file: exit 66', (r.returncode, r.stderr))
r = run('parse', '/nonexistent/file')
ok(r.returncode == 66, 'missing input file: exit 66', r.returncode)

for name in sorted(os.listdir(corpus)):
    if not name.endswith('.eml'):
        continue
    r = run('parse', '--json', os.path.join(corpus, name))
    good = r.returncode == 0
    try:
        json.loads(r.stdout)
    except ValueError:
        good = False
    ok(good, 'parse --json %s' % name, r.stderr)

print('1..%d' % n)
sys.exit(1 if failed else 0)
