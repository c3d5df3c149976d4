/* Streaming transfer encodings: base64 (RFC 2045 §6.8) and
 * quoted-printable (RFC 2045 §6.7), decoding leniently. */
#include "mime/codec.h"

#include <string.h>

static const signed char b64v[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,   ['E'] = 5,   ['F'] = 6,   ['G'] = 7,
    ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11,  ['L'] = 12,  ['M'] = 13,  ['N'] = 14,
    ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,  ['S'] = 19,  ['T'] = 20,  ['U'] = 21,
    ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25,  ['Z'] = 26,  ['a'] = 27,  ['b'] = 28,
    ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,  ['g'] = 33,  ['h'] = 34,  ['i'] = 35,
    ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39,  ['n'] = 40,  ['o'] = 41,  ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46,  ['u'] = 47,  ['v'] = 48,  ['w'] = 49,
    ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53,  ['1'] = 54,  ['2'] = 55,  ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,  ['8'] = 61,  ['9'] = 62,  ['+'] = 63,
    ['/'] = 64, ['='] = -1, [' '] = -2, ['\t'] = -2, ['\r'] = -2, ['\n'] = -2,
};
/* b64v holds value+1 so that 0 means "not in the alphabet". */

static size_t b64_flush(mw_b64dec *d, unsigned char *out)
{
    size_t o = 0;
    /* RFC 2045 §6.8: a final quantum of 2 or 3 characters gives 1 or 2
     * bytes; a single character carries no whole byte and is dropped. */
    if (d->n == 2) {
        out[o++] = (unsigned char)(d->acc >> 4);
    } else if (d->n == 3) {
        out[o++] = (unsigned char)(d->acc >> 10);
        out[o++] = (unsigned char)(d->acc >> 2);
    }
    d->n = 0;
    d->acc = 0;
    return o;
}

size_t mwi_b64dec_run(mw_b64dec *d, const char *in, size_t len, unsigned char *out)
{
    size_t o = 0;
    uint32_t acc = d->acc;
    int n = d->n;
    for (size_t i = 0; i < len; i++) {
        int v = b64v[(unsigned char)in[i]];
        if (v > 0) {
            acc = acc << 6 | (uint32_t)(v - 1);
            if (++n == 4) {
                out[o++] = (unsigned char)(acc >> 16);
                out[o++] = (unsigned char)(acc >> 8);
                out[o++] = (unsigned char)acc;
                n = 0;
                acc = 0;
            }
        } else if (v == -1) {
            d->acc = acc;
            d->n = n;
            o += b64_flush(d, out + o);
            acc = 0;
            n = 0;
        } else if (v == 0) {
            d->skipped++;
        }
    }
    d->acc = acc;
    d->n = n;
    return o;
}

size_t mwi_b64dec_end(mw_b64dec *d, unsigned char *out)
{
    return b64_flush(d, out);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') /* lowercase is not canonical, but decoders accept it */
        return c - 'a' + 10;
    return -1;
}

static size_t qp_ws_flush(mw_qpdec *d, unsigned char *out)
{
    size_t n = d->nws;
    memcpy(out, d->ws, n);
    d->nws = 0;
    return n;
}

static size_t qp_byte(mw_qpdec *d, unsigned char c, unsigned char *out);

/* A '=' that does not start a valid escape is kept literally. */
static size_t qp_malformed(mw_qpdec *d, unsigned char c, unsigned char *out)
{
    char saved[3], ws[sizeof d->ws];
    int ns = d->neq;
    size_t nws = d->nws;
    memcpy(saved, d->eq, sizeof saved);
    memcpy(ws, d->ws, nws);
    d->neq = 0;
    d->nws = 0;
    d->malformed++;
    size_t o = 0;
    out[o++] = '=';
    for (size_t k = 0; k < nws; k++)
        o += qp_byte(d, (unsigned char)ws[k], out + o);
    for (int k = 1; k < ns; k++)
        o += qp_byte(d, (unsigned char)saved[k], out + o);
    o += qp_byte(d, c, out + o);
    return o;
}

