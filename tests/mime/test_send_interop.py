#!/usr/bin/env python3
"""TAP: `mailwire mime build ... | mailwire send -t` through the real Postfix
(the no-auth port delivering to test.domain), then the delivered Maildir
file parsed back with `mailwire mime parse`.  Uses demo user d4.
Needs the servers of tests/servers (scripts/test.sh starts them); without
them every case is skipped.  Usage: test_send_interop.py MAILWIRE"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

mw = sys.argv[1]
cases = ['build | send -t exits 0', 'message delivered to the Maildir', 'delivered tree as built',
         'subject and sender decode back', 'attachment extracted byte-identical']
port = os.environ.get('MW_SMTP_NOAUTH_PORT')
if not port:
    for i, c in enumerate(cases, 1):
        print('ok %d - %s # SKIP servers not running' % (i, c))
    print('1..%d' % len(cases))
    sys.exit(0)

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
    return cond


domain = os.environ.get('MW_MAIL_DOMAIN', 'test.domain')
user = 'd4'
maildir = os.path.join(os.environ['MW_MAILDIR_ROOT'], user, 'Maildir')
tmp = tempfile.mkdtemp(prefix='mw-mime-send-')
blob = bytes((i * 131 + 7) % 256 for i in range(300000))
att = os.path.join(tmp, 'r\u00e9sum\u00e9.pdf')
with open(att, 'wb') as f:
    f.write(blob)
txt = os.path.join(tmp, 'body.txt')
with open(txt, 'wb') as f:
    f.write('Hallo,\nanbei der Lebenslauf.\n.\nFrom the sender\n'.encode())
tag = 'mime-interop-%d-%d' % (os.getpid(), int(time.time()))
subject = 'Lebenslauf \u00fcberarbeitet ' + tag
build = subprocess.run([mw, 'mime', 'build', '--from', 'J\u00fcrgen <juergen@example.org>',
                        '--to', '%s@%s' % (user, domain), '--subject', subject, '--text', txt,
                        '--attach', att], capture_output=True)
send = subprocess.run([mw, 'send', '-t', '-i', '--host', '127.0.0.1', '--port', port, '--tls', 'none'],
                      input=build.stdout, capture_output=True, timeout=60)
ok(build.returncode == 0 and send.returncode == 0, cases[0], (build.stderr, send.stderr))
found = None
deadline = time.time() + 120  # Postfix delivers when it can; a bound, not a measurement
while time.time() < deadline and not found:
    for f in glob.glob(os.path.join(maildir, 'new', '*')):
        r = subprocess.run([mw, 'mime', 'parse', '--json', f], capture_output=True)
        try:
            tree = json.loads(r.stdout)
        except ValueError:
            continue
        hdr = dict((k.lower(), v) for k, v in tree[0]['headers'])
        if hdr.get('subject') == subject:
            found = (f, tree, hdr)
            break
    if not found:
        time.sleep(0.3)
ok(found is not None, cases[1], 'no message with subject %r in %s' % (subject, maildir))
if found:
    f, tree, hdr = found
    got = [(p['path'], p['type'], p['filename']) for p in tree]
    ok(got == [('1', 'multipart/mixed', None), ('1.1', 'text/plain', None),
               ('1.2', 'application/pdf', 'r\u00e9sum\u00e9.pdf')], cases[2], got)
    ok(hdr.get('from') == 'J\u00fcrgen <juergen@example.org>' and hdr.get('subject') == subject,
       cases[3], hdr)
    out = os.path.join(tmp, 'out')
    os.mkdir(out)
    r = subprocess.run([mw, 'mime', 'parse', '--extract', out, f], capture_output=True)
    names = os.listdir(out)
    data = open(os.path.join(out, names[0]), 'rb').read() if len(names) == 1 else b''
    ok(r.returncode == 0 and names == ['1.2-r__sum__.pdf'] and data == blob, cases[4],
       (names, r.stderr))
else:
    for c in cases[2:]:
        ok(False, c, 'not delivered')
print('1..%d' % n)
sys.exit(1 if failed else 0)
