/* The message source of a transaction: data in memory, a descriptor or a
 * read function; the header block read ahead for the envelope and its
 * rewrite; the body encoded (CRLF, dot-stuffing, src/proto/smtp_data.c)
 * and sent after DATA or in BDAT chunks (RFC 3030). */
#include "smtp/smtp_int.h"
#include "util/err.h"
#include "util/fmt.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static long src_raw_read(mwi_smtp_src *r, char *buf, size_t len, mw_error *err)
{
    const mw_smtp_msg *m = r->m;
    if (m->data) {
        size_t n = m->len - r->pos < len ? m->len - r->pos : len;
        memcpy(buf, m->data + r->pos, n);
        r->pos += n;
        return (long)n;
    }
    if (m->read) {
        long n = m->read(buf, len, m->read_userdata);
        if (n < 0)
            return mwi_err_set(err, n < MW_ERROR_LAST ? MW_EIO : (int)n,
                               "the message source failed (%ld)", n);
        return n;
    }
    for (;;) {
        ssize_t n = read(m->fd, buf, len);
        if (n >= 0) return (long)n;
        if (errno != EINTR)
            return mwi_err_set(err, MW_EIO, "reading the message: %s", MW_ERRNO_TEXT(errno));
    }
}

/* Reads the header block ahead: into r->pre (streams) or just measures it
 * (memory).  Points *hdr and *hlen at the block. */
int mwi_smtp_src_header(mwi_smtp_src *r, const char **hdr, size_t *hlen, mw_error *err)
{
    int complete;
    if (r->m->data) {
        size_t l = mwi_smtp_header_len(r->m->data, r->m->len, &complete);
        *hdr = r->m->data;
        *hlen = complete ? l : r->m->len;
        return 0;
    }
    mw_buf b = MW_BUF_INIT(MW_SMTP_MAX_HEADER + MWI_SMTP_CHUNK);
    for (;;) {
        if (mwi_buf_reserve(&b, MWI_SMTP_CHUNK)) {
            mwi_buf_free(&b);
            return mwi_err_set(err, MW_ETOOBIG, "the header block is over %d octets",
                               MW_SMTP_MAX_HEADER);
        }
        long n = src_raw_read(r, b.data + b.len, MWI_SMTP_CHUNK, err);
        if (n < 0) {
            mwi_buf_free(&b);
            return (int)n;
        }
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        size_t l = mwi_smtp_header_len(b.data, b.len, &complete);
        if (complete || n == 0) {
            r->pre = b.data;
            r->prelen = b.len;
            *hdr = b.data;
            *hlen = complete ? l : b.len;
            if (n == 0) r->eof = 1;
            return 0;
        }
        if (b.len > MW_SMTP_MAX_HEADER) {
            mwi_buf_free(&b);
            return mwi_err_set(err, MW_ETOOBIG,
                               "no end of the header block in the first %d "
                               "octets",
                               MW_SMTP_MAX_HEADER);
        }
    }
}

static long src_read(mwi_smtp_src *r, char *buf, size_t len, mw_error *err);

/* The next piece of the message that is already in memory (the header
 * read-ahead, a message given as data), without a copy: points *p at up to
 * `len` octets and returns their number; 0 when nothing is in memory. */
static long src_mem_next(mwi_smtp_src *r, const char **p, size_t len)
{
    if (r->prepos < r->prelen) {
        size_t n = r->prelen - r->prepos < len ? r->prelen - r->prepos : len;
        *p = r->pre + r->prepos;
        r->prepos += n;
        return (long)n;
    }
    if (r->m->data) {
        size_t n = r->m->len - r->pos < len ? r->m->len - r->pos : len;
        *p = r->m->data + r->pos;
        r->pos += n;
        return (long)n;
    }
    return 0;
}

/* The next piece of the message: from memory without a copy, else read
 * into buf.  Returns its length, 0 at the end, or a negative code. */
static long src_next(mwi_smtp_src *r, const char **p, char *buf, size_t len, mw_error *err)
{
    if (r->prepos < r->prelen || r->m->data) return src_mem_next(r, p, len);
    *p = buf;
    return src_read(r, buf, len, err);
}

static long src_read(mwi_smtp_src *r, char *buf, size_t len, mw_error *err)
{
    if (r->prepos < r->prelen) {
        size_t n = r->prelen - r->prepos < len ? r->prelen - r->prepos : len;
        memcpy(buf, r->pre + r->prepos, n);
        r->prepos += n;
        return (long)n;
    }
    if (r->eof) return 0;
    return src_raw_read(r, buf, len, err);
}

