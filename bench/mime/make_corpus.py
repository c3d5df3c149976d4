#!/usr/bin/env python3
"""MIME bench corpus (issue 5): COUNT messages, about TARGET_MB in all,
written to DIR as NNNN.eml with CRLF line ends.  Deterministic (seeded).

Kinds, in rotation: plain text (7bit and 8bit), multipart/alternative with
quoted-printable text and HTML, multipart/mixed with base64 and
quoted-printable attachments, nested multiparts with a forwarded
message/rfc822, and header blocks with raw 8-bit bytes and RFC 2047
encoded words.  Sizes are drawn so the total lands near TARGET_MB.

Usage: make_corpus.py DIR [COUNT=400] [TARGET_MB=80]
"""
import base64
import os
import quopri
import random
import sys

CRLF = b"\r\n"
WORDS = ("the of and to in is was for on that with as by at from this have not are but "
         "mail server message client header body part boundary encoding parser stream "
         "naïve café Grüße façade über résumé smörgåsbord").split()


def text(rng, nbytes, eight_bit=False):
    """Prose in lines of at most 76 bytes (CRLF), about nbytes long."""
    out, line, size = [], [], 0
    while size < nbytes:
        w = rng.choice(WORDS)
        if not eight_bit:
            w = w.encode("ascii", "replace").decode()
        if sum(len(x) + 1 for x in line) + len(w) > 70:
            s = " ".join(line).encode()
            out.append(s)
            size += len(s) + 2
            line = []
        line.append(w)
    out.append(" ".join(line).encode())
    return CRLF.join(out) + CRLF


def qp(data):
    # quopri works on LF-ended lines; encode each CRLF line and rejoin with
    # CRLF so hard line breaks stay canonical (RFC 2045 §6.7 rule 4).
    lines = data.split(CRLF)
    enc = quopri.encodestring(b"\n".join(lines)).split(b"\n")
    return CRLF.join(enc)


def b64(data):
    s = base64.b64encode(data)
    return CRLF.join(s[i:i + 76] for i in range(0, len(s), 76)) + CRLF


def ew(s):
    return "=?UTF-8?B?" + base64.b64encode(s.encode()).decode() + "?="


def headers(rng, i, extra, eight_bit=False):
    subj = "Bench message %d %s" % (i, rng.choice(WORDS))
    h = [b"Return-Path: <sender%d@example.org>" % i,
         b"Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\r\n"
         b"\tby mail.example.net with ESMTPS id ABC%d\r\n\tfor <rcpt@example.net>; "
         b"Sun, 22 Nov 2026 16:00:00 +0000" % (i % 9, i % 9, i % 250, i),
         b"Date: Sun, 22 Nov 2026 16:%02d:00 +0000" % (i % 60),
         b"Message-ID: <bench.%d@example.org>" % i,
         b"MIME-Version: 1.0"]
    if eight_bit:
        # Raw UTF-8 in headers (RFC 6532) next to RFC 2047 encoded words.
        h.append(("From: Jürgen Müller <jm%d@example.org>" % i).encode())
        h.append(("To: %s <rcpt@example.net>, =?ISO-8859-1?Q?Fran=E7ois?= <f@example.net>"
                  % ew("Zoë Ångström")).encode())
        h.append(("Subject: %s %s" % (ew("Grüße – Überblick"), subj)).encode())
    else:
        h.append(b"From: Sender %d <sender%d@example.org>" % (i, i))
        h.append(b"To: rcpt@example.net")
        h.append(subj.encode())
        h[-1] = b"Subject: " + h[-1]
    return CRLF.join(h + extra) + CRLF + CRLF


def leaf(ctype, enc, body, disp=None):
    h = [b"Content-Type: " + ctype.encode(), b"Content-Transfer-Encoding: " + enc.encode()]
    if disp:
        h.append(b"Content-Disposition: " + disp.encode())
    data = {"base64": b64, "quoted-printable": qp}.get(enc, lambda d: d)(body)
    return CRLF.join(h) + CRLF + CRLF + data