static size_t qp_byte(mw_qpdec *d, unsigned char c, unsigned char *out)
{
    size_t o = 0;
    if (d->neq == 1) {
        if (c == '\n') {
            d->neq = 0; /* soft line break */
            d->nws = 0;
            return 0;
        }
        if ((c == ' ' || c == '\t') && d->nws < sizeof d->ws) {
            /* Rule 3: transport padding after a soft break's '=' */
            d->ws[d->nws++] = (char)c;
            return 0;
        }
        if (c == '\r' || (hexval(c) >= 0 && d->nws == 0)) {
            d->eq[1] = (char)c;
            d->neq = 2;
            return 0;
        }
        return qp_malformed(d, c, out);
    }
    if (d->neq == 2) {
        if (d->eq[1] == '\r') {
            if (c == '\n') {
                d->neq = 0;
                d->nws = 0;
                return 0;
            }
            return qp_malformed(d, c, out);
        }
        int hi = hexval((unsigned char)d->eq[1]), lo = hexval(c);
        if (lo < 0) return qp_malformed(d, c, out);
        d->neq = 0;
        out[0] = (unsigned char)(hi << 4 | lo);
        return 1;
    }
    if (d->cr) {
        d->cr = 0;
        if (c == '\n') {
            d->nws = 0; /* rule 3: trailing white space is not data */
            out[0] = '\r';
            out[1] = '\n';
            return 2;
        }
        o += qp_ws_flush(d, out);
        out[o++] = '\r';
    }
    switch (c) {
    case ' ':
    case '\t':
        if (d->nws == sizeof d->ws) o += qp_ws_flush(d, out + o);
        d->ws[d->nws++] = (char)c;
        break;
    case '\r':
        d->cr = 1;
        break;
    case '\n':
        d->nws = 0;
        out[o++] = '\n';
        break;
    case '=':
        o += qp_ws_flush(d, out + o);
        d->eq[0] = '=';
        d->neq = 1;
        break;
    default:
        o += qp_ws_flush(d, out + o);
        out[o++] = c;
    }
    return o;
}

/* Bytes that need no special handling in quoted-printable decoding. */
static inline int qp_plain(unsigned char c)
{
    return c > 32 ? c != '=' : (c != ' ' && c != '\t' && c != '\n' && c != '\r');
}

size_t mwi_qpdec_run(mw_qpdec *d, const char *in, size_t len, unsigned char *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        if (d->neq == 0 && d->cr == 0 && d->nws == 0) {
            /* Fast path, byte for byte what qp_byte would do from this
             * state, without its buffering: ordinary characters; white
             * space followed by an ordinary character (data, RFC 2045 §6.7
             * rule 3 only drops it at a line end); CRLF and a bare LF (no
             * white space is pending); "=XX" with two hex digits (rule 1)
             * and the soft break "=CRLF" (rule 5).  Anything else, or a
             * sequence cut by the chunk end, goes to qp_byte.  Copied while
             * scanning: in text the runs are words, too short for memcpy. */
            while (i < len) {
                unsigned char c = (unsigned char)in[i];
                if (qp_plain(c)) {
                    out[o++] = c;
                    i++;
                } else if ((c == ' ' || c == '\t') && i + 1 < len &&
                           qp_plain((unsigned char)in[i + 1])) {
                    out[o++] = c;
                    out[o++] = (unsigned char)in[i + 1];
                    i += 2;
                } else if (c == '\n') {
                    out[o++] = c;
                    i++;
                } else if (c == '\r' && i + 1 < len && in[i + 1] == '\n') {
                    out[o++] = '\r';
                    out[o++] = '\n';
                    i += 2;
                } else if (c == '=' && i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
                    i += 3;
                } else if (c == '=' && i + 2 < len && hexval((unsigned char)in[i + 1]) >= 0 &&
                           hexval((unsigned char)in[i + 2]) >= 0) {
                    out[o++] = (unsigned char)(hexval((unsigned char)in[i + 1]) << 4 |
                                               hexval((unsigned char)in[i + 2]));
                    i += 3;
                } else {
                    break;
                }
            }
            if (i == len) break;
        }
        o += qp_byte(d, (unsigned char)in[i++], out + o);
    }
    return o;
}

size_t mwi_qpdec_end(mw_qpdec *d, unsigned char *out)
{
    size_t o = 0;
    if (d->neq) {
        memcpy(out, d->eq, (size_t)d->neq);
        o = (size_t)d->neq;
        d->neq = 0;
        d->nws = 0;
    }
    if (d->cr) {
        out[o++] = '\r';
        d->cr = 0;
    }
    d->nws = 0; /* white space at the very end ends a line too */
    return o;
}

static const char hexd[] = "0123456789ABCDEF";

void mwi_qpenc_init(mw_qpenc *e, int binary)
{
    memset(e, 0, sizeof *e);
    e->pending_ws = -1;
    e->binary = binary;
}

/* Writes one token (1 or 3 characters), breaking the line softly first
 * when it would pass 76 characters with the '='. */
static size_t qp_put(mw_qpenc *e, char *out, unsigned char c, int encode)
{
    size_t o = 0;
    int tl = encode ? 3 : 1;
    if (e->col + tl > 75) {
        out[o++] = '=';
        out[o++] = '\r';
        out[o++] = '\n';
        e->col = 0;
    }
    if (encode) {
        out[o++] = '=';
        out[o++] = hexd[c >> 4];
        out[o++] = hexd[c & 15];
    } else {
        out[o++] = (char)c;
    }
    e->col += tl;
    return o;
}

