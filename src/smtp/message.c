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

/* The server may answer in the middle of the data transfer (a 552 for a
 * message too big, a 554 from a content filter, a 421) and close the
 * connection; our write then fails with a broken pipe or a reset, and the
 * server's reply, already in our receive queue, is the real reason.  RFC
 * 5321 §4.1.1.4 / RFC 2920 §3.2 let a server reply before the end of the
 * data.  So after a failed write, read what is left on the stream (bounded:
 * 4 KiB, 2 seconds, the operation deadline) and when it holds a complete
 * reply, report that reply, keeping the write failure in the message.
 * The connection is dead either way. */
static void salvage_reply(mw_smtp *s, const char *what)
{
    mw_stream *st = mwi_conn_stream(s->c);
    if (!st) return;
    char buf[4096];
    size_t have = 0;
    int64_t dl = mw_now_ms() + 2000;
    if (s->tx_deadline != MW_NO_DEADLINE && s->tx_deadline < dl) dl = s->tx_deadline;
    mw_error tmp = {0};
    mwi_smtp_reply_init(s->rep);
    size_t start = 0;
    while (have < sizeof buf) {
        size_t got = 0;
        if (mw_stream_read(st, buf + have, sizeof buf - have, &got, dl, &tmp) || got == 0) break;
        have += got;
        char *nl;
        while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
            size_t len = (size_t)(nl - (buf + start));
            if (len > 0 && buf[start + len - 1] == '\r') len--;
            if (s->trace) s->trace(MW_TRACE_RECV, buf + start, len, s->trace_ud);
            int fr = mwi_smtp_reply_feed(s->rep, buf + start, len, &tmp);
            start = (size_t)(nl - buf) + 1;
            if (fr < 0) return;
            if (fr == 1) {
                char label[sizeof s->err.message + 64];
                snprintf(label, sizeof label, "%s (the server replied, then %.120s)", what,
                         s->err.message);
                mwi_smtp_reply_error(s, label);
                mwi_smtp_set_state(s, ST_DEAD);
                return;
            }
        }
    }
}

