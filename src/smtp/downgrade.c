/* A message made 7-bit for a server that cannot take it as it is (no
 * BINARYMIME, RFC 3030 §3): each MIME entity (RFC 2045, 2046) whose body is
 * not 7-bit gets a base64 body (RFC 2045 §6.8) and its
 * Content-Transfer-Encoding replaced; multiparts and message/rfc822 are
 * walked, their delimiters, preambles and epilogues kept.  What cannot be
 * made 7-bit this way (8-bit header fields, preambles, epilogues; lines
 * over 998 octets there) is refused, never sent damaged. */
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include "util/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DG_MAX_DEPTH 32

typedef struct dg {
    FILE *f;
    mw_error *err;
} dg;

/* Whether d[0..n) may go as 7bit (RFC 2045 §2.7): no octet over 127, no
 * NUL, CR only in CRLF, lines of at most 998 octets. */
static int is_7bit(const char *d, size_t n)
{
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch == '\n') {
            line = 0;
            continue;
        }
        if (ch == '\r' && i + 1 < n && d[i + 1] == '\n') continue;
        if (ch >= 0x80 || ch == 0 || ch == '\r' || ++line > 998) return 0;
    }
    return 1;
}

static void put_base64(FILE *f, const unsigned char *b, size_t bn, int final_eol)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0;
    for (size_t i = 0; i < bn; i += 3) {
        if (col == 76) {
            fputs("\r\n", f);
            col = 0;
        }
        unsigned v = (unsigned)b[i] << 16;
        if (i + 1 < bn) v |= (unsigned)b[i + 1] << 8;
        if (i + 2 < bn) v |= b[i + 2];
        char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                     i + 1 < bn ? b64[(v >> 6) & 63] : '=', i + 2 < bn ? b64[v & 63] : '='};
        fwrite(q, 1, 4, f);
        col += 4;
    }
    if (col && final_eol) fputs("\r\n", f);
}

/* The end of the line starting at i (past its LF); *l its length without
 * the line end. */
static size_t line_end(const char *d, size_t n, size_t i, size_t *l)
{
    const char *nl = memchr(d + i, '\n', n - i);
    size_t e = nl ? (size_t)(nl - d) + 1 : n;
    *l = e - i;
    while (*l > 0 && (d[i + *l - 1] == '\n' || d[i + *l - 1] == '\r'))
        (*l)--;
    return e;
}

/* The length of the header block (through its empty line); n when none. */
static size_t header_end(const char *d, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l, e = line_end(d, n, i, &l);
        if (l == 0) return e;
        i = e;
    }
    return n;
}

static int field_is(const char *d, size_t n, size_t i, const char *name)
{
    size_t k = strlen(name);
    return n - i > k && !strncasecmp(d + i, name, k) && d[i + k] == ':';
}

/* d[0..n) copied as it is, when it is 7-bit. */
static int put_as_is(dg *g, const char *d, size_t n, const char *what)
{
    if (!is_7bit(d, n))
        return mwi_err_set(g->err, MW_EFORMAT,
                           "cannot make the message 7-bit: %s holds 8-bit "
                           "data, a NUL, a bare CR or a line over 998 octets",
                           what);
    fwrite(d, 1, n, g->f);
    return 0;
}

static int entity(dg *g, const char *d, size_t n, int depth, int top, int final_eol);

/* Content-Type's unfolded value of the header d[0..hb) into ctv, its length returned. */
static size_t scan_header(const char *d, size_t n, size_t hb, char *ctv, size_t cap, int *have_mv,
                          int *have_ct)
{
    size_t ctl = 0;
    int in_ct = 0;
    for (size_t i = 0; i < hb;) {
        size_t l, e = line_end(d, hb, i, &l);
        if (l == 0) break;
        if (d[i] != ' ' && d[i] != '\t') {
            in_ct = field_is(d, n, i, "Content-Type");
            *have_ct |= in_ct;
            if (field_is(d, n, i, "MIME-Version")) *have_mv = 1;
            if (in_ct) {
                size_t k = l - 13 < cap - 1 ? l - 13 : cap - 1;
                memcpy(ctv, d + i + 13, k);
                ctl = k;
            }
        } else if (in_ct && ctl + l < cap - 1) {
            memcpy(ctv + ctl, d + i, l);
            ctl += l;
        }
        i = e;
    }
    ctv[ctl] = '\0';
    return ctl;
}

/* The header d[0..hb), line by line with CRLF, without Content-Transfer-Encoding unless leaf_ok. */
static int put_header(dg *g, const char *d, size_t n, size_t hb, int leaf_ok)
{
    /* Content-Transfer-Encoding goes where this entity's body changes. */
    int rc = 0, skip = 0;
    for (size_t i = 0; i < hb && !rc;) {
        size_t l, e = line_end(d, hb, i, &l);
        if (l == 0) break;
        if (d[i] != ' ' && d[i] != '\t')
            skip = !leaf_ok && field_is(d, n, i, "Content-Transfer-Encoding");
        if (!skip) rc = put_as_is(g, d + i, l, "a header field");
        if (!skip) fputs("\r\n", g->f);
        i = e;
    }
    return rc;
}

