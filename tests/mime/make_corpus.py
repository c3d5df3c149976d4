#!/usr/bin/env python3
"""Writes the MIME test corpus (tests/mime/corpus/*.eml).  The files are
committed; this script documents how each was made and can remake them.
Every file must survive parse -> write byte for byte."""
import base64
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
os.makedirs(out, exist_ok=True)


def w(name, data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)


def crlf(s):
    return s.replace('\n', '\r\n')


w('simple.eml', crlf("""Return-Path: <alice@example.org>
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: Hello
Date: Mon, 2 Jan 2023 10:00:00 +0100
Message-ID: <simple-1@example.org>

Hi Bob,
just a plain message.
-- 
Alice
"""))

w('lf-only.eml', """From: a@example.org
To: b@example.org
Subject: LF line ends only
Content-Type: text/plain; charset=us-ascii

line one
line two
""")

PNG = bytes(range(256)) * 3
b64png = base64.encodebytes(PNG).decode()
w('nested.eml', crlf("""From: Carol <carol@example.com>
To: dave@example.com
Subject: nested multiparts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-b"

This is the preamble.  It is ignored by MIME readers.
--outer-b
Content-Type: multipart/alternative; boundary=alt-b

--alt-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait, soft=
 break.
--alt-b
Content-Type: multipart/related; boundary="rel-b"; type="text/html"

--rel-b
Content-Type: text/html; charset=utf-8

<p>Caf\u00e9 <img src="cid:img1@x"></p>
--rel-b
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <img1@x>
Content-Disposition: inline; filename="pixel.png"

""" + b64png + """--rel-b--
--alt-b--

--outer-b
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"

""" + base64.encodebytes(b'\x00\x01\x02binary\xff' * 10).decode() + """
--outer-b--
This is the epilogue.
It is ignored too.
"""))

body_8bit = "Gr\u00fc\u00dfe aus K\u00f6ln\n"
w('encodings.eml', crlf("""From: e@example.org
To: f@example.org
Subject: every encoding
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="enc"

--enc
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

seven bit text
--enc
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

""" + body_8bit + """--enc
Content-Type: application/octet-stream
Content-Transfer-Encoding: binary

""").encode() + b'\x00\x01\x02\r\x03\n\xff\xfe binary \r\n' + crlf("""
--enc
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe,=20trailing space kept=20
a very long line that was broken with a soft line break by the sender's =
mail program.
--enc
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""" + base64.encodebytes(("b\u00e4se64 text " * 10).encode()).decode() + """--enc
Content-Type: application/x-whatever
Content-Transfer-Encoding: x-uuencode

begin 644 f
#86)C
`
end
--enc
Content-Type: text/plain
Content-Transfer-Encoding: BASE64

aGVsbG8gdXBwZXJjYXNlIGVuY29kaW5nIG5hbWU=
--enc--
""").encode())

w('8bit-headers.eml', crlf("""From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
To: "M\u00fcller, J\u00f6rg" <j@example.de>, =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>
Subject: =?utf-8?B?SGVsbMO2?= =?utf-8?B?IFfDtnJsZA==?= and raw \u00fcml\u00e4uts
X-Latin1: """).encode() + b'caf\xe9 cr\xe8me' + crlf("""
Subject-Broken: =?utf-8?q?unterminated and =?bogus-charset?q?x?= ok
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Disposition: attachment; filename*0*=utf-8''%E2%82%AC%20rates;
 filename*1*=%20for%202024; filename*2=".txt"

Body with \u20ac.
""").encode())

w('broken-boundary.eml', crlf("""From: g@example.org
Subject: boundaries with padding, near misses, inner close missing
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="bb"

--bb   \t
Content-Type: text/plain

a line that looks like a delimiter but is not:
--bbx
--bb-not-this-either
 --bb
end of part one
--bb
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner text, and the inner close delimiter is missing
--bb
Content-Type: text/plain

last part
--bb--   
"""))

w('missing-final.eml', crlf("""From: h@example.org
Subject: no final boundary
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mf"

--mf
Content-Type: text/plain

first
--mf
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==
""").rstrip('\r\n'))

long_word = 'x' * 100000
folded = '\r\n'.join(' word%d' % i for i in range(8000))
w('huge-header.eml', 'From: i@example.org\r\nSubject: ' + long_word + '\r\nX-Folded:' + folded +
  '\r\nTo: j@example.org\r\n\r\nbody\r\n')

inner = crlf("""From: inner@example.org
To: outer@example.org
Subject: the forwarded message
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="in-b"

--in-b
Content-Type: text/plain

inner plain
--in-b
Content-Type: text/html

<b>inner html</b>
--in-b--
""")
w('rfc822.eml', crlf("""From: k@example.org
Subject: Fwd: the forwarded message
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain

See the attached message.
--fwd
Content-Type: message/rfc822
Content-Disposition: attachment; filename="fwd.eml"

""") + inner + crlf("""
--fwd--
"""))

w('digest.eml', crlf("""From: list@example.org
Subject: digest
MIME-Version: 1.0
Content-Type: multipart/digest; boundary="dg"

--dg

From: one@example.org
Subject: one

first digest message
--dg

From: two@example.org
Subject: two

second digest message
--dg--
"""))

w('malformed-enc.eml', crlf("""From: m@example.org
Subject: malformed encodings
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="me"

--me
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

SGVs*bG8g!d29y
bGQ
--me
Content-Type: text/plain
Content-Transfer-Encoding: quoted-printable

bad =ZZ escape, lone = sign, =4 short, trailing white   
soft break at end =
--me
Content-Type: text/plain
Content-Transfer-Encoding: base64

====
--me--
"""))

w('headers-only.eml', 'From: n@example.org\r\nSubject: only headers, no empty line')

depth = 40
s = 'From: o@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n'
for d in range(depth):
    s += 'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (d, d)
s += 'Content-Type: text/plain\r\n\r\ndeepest\r\n'
for d in reversed(range(depth)):
    s += '--d%d--\r\n' % d
w('deep.eml', s)

w('cut-headers.eml', crlf("""From: p@example.org
Subject: part headers cut by a boundary
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="ch"

--ch
Content-Type: text/plain
X-Cut: the next line is a delimiter
--ch
Content-Type: text/plain

ok
--ch--
"""))

w('mixed-eol.eml', b'From: q@example.org\nSubject: mixed\r\nContent-Type: multipart/mixed; boundary=me\n'
  b'\n--me\r\nContent-Type: text/plain\n\nbare\rCR and LF\nand CRLF\r\n--me\nContent-Type: text/plain\r\n'
  b'\r\nlast\n--me--\n')

w('empty.eml', b'')

w('no-boundary-param.eml', crlf("""From: r@example.org
Subject: multipart without boundary
Content-Type: multipart/mixed

--x
Content-Type: text/plain

read as one leaf
--x--
"""))

w('mbox-from-line.eml', crlf("""From sender@example.org Mon Jan  1 00:00:00 2024
From: sender@example.org
Subject: starts with an mbox From_ line
Content-Type: text/plain; charset=utf-7

Hi +AOk- there
"""))