/* Writes one BDAT chunk (RFC 3030 §2). */
int mwi_smtp_put_bdat(mw_smtp *s, mw_buf *b, int last, int *outstanding)
{
    char line[64];
    mw_fmt f;
    mw_fmt_init(&f, line, sizeof line);
    mw_fmt_mem(&f, "BDAT ", 5);
    mw_fmt_uint(&f, b->len, 1);
    if (last) mw_fmt_mem(&f, " LAST", 5);
    int rc = mwi_smtp_put_line(s, line, f.len, NULL);
    if (!rc && b->len) rc = mwi_smtp_conn_failed(s, mwi_conn_write(s->c, b->data, b->len, &s->err));
    (*outstanding)++;
    b->len = 0;
    return rc;
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

/* Without PIPELINING each BDAT chunk waits for its reply; with it, at
 * most 16 replies are left unread so the server never blocks writing them
 * while we block writing chunks (the deadlock of RFC 2920 §3.1). */
static int bdat_window(mw_smtp *s, int *outstanding, int pipelining, int *first_fail)
{
    int rc = 0;
    while (!rc && *outstanding > (pipelining ? 16 : 0)) {
        rc = mwi_smtp_flush(s);
        if (!rc) rc = mwi_smtp_get_reply(s, "BDAT");
        (*outstanding)--;
        if (!rc && !mwi_smtp_is_2xx(s)) {
            rc = mwi_smtp_reply_error(s, "message data refused");
            *first_fail = 1;
        }
    }
    return rc;
}

/* A chunk was refused: read the replies still owed (RFC 3030 §2: the rest
 * fail too) so the session stays in step; RSET follows. */
static void bdat_refused(mw_smtp *s, int outstanding)
{
    mw_error keep = s->err;
    int r2 = mwi_smtp_flush(s);
    while (!r2 && outstanding-- > 0)
        r2 = mwi_smtp_get_reply(s, "BDAT");
    s->err = keep;
    if (s->rep->code == 421 || r2) mwi_smtp_set_state(s, ST_DEAD);
}

/* A failure of our own (the source, a line too long) during the transfer. */
static void local_failure(mw_smtp *s, const mw_error *local, int nothing_sent)
{
    if (local->code) s->err = *local;
    if (nothing_sent) {
        /* Met before any BDAT went out: nothing of the message reached
         * the server, so the session lives on (RSET before the next, as
         * after any BDAT transaction that did not end well). */
        mwi_smtp_trace_info(s, "not sending the message: %s", s->err.message);
        return;
    }
    /* In the middle of DATA there is no way to abort it (RFC 5321
     * §4.1.1.4), so the connection is dropped and the server discards the
     * message. */
    mwi_smtp_set_state(s, ST_DEAD);
    mwi_smtp_trace_info(s, "aborting the transfer: %s", s->err.message);
}

/* The end of the data: BDAT LAST, or the rest with the final dot (queued
 * only when the caller holds it to go out with the next envelope). */
static int put_end(mw_smtp *s, mw_buf *out, int chunking, int hold, int *outstanding)
{
    if (chunking) return mwi_smtp_put_bdat(s, out, 1, outstanding);
    if (hold) return mwi_smtp_conn_failed(s, mwi_conn_queue(s->c, out->data, out->len, &s->err));
    return mwi_smtp_conn_failed(s, mwi_conn_write(s->c, out->data, out->len, &s->err));
}

/* The first half of a transfer: the message goes out, up to and including
 * its end (final dot, or BDAT LAST) and the mwi_smtp_flush.  Returns non-zero when
 * the transfer is over already (a refused chunk, a local failure); else 0
 * with x->pending set: mwi_smtp_transfer_replies reads what the server says. */
int mwi_smtp_transfer_send(mw_smtp *s, mwi_smtp_src *r, const mw_smtp_env *env, size_t skip,
                           int chunking, int forbid8, mw_smtp_result *res, mwi_smtp_xfer *x)
{
    if (!x->started) xfer_start(x, r, env, skip, chunking);
    mw_smtp_data_enc enc = x->enc;
    mw_buf out = x->out;
    x->out = (mw_buf)MW_BUF_INIT(0);
    mw_error local = x->local;
    int rc = x->rc, outstanding = 0, chunks = 0;
    if (!s->chunk) s->chunk = malloc(MWI_SMTP_CHUNK);
    char *in = s->chunk;
    int pipelining = (s->caps.flags & MW_SMTP_CAP_PIPELINING) != 0;
    if (!in) {
        mwi_smtp_xout_release(s, &out);
        return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    /* Encoded ahead up to MWI_SMTP_CHUNK: it goes out before more is read. */
    if (!rc && !chunking && out.len >= MWI_SMTP_CHUNK) {
        rc = mwi_smtp_conn_failed(s, mwi_conn_write(s->c, out.data, out.len, &s->err));
        out.len = 0;
    }
    int first_fail = 0;
    while (!rc) {
        const char *p;
        long n = src_next(r, &p, in, MWI_SMTP_CHUNK, &local);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) break;
        rc = mwi_smtp_data_encode(&enc, p, (size_t)n, &out, &local);
        /* RFC 6152 §3: no 8-bit octet may go to a server that did not
         * offer 8BITMIME; known only now for a stream source. */
        if (!rc && forbid8 && enc.saw_8bit)
            rc = mwi_err_set(&local, MW_EUNSUPPORTED,
                             "the message has 8-bit data and the server does not offer 8BITMIME "
                             "(RFC 6152): transfer aborted");
        if (!rc && out.len >= MWI_SMTP_CHUNK) {
            if (chunking) {
                rc = mwi_smtp_put_bdat(s, &out, 0, &outstanding);
                chunks++;
                if (!rc) rc = bdat_window(s, &outstanding, pipelining, &first_fail);
            } else {
                rc = mwi_smtp_conn_failed(s, mwi_conn_write(s->c, out.data, out.len, &s->err));
                out.len = 0;
            }
        }
    }
    if (first_fail || (rc && (local.code || s->err.code == 0))) {
        if (first_fail)
            bdat_refused(s, outstanding);
        else
            local_failure(s, &local, chunking && chunks == 0);
        mwi_smtp_xout_release(s, &out);
        return rc;
    }
    if (!rc) rc = mwi_smtp_data_finish(&enc, &out, &s->err);
    if (!rc) rc = put_end(s, &out, chunking, x->hold, &outstanding);
    if (!rc) {
        mwi_smtp_trace_info(s, "(%llu octets of message data%s)",
                            (unsigned long long)enc.out_octets, chunking ? " in BDAT chunks" : "");
        if (x->hold && !chunking)
            x->held = 1;
        else
            rc = mwi_smtp_flush(s);
    }
    mwi_smtp_xout_release(s, &out);
    res->octets = enc.out_octets;
    x->pending = 1;
    x->wrc = rc;
    x->outstanding = outstanding;
    x->chunking = chunking;
    return 0;
}

/* The second half: every reply still owed; the first failure counts. */
int mwi_smtp_transfer_replies(mw_smtp *s, mwi_smtp_xfer *x, mw_smtp_result *res)
{
    int rc = x->wrc, outstanding = x->outstanding, chunking = x->chunking;
    x->pending = 0;
    int frc = 0;
    while (!rc && outstanding > 0) {
        rc = mwi_smtp_get_reply(s, chunking ? "BDAT" : "end of data");
        outstanding--;
        if (!rc && !mwi_smtp_is_2xx(s) && !frc)
            frc = mwi_smtp_reply_error(s, "message data refused");
    }
    if (!chunking && !rc) {
        rc = mwi_smtp_get_reply(s, "end of data (.)");
        if (!rc && !mwi_smtp_is_2xx(s)) frc = mwi_smtp_reply_error(s, "message data refused");
    }
    if (rc == MW_ENET && s->err.reply_code == 0) {
        salvage_reply(s, "message data refused");
        if (s->err.reply_code) {
            res->final_code = s->rep->code;
            free(res->final_text);
            res->final_text = mwi_smtp_reply_text_dup(s->rep);
            rc = s->err.code;
        }
    }
    if (rc) return rc;
    res->final_code = s->rep->code;
    free(res->final_text);
    res->final_text = mwi_smtp_reply_text_dup(s->rep);
    return frc;
}
