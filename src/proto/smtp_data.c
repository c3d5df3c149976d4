#include "proto/smtp_data.h"

#include "util/err.h"

#include <string.h>

void mw_smtp_data_init(mw_smtp_data_enc *e, int bdat)
{
    memset(e, 0, sizeof *e);
    e->bdat = bdat;
    e->at_line_start = 1;
    e->line_no = 1;
    e->max_line = MW_SMTP_MAX_LINE_OCTETS;
}

static int end_line(mw_smtp_data_enc *e, mw_buf *out)
{
    e->at_line_start = 1;
    e->line_len = 0;
    e->line_no++;
    return mw_buf_append(out, "\r\n", 2);
}

int mw_smtp_data_encode(mw_smtp_data_enc *e, const char *in, size_t n, mw_buf *out, mw_error *err)
{
    size_t i = 0;
    int rc;
    e->in_octets += n;
    size_t before = out->len;
    /* Reserve roughly what we will add, so the common case is one copy. */
    if ((rc = mw_buf_reserve(out, n + n / 32 + 8)) != 0)
        return mw_err_set(err, rc, "no room for the encoded message data");
    while (i < n) {
        if (e->after_cr) {
            e->after_cr = 0;
            if (in[i] == '\n') { /* the LF of a CRLF */
                i++;
                continue;
            }
            e->saw_bare_eol = 1; /* the CR was bare */
        }
        if (e->at_line_start) {
            e->at_line_start = 0;
            /* RFC 5321 §4.5.2: a line starting with "." gets one more. */
            if (in[i] == '.' && !e->bdat && (rc = mw_buf_append_char(out, '.')) != 0)
                return mw_err_set(err, rc, "no room for the encoded message data");
        }
        /* Copy the run up to the next CR or LF in one go. */
        size_t j = i;
        while (j < n && in[j] != '\r' && in[j] != '\n') {
            if ((unsigned char)in[j] >= 0x80) e->saw_8bit = 1;
            j++;
        }
        if (e->max_line && e->line_len + (j - i) > e->max_line)
            return mw_err_set(err, MW_ETOOBIG,
                              "line %llu of the message is longer than %zu octets "
                              "(RFC 5321 §4.5.3.1.6); encode it (quoted-printable or base64)",
                              (unsigned long long)e->line_no, e->max_line);
        if (j > i && (rc = mw_buf_append(out, in + i, j - i)) != 0)
            return mw_err_set(err, rc, "no room for the encoded message data");
        e->line_len += j - i;
        i = j;
        if (i == n) break;
        /* A line end: CRLF, or a bare CR or LF, all become CRLF.  After a
         * CR, an LF (maybe in the next chunk) is its pair and is skipped at
         * the top of the loop. */
        if (in[i] == '\r')
            e->after_cr = 1;
        else
            e->saw_bare_eol = 1;
        i++;
        if ((rc = end_line(e, out)) != 0)
            return mw_err_set(err, rc, "no room for the encoded message data");
    }
    e->out_octets += out->len - before;
    return 0;
}

int mw_smtp_data_finish(mw_smtp_data_enc *e, mw_buf *out, mw_error *err)
{
    size_t before = out->len;
    int rc = 0;
    /* RFC 5321 §4.1.1.4: the data ends with CRLF "." CRLF, the CRLF being
     * the end of the last line; add one when the message lacks it. */
    if (!e->at_line_start) rc = end_line(e, out);
    if (!rc && !e->bdat) rc = mw_buf_append(out, ".\r\n", 3);
    if (rc) return mw_err_set(err, rc, "no room for the end of the message data");
    e->after_cr = 0;
    e->out_octets += out->len - before;
    return 0;
}