static size_t qp_hard_break(mw_qpenc *e, char *out)
{
    size_t o = 0;
    if (e->pending_ws >= 0) {
        o += qp_put(e, out, (unsigned char)e->pending_ws, 1);
        e->pending_ws = -1;
    }
    out[o++] = '\r';
    out[o++] = '\n';
    e->col = 0;
    return o;
}

size_t mwi_qpenc_run(mw_qpenc *e, const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[i];
        if (!e->binary) {
            if (e->cr) {
                e->cr = 0;
                if (c == '\n') {
                    o += qp_hard_break(e, out + o);
                    continue;
                }
                if (e->pending_ws >= 0) {
                    o += qp_put(e, out + o, (unsigned char)e->pending_ws, 0);
                    e->pending_ws = -1;
                }
                o += qp_put(e, out + o, '\r', 1);
            }
            if (c == '\r') {
                e->cr = 1;
                continue;
            }
            if (c == '\n') {
                o += qp_hard_break(e, out + o);
                continue;
            }
        }
        if (e->pending_ws >= 0) {
            o += qp_put(e, out + o, (unsigned char)e->pending_ws, 0);
            e->pending_ws = -1;
        }
        if ((c == ' ' || c == '\t') && !e->binary) {
            e->pending_ws = c;
            continue;
        }
        int enc = c < 33 || c > 126 || c == '=' || (e->col == 0 && (c == '.' || c == 'F'));
        o += qp_put(e, out + o, c, enc);
    }
    return o;
}

size_t mwi_qpenc_end(mw_qpenc *e, char *out)
{
    size_t o = 0;
    if (e->cr) {
        if (e->pending_ws >= 0) {
            o += qp_put(e, out + o, (unsigned char)e->pending_ws, 0);
            e->pending_ws = -1;
        }
        o += qp_put(e, out + o, '\r', 1);
        e->cr = 0;
    }
    if (e->pending_ws >= 0) {
        o += qp_put(e, out + o, (unsigned char)e->pending_ws, 1);
        e->pending_ws = -1;
    }
    return o;
}

static const char b64a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_quantum(mw_b64enc *e, const unsigned char *q, int n, char *out)
{
    size_t o = 0;
    uint32_t v = (uint32_t)q[0] << 16 | (n > 1 ? (uint32_t)q[1] << 8 : 0) | (n > 2 ? q[2] : 0);
    out[o++] = b64a[v >> 18 & 63];
    out[o++] = b64a[v >> 12 & 63];
    out[o++] = n > 1 ? b64a[v >> 6 & 63] : '=';
    out[o++] = n > 2 ? b64a[v & 63] : '=';
    e->col += 4;
    if (e->col >= 76) {
        out[o++] = '\r';
        out[o++] = '\n';
        e->col = 0;
    }
    return o;
}

size_t mwi_b64enc_run(mw_b64enc *e, const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    while (e->nrest > 0 && e->nrest < 3 && i < len)
        e->rest[e->nrest++] = in[i++];
    if (e->nrest == 3) {
        o += b64_quantum(e, e->rest, 3, out + o);
        e->nrest = 0;
    }
    for (; i + 3 <= len; i += 3)
        o += b64_quantum(e, in + i, 3, out + o);
    while (i < len)
        e->rest[e->nrest++] = in[i++];
    return o;
}

size_t mwi_b64enc_end(mw_b64enc *e, char *out)
{
    size_t o = 0;
    if (e->nrest) o += b64_quantum(e, e->rest, e->nrest, out);
    e->nrest = 0;
    if (e->col) {
        out[o++] = '\r';
        out[o++] = '\n';
        e->col = 0;
    }
    return o;
}

/* ---- whole-buffer helpers of the public API ---- */
#include "mailwire/mime.h"

#include <stdlib.h>

int mw_mime_qp_encode(char **out, size_t *outlen, const void *in, size_t len)
{
    *out = malloc(len * 6 + 32);
    if (!*out) return MW_ENOMEM;
    mw_qpenc e;
    mwi_qpenc_init(&e, 0);
    size_t o = mwi_qpenc_run(&e, in, len, *out);
    o += mwi_qpenc_end(&e, *out + o);
    (*out)[o] = '\0';
    if (outlen) *outlen = o;
    return 0;
}

int mw_mime_qp_decode(char **out, size_t *outlen, const char *in, size_t len)
{
    *out = malloc(len + 128);
    if (!*out) return MW_ENOMEM;
    mw_qpdec d;
    memset(&d, 0, sizeof d);
    size_t o = mwi_qpdec_run(&d, in, len, (unsigned char *)*out);
    o += mwi_qpdec_end(&d, (unsigned char *)*out + o);
    (*out)[o] = '\0';
    if (outlen) *outlen = o;
    return 0;
}
