#!/usr/bin/env python3
"""Makes the bench corpus: N messages of mixed shapes (plain text, QP text,
multipart/alternative, base64 attachments of 10 KB to 1 MB, nested
multiparts, forwarded messages).  Usage: make_bench_corpus.py DIR N"""
import base64
import os
import random
import sys

out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rnd = random.Random(42)
words = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor '
         'incididunt ut labore et dolore magna aliqua caf\u00e9 na\u00efve gr\u00fc\u00dfe').split()


def text(lines):
    return '\r\n'.join(' '.join(rnd.choice(words) for _ in range(rnd.randint(5, 14)))
                       for _ in range(lines)) + '\r\n'


def qp(s):
    import quopri
    # encode with LF line ends, then make them CRLF (quopri leaves CR alone)
    lf = s.replace('\r\n', '\n').encode('utf-8')
    return quopri.encodestring(lf).decode().replace('\n', '\r\n')


def b64(nbytes):
    return base64.encodebytes(rnd.randbytes(nbytes)).decode().replace('\n', '\r\n')


for i in range(n):
    hdr = ('From: Sender %d <s%d@example.org>\r\nTo: r@example.net\r\nSubject: message %d '
           '=?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 2 Jan 2023 10:00:00 +0100\r\n'
           'Message-ID: <%d@example.org>\r\nMIME-Version: 1.0\r\n' % (i, i, i, i))
    kind = i % 4
    if kind == 0:
        msg = hdr + 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n' + qp(text(rnd.randint(20, 400)))
    elif kind == 1:
        msg = (hdr + 'Content-Type: multipart/alternative; boundary="alt%d"\r\n\r\n--alt%d\r\n'
               'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s'
               '--alt%d\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n%s'
               '--alt%d--\r\n') % (i, i, qp(text(60)), i, base64.encodebytes(text(60).encode()).decode().replace('\n', '\r\n'), i)
    elif kind == 2:
        msg = (hdr + 'Content-Type: multipart/mixed; boundary="mix%d"\r\n\r\n--mix%d\r\n'
               'Content-Type: text/plain\r\n\r\n%s--mix%d\r\nContent-Type: application/pdf\r\n'
               'Content-Disposition: attachment; filename="f%d.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s'
               '--mix%d--\r\n') % (i, i, text(10), i, i, b64(rnd.randint(10000, 1000000)), i)
    else:
        inner = ('From: x@y\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="in%d"\r\n\r\n'
                 '--in%d\r\nContent-Type: text/plain\r\n\r\n%s--in%d\r\nContent-Type: image/png\r\n'
                 'Content-Transfer-Encoding: base64\r\n\r\n%s--in%d--\r\n') % (i, i, text(20), i, b64(rnd.randint(5000, 200000)), i)
        msg = (hdr + 'Content-Type: multipart/mixed; boundary="fw%d"\r\n\r\n--fw%d\r\nContent-Type: text/plain\r\n\r\n%s'
               '--fw%d\r\nContent-Type: message/rfc822\r\n\r\n%s\r\n--fw%d--\r\n') % (i, i, text(5), i, inner, i)
    with open(os.path.join(out, '%05d.eml' % i), 'w', encoding='utf-8', newline='') as f:
        f.write(msg)