/* A multipart body: preamble, delimiters and epilogue as they are, each part made 7-bit. */
static int put_multipart(dg *g, const char *body, size_t bn, const char *boundary, size_t bl,
                         int depth, int final_eol)
{
    /* The delimiter lines "--B" and "--B--" (RFC 2046 §5.1.1); the line
     * end before a delimiter belongs to it. */
    int rc = 0;
    size_t i = 0, part = SIZE_MAX;
    int closed = 0;
    while (i < bn && !rc) {
        size_t l, e = line_end(body, bn, i, &l);
        int delim = l >= 2 + bl && body[i] == '-' && body[i + 1] == '-' &&
                    !memcmp(body + i + 2, boundary, bl);
        if (delim) {
            size_t cut = i;
            if (cut > 0 && body[cut - 1] == '\n') cut--;
            if (cut > 0 && body[cut - 1] == '\r') cut--;
            if (part == SIZE_MAX) {
                rc = put_as_is(g, body, i, "the multipart preamble");
            } else {
                rc = entity(g, body + part, cut > part ? cut - part : 0, depth + 1, 0, 0);
                fputs("\r\n", g->f);
            }
            if (!rc) rc = put_as_is(g, body + i, l, "a multipart delimiter line");
            fputs("\r\n", g->f);
            part = e;
            if (l >= 4 + bl && body[i + 2 + bl] == '-' && body[i + 3 + bl] == '-') {
                closed = 1;
                if (!rc) rc = put_as_is(g, body + e, bn - e, "the multipart epilogue");
                break;
            }
        }
        i = e;
    }
    if (!rc && !closed && part != SIZE_MAX && part < bn)
        rc = entity(g, body + part, bn - part, depth + 1, 0, final_eol);
    else if (!rc && part == SIZE_MAX)
        rc = put_as_is(g, body, bn, "a multipart body without delimiters");
    return rc;
}

/* One entity d[0..n) made 7-bit: its header, then its body by its type. */
static int entity(dg *g, const char *d, size_t n, int depth, int top, int final_eol)
{
    if (depth > DG_MAX_DEPTH)
        return mwi_err_set(g->err, MW_EFORMAT,
                           "cannot make the message 7-bit: MIME parts nested "
                           "over %d deep",
                           DG_MAX_DEPTH);
    size_t hb = header_end(d, n);
    char ctv[2048];
    int have_mv = 0, have_ct = 0;
    size_t ctl = scan_header(d, n, hb, ctv, sizeof ctv, &have_mv, &have_ct);
    mw_mime_ctype *ct = NULL;
    const char *type = "text/plain", *boundary = NULL;
    if (have_ct && mw_mime_ctype_parse(&ct, ctv, ctl, NULL) == 0) {
        type = mw_mime_ctype_value(ct);
        boundary = mw_mime_ctype_param(ct, "boundary");
    }
    size_t bl = boundary ? strlen(boundary) : 0;
    int multi = !strncmp(type, "multipart/", 10) && bl > 0 && bl <= 70; /* RFC 2046 §5.1.1 */
    int message = !strcmp(type, "message/rfc822") || !strcmp(type, "message/global");
    const char *body = d + hb;
    size_t bn = n - hb;
    int leaf_ok = !multi && !message && is_7bit(body, bn);
    int rc = put_header(g, d, n, hb, leaf_ok);
    if (!rc && top && !have_mv) fputs("MIME-Version: 1.0\r\n", g->f);
    if (rc) {
    } else if (leaf_ok) {
        fputs("\r\n", g->f);
        fwrite(body, 1, bn, g->f);
    } else if (!multi && !message) {
        fputs("Content-Transfer-Encoding: base64\r\n\r\n", g->f);
        put_base64(g->f, (const unsigned char *)body, bn, final_eol);
    } else if (message) {
        fputs("\r\n", g->f);
        rc = entity(g, body, bn, depth + 1, 0, final_eol);
    } else {
        fputs("\r\n", g->f);
        rc = put_multipart(g, body, bn, boundary, bl, depth, final_eol);
    }
    mw_mime_ctype_free(ct);
    return rc;
}

int mw_smtp_downgrade_7bit(const char *data, size_t len, char **out, size_t *out_len, mw_error *err)
{
    if (!out || !out_len || (!data && len))
        return mwi_err_set(err, MW_EINVAL, "mw_smtp_downgrade_7bit: bad arguments");
    *out = NULL;
    *out_len = 0;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    dg g = {f, err};
    int rc = entity(&g, data ? data : "", len, 0, 1, 1);
    if (fclose(f) != 0 && !rc) rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = blen;
    return 0;
}