/* Streams the message: the rewritten header (when any), then the source
 * from `skip` on, encoded; the end of the body and the final dot go out in
 * the same write.  Returns with every reply to BDAT read (CHUNKING) or
 * with the reply to the final dot. */
/* Hands the output buffer back to the session for the next message (not
 * one grown past a few chunks: the memory a batch keeps stays bounded). */
void mwi_smtp_xout_release(mw_smtp *s, mw_buf *b)
{
    if (b->data && !s->xout.data && b->cap <= 4 * MWI_SMTP_CHUNK) {
        s->xout = *b;
        s->xout.len = 0;
        s->xout.data[0] = '\0';
    } else {
        mwi_buf_free(b);
    }
    *b = (mw_buf)MW_BUF_INIT(0);
}

/* Whether the rest of the message is in memory (header read-ahead, data). */
int mwi_smtp_src_in_memory(const mwi_smtp_src *r)
{
    return r->prepos < r->prelen || (r->m->data && r->pos < r->m->len);
}

/* Encodes the rewritten header and skips the original one.  Only octets
 * already in memory are involved (the original header lies in the
 * read-ahead or the data), so this reads nothing from the source. */
static void xfer_start(mwi_smtp_xfer *x, mwi_smtp_src *r, const mw_smtp_env *env, size_t skip,
                       int chunking)
{
    mwi_smtp_data_init(&x->enc, chunking != 0);
    x->enc.binary_body = chunking == 2;
    x->started = 1;
    if (env->rewritten)
        x->rc =
            mwi_smtp_data_encode(&x->enc, env->header.data, env->header.len, &x->out, &x->local);
    while (!x->rc && skip > 0 && mwi_smtp_src_in_memory(r)) {
        const char *p;
        long n = src_mem_next(r, &p, skip < MWI_SMTP_CHUNK ? skip : MWI_SMTP_CHUNK);
        skip -= (size_t)n;
    }
}

/* Encodes ahead, while the replies to MAIL/RCPT/DATA are on their way: the
 * header, whatever of the message is already in memory, and what the
 * source gives (into `buf`, MWI_SMTP_CHUNK octets) up to MWI_SMTP_CHUNK of
 * output — for a small file that includes the read that finds its end — so
 * that after the 354 the message goes out at once.  A source error met
 * here is reported by transfer, as if met there. */
void mwi_smtp_xfer_ahead(mwi_smtp_xfer *x, mwi_smtp_src *r, const mw_smtp_env *env, size_t skip,
                         int forbid8, char *buf, int chunking)
{
    xfer_start(x, r, env, skip, chunking);
    while (!x->rc && x->out.len < MWI_SMTP_CHUNK) {
        const char *p;
        long n;
        if (mwi_smtp_src_in_memory(r)) {
            n = src_mem_next(r, &p, MWI_SMTP_CHUNK);
        } else {
            if (r->eof || r->m->data || !buf) break;
            p = buf;
            n = src_raw_read(r, buf, MWI_SMTP_CHUNK, &x->local);
            if (n < 0) {
                x->rc = (int)n;
                break;
            }
            if (n == 0) {
                r->eof = 1;
                break;
            }
        }
        x->rc = mwi_smtp_data_encode(&x->enc, p, (size_t)n, &x->out, &x->local);
        if (!x->rc && forbid8 && x->enc.saw_8bit)
            x->rc = mwi_err_set(&x->local, MW_EUNSUPPORTED,
                                "the message has 8-bit data and the server does not offer "
                                "8BITMIME (RFC 6152): transfer aborted");
    }
}

int mwi_smtp_xfer_more(mwi_smtp_xfer *x, mwi_smtp_src *r, int forbid8, char *buf)
{
    if (x->rc) return x->rc;
    const char *p;
    long n = src_next(r, &p, buf, MWI_SMTP_CHUNK, &x->local);
    if (n < 0) return x->rc = (int)n;
    if (n == 0) {
        x->rc = mwi_smtp_data_finish(&x->enc, &x->out, &x->local);
        return x->rc ? x->rc : 1;
    }
    x->rc = mwi_smtp_data_encode(&x->enc, p, (size_t)n, &x->out, &x->local);
    if (!x->rc && forbid8 && x->enc.saw_8bit)
        x->rc = mwi_err_set(&x->local, MW_EUNSUPPORTED,
                            "the message has 8-bit data and the server does not offer "
                            "8BITMIME (RFC 6152): transfer aborted");
    return x->rc;
}