def multipart(sub, boundary, parts):
    b = boundary.encode()
    out = b"Content-Type: multipart/%s; boundary=\"%s\"" % (sub.encode(), b) + CRLF + CRLF
    out += b"This is a multi-part message in MIME format." + CRLF
    for p in parts:
        out += b"--" + b + CRLF + p + CRLF
    return out + b"--" + b + b"--" + CRLF


def message(rng, i, size):
    kind = i % 6
    if kind == 0:  # plain 7bit
        return headers(rng, i, [b"Content-Type: text/plain; charset=us-ascii"]) + text(rng, size)
    if kind == 1:  # plain 8bit with 8-bit headers
        return headers(rng, i, [b"Content-Type: text/plain; charset=utf-8",
                                b"Content-Transfer-Encoding: 8bit"], True) + text(rng, size, True)
    if kind == 2:  # alternative, QP text + QP HTML
        t = text(rng, size // 2, True)
        html = b"<html><body><p>" + t.replace(CRLF, b"<br>" + CRLF) + b"</p></body></html>" + CRLF
        body = multipart("alternative", "alt-%d" % i,
                         [leaf("text/plain; charset=utf-8", "quoted-printable", t),
                          leaf("text/html; charset=utf-8", "quoted-printable", html)])
        h = headers(rng, i, [], True)
        return h[:-2] + body
    if kind in (3, 4):  # mixed: text + base64 attachment + QP attachment
        t = text(rng, 2000)
        att = rng.randbytes(size * 3 // 4)
        qpatt = text(rng, size // 8, True)
        name = ew("résumé %d.pdf" % i)
        parts = [leaf("text/plain; charset=us-ascii", "7bit", t),
                 leaf("application/pdf; name=\"%s\"" % name, "base64", att,
                      "attachment; filename*=UTF-8''r%%C3%%A9sum%%C3%%A9%%20" + str(i) + ".pdf"),
                 leaf("text/csv; charset=utf-8", "quoted-printable", qpatt,
                      "attachment; filename=\"data%d.csv\"" % i)]
        h = headers(rng, i, [], kind == 4)
        return h[:-2] + multipart("mixed", "mix-%d" % i, parts)
    # nested: mixed [ alternative [plain, html], message/rfc822 [mixed [text, base64]] ]
    inner = headers(rng, i + 100000, [], True)[:-2] + multipart(
        "mixed", "inner-%d" % i,
        [leaf("text/plain; charset=utf-8", "quoted-printable", text(rng, 3000, True)),
         leaf("image/png", "base64", rng.randbytes(size // 2), "attachment; filename=x.png")])
    fwd = (b"Content-Type: message/rfc822" + CRLF +
           b"Content-Disposition: attachment" + CRLF + CRLF + inner)
    alt = multipart("alternative", "nalt-%d" % i,
                    [leaf("text/plain; charset=us-ascii", "7bit", text(rng, 1500)),
                     leaf("text/html; charset=us-ascii", "quoted-printable",
                          b"<p>" + text(rng, 1500) + b"</p>")])
    h = headers(rng, i, [], False)
    return h[:-2] + multipart("mixed", "nest-%d" % i, [alt, fwd])


def main():
    d = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    target = (int(sys.argv[3]) if len(sys.argv) > 3 else 80) * 1000 * 1000
    rng = random.Random(5)
    os.makedirs(d, exist_ok=True)
    mean = target / count
    total = 0
    for i in range(count):
        # Log-uniform-ish sizes: many small messages, a few large ones.
        size = int(min(mean * 8, max(500, rng.expovariate(1 / mean))))
        m = message(rng, i, size)
        total += len(m)
        with open(os.path.join(d, "%04d.eml" % i), "wb") as f:
            f.write(m)
    print("%d messages, %.1f MB" % (count, total / 1e6))


if __name__ == "__main__":
    main()
