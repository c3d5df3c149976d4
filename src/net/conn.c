/* Buffered, line-aware connection (see conn.h). */
#include "net/conn.h"
#include "net/stream.h"
#include "net/tls.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bodies are read in large blocks and split in memory: one system call per
 * line made fetchmail ~40x slower than needed (test-servers.md). */
#define MW_CONN_READ_BLOCK (64 * 1024)
/* Writes are queued up to this much before going out on their own. */
#define MW_CONN_WRITE_BLOCK  (64 * 1024)
#define MW_CONN_WRITE_DIRECT (4 * 1024) /* sent without a copy when nothing is queued */
/* The largest line limit a caller may set: the buffer is sized from it. */
#define MW_CONN_MAX_LINE_CAP (16 * 1024 * 1024)

struct mw_conn {
    mw_stream *s;
    char *rbuf;
    size_t rcap;    /* allocated bytes of rbuf */
    size_t rstart;  /* first unconsumed byte */
    size_t rend;    /* end of received bytes */
    size_t scanned; /* bytes after rstart already searched for LF */
    mw_buf wbuf;
    int io_timeout_ms;
    int64_t deadline;
    size_t max_line;
    mw_cancel *cancel;
    mw_trace_fn trace;
    void *trace_ud;
    int broken; /* a code: the connection cannot be used after this error */
};

int mwi_conn_new(mw_conn **out, mw_stream *s, mw_error *err)
{
    if (!out) {
        mw_stream_free(s);
        return mwi_err_set(err, MW_EINVAL, "no output connection pointer");
    }
    *out = NULL;
    if (!s) return mwi_err_set(err, MW_EINVAL, "no stream");
    mw_conn *c = calloc(1, sizeof *c);
    if (c) c->rcap = MW_CONN_READ_BLOCK;
    if (c && !(c->rbuf = malloc(c->rcap))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        mw_stream_free(s);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    c->s = s;
    c->deadline = MW_NO_DEADLINE;
    c->max_line = MW_CONN_DEFAULT_MAX_LINE;
    c->cancel = s->cancel;
    mw_buf tmp = MW_BUF_INIT(0);
    c->wbuf = tmp;
    *out = c;
    return 0;
}

void mwi_conn_free(mw_conn *c)
{
    if (!c) return;
    mw_stream_free(c->s);
    mwi_buf_free(&c->wbuf);
    free(c->rbuf);
    free(c);
}

void mwi_conn_set_io_timeout(mw_conn *c, int io_timeout_ms)
{
    c->io_timeout_ms = io_timeout_ms > 0 ? io_timeout_ms : 0;
}

void mwi_conn_set_deadline(mw_conn *c, int64_t deadline_ms)
{
    c->deadline = deadline_ms;
}

void mwi_conn_set_max_line(mw_conn *c, size_t max_line)
{
    if (max_line == 0) max_line = MW_CONN_DEFAULT_MAX_LINE;
    if (max_line > MW_CONN_MAX_LINE_CAP) max_line = MW_CONN_MAX_LINE_CAP;
    c->max_line = max_line;
}

void mwi_conn_set_cancel(mw_conn *c, mw_cancel *cancel)
{
    c->cancel = cancel;
    mwi_stream_set_cancel(c->s, cancel);
}

void mwi_conn_set_trace(mw_conn *c, mw_trace_fn fn, void *userdata)
{
    c->trace = fn;
    c->trace_ud = userdata;
}

void mwi_conn_trace(mw_conn *c, int dir, const char *line, size_t len)
{
    if (c && c->trace) c->trace(dir, line, len, c->trace_ud);
}

mw_stream *mwi_conn_stream(mw_conn *c)
{
    return c ? c->s : NULL;
}

size_t mwi_conn_buffered(const mw_conn *c)
{
    return c ? c->rend - c->rstart : 0;
}

int mwi_conn_unread(mw_conn *c, const char *data, size_t len, mw_error *err)
{
    if (c->rend != c->rstart) return mwi_err_set(err, MW_EINVAL, "bytes buffered already");
    if (len > c->rcap) {
        char *n = realloc(c->rbuf, len);
        if (!n) return mwi_err_set(err, MW_ENOMEM, "out of memory");
        c->rbuf = n;
        c->rcap = len;
    }
    if (len) memcpy(c->rbuf, data, len);
    c->rstart = c->scanned = 0;
    c->rend = len;
    return 0;
}

static int check_usable(mw_conn *c, mw_error *err)
{
    if (c->broken)
        return mwi_err_set(err, MW_ESTATE, "connection unusable after an earlier %s error",
                           mw_error_category(c->broken));
    if (mw_cancel_requested(c->cancel)) return mwi_err_set(err, MW_ECANCELED, "operation canceled");
    return 0;
}

/* Records a fatal error: after a timeout, a cut or an oversize line the
 * stream is at an unknown point of the protocol, so nothing more is sent.
 * A cancelled read loses nothing (the bytes stay buffered), so the caller
 * may reset the token and go on. */
static int fail(mw_conn *c, int rc)
{
    if (rc != 0 && rc != MW_ECANCELED) c->broken = rc;
    return rc;
}

/* A write that failed (even by cancel) may have sent part of a command. */
static int fail_write(mw_conn *c, int rc)
{
    if (rc != 0) c->broken = rc;
    return rc;
}

static int64_t io_deadline(mw_conn *c)
{
    return mwi_deadline_min(c->deadline, c->io_timeout_ms);
}

/* Explains which limit a timeout hit: the per-I/O one or the whole
 * operation's deadline. */
static int timeout_detail(mw_conn *c, const char *what, mw_error *err)
{
    /* A session limit of the stream (max-time, rate floor) already named
     * itself: keep its message, with what we were doing. */
    if (mwi_stream_limit_hit(c->s)) {
        if (!err) return MW_ETIMEOUT;
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s", err->message);
        char *w = strstr(m, " while ");
        if (w) *w = '\0';
        return mwi_err_set(err, MW_ETIMEOUT, "%s while %s", m, what);
    }
    if (c->deadline != MW_NO_DEADLINE && mw_now_ms() >= c->deadline)
        return mwi_err_set(err, MW_ETIMEOUT, "operation deadline passed while %s", what);
    return mwi_err_set(err, MW_ETIMEOUT, "no progress for %d ms while %s", c->io_timeout_ms, what);
}

/* Reads more bytes to the end of the buffer (compacting first when the
 * free tail is small).  0 bytes read = peer closed: MW_ENET. */
static int fill(mw_conn *c, const char *what, mw_error *err)
{
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
    } else if (c->rstart > 0 && c->rcap - c->rend < c->rcap / 2) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    size_t got = 0;
    int rc = mw_stream_read(c->s, c->rbuf + c->rend, c->rcap - c->rend, &got, io_deadline(c), err);
    if (rc == MW_ETIMEOUT) timeout_detail(c, what, err);
    if (rc) return fail(c, rc);
    if (got == 0)
        return fail(c,
                    mwi_err_set(err, MW_ENET, "the server closed the connection while %s", what));
    c->rend += got;
    return 0;
}

/* The buffer must hold a whole line of max_line bytes plus CR LF. */
static int ensure_line_room(mw_conn *c, mw_error *err)
{
    size_t need = c->max_line + 2;
    if (c->rcap >= need) return 0;
    char *n = realloc(c->rbuf, need);
    if (!n) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    c->rbuf = n;
    c->rcap = need;
    return 0;
}

int mwi_conn_read_line(mw_conn *c, const char **line, size_t *len, mw_error *err)
{
    *line = NULL;
    *len = 0;
    int rc = check_usable(c, err);
    if (rc || (rc = ensure_line_room(c, err))) return rc;
    for (;;) {
        size_t have = c->rend - c->rstart;
        char *start = c->rbuf + c->rstart;
        char *lf = memchr(start + c->scanned, '\n', have - c->scanned);
        if (lf) {
            size_t n = (size_t)(lf - start);
            size_t content = (n > 0 && start[n - 1] == '\r') ? n - 1 : n;
            if (content > c->max_line)
                return fail(c, mwi_err_set(err, MW_ETOOBIG,
                                           "line of %zu bytes is over the %zu-byte limit", content,
                                           c->max_line));
            c->rstart += n + 1;
            c->scanned = 0;
            *line = start;
            *len = content;
            return 0;
        }
        c->scanned = have;
        /* RFC 1939 §3 / RFC 5321 §4.5.3.1.5 bound lines; a peer that never
         * ends one must not make us buffer without limit.  With max_line+2
         * bytes and no LF, the line is over the limit whatever comes next. */
        if (have >= c->max_line + 2)
            return fail(c, mwi_err_set(err, MW_ETOOBIG, "line longer than the %zu-byte limit",
                                       c->max_line));
        rc = fill(c, "reading a line", err);
        if (rc) return rc;
    }
}

int mwi_conn_peek(mw_conn *c, const char **data, size_t *len, mw_error *err)
{
    *data = NULL;
    *len = 0;
    int rc = check_usable(c, err);
    if (rc) return rc;
    if (c->rend == c->rstart) {
        c->scanned = 0;
        if ((rc = fill(c, "reading data", err))) return rc;
    }
    *data = c->rbuf + c->rstart;
    *len = c->rend - c->rstart;
    return 0;
}

int mwi_conn_peek_mut(mw_conn *c, size_t min, char **data, size_t *len, mw_error *err)
{
    *data = NULL;
    *len = 0;
    if (min == 0 || min > MW_CONN_READ_BLOCK)
        return mwi_err_set(err, MW_EINVAL, "cannot wait for %zu buffered bytes", min);
    int rc = check_usable(c, err);
    if (rc) return rc;
    /* fill() compacts when the free tail is short, and rcap >= 64 KiB, so
     * every round has room to read into until min bytes are here. */
    while (c->rend - c->rstart < min)
        if ((rc = fill(c, "reading data", err))) return rc;
    /* The caller may rewrite the bytes: nothing of them was searched. */
    c->scanned = 0;
    *data = c->rbuf + c->rstart;
    *len = c->rend - c->rstart;
    return 0;
}

void mwi_conn_consume(mw_conn *c, size_t n)
{
    size_t have = c->rend - c->rstart;
    if (n > have) n = have;
    c->rstart += n;
    c->scanned = c->scanned > n ? c->scanned - n : 0;
}

/* Writes in blocks so the per-I/O timeout means "no progress for that
 * long", not "the whole body within that long". */
static int send_all(mw_conn *c, const char *p, size_t len, mw_error *err)
{
    while (len > 0) {
        size_t n = len < MW_CONN_WRITE_BLOCK ? len : MW_CONN_WRITE_BLOCK;
        int rc = mw_stream_write(c->s, p, n, io_deadline(c), err);
        if (rc == MW_ETIMEOUT) timeout_detail(c, "sending", err);
        if (rc) return fail_write(c, rc);
        p += n;
        len -= n;
    }
    return 0;
}

int mwi_conn_flush(mw_conn *c, mw_error *err)
{
    int rc = check_usable(c, err);
    if (rc) return rc;
    if (c->wbuf.len == 0) return 0;
    rc = send_all(c, c->wbuf.data, c->wbuf.len, err);
    mwi_buf_reset(&c->wbuf);
    return rc;
}

int mwi_conn_write(mw_conn *c, const void *data, size_t len, mw_error *err)
{
    int rc = check_usable(c, err);
    if (rc) return rc;
    if (len >= MW_CONN_WRITE_BLOCK || (c->wbuf.len == 0 && len >= MW_CONN_WRITE_DIRECT)) {
        /* Large blocks go straight out after what is queued. */
        if ((rc = mwi_conn_flush(c, err))) return rc;
        return send_all(c, data, len, err);
    }
    if ((rc = mwi_buf_append(&c->wbuf, data, len)))
        return mwi_err_set(err, rc, "cannot queue %zu bytes: %s", len, mw_strerror(rc));
    if (c->wbuf.len >= MW_CONN_WRITE_BLOCK) return mwi_conn_flush(c, err);
    return 0;
}

int mwi_conn_queue(mw_conn *c, const void *data, size_t len, mw_error *err)
{
    int rc = check_usable(c, err);
    if (rc) return rc;
    if ((rc = mwi_buf_append(&c->wbuf, data, len)))
        return mwi_err_set(err, rc, "cannot queue %zu bytes: %s", len, mw_strerror(rc));
    return 0;
}

/* Queues all of *b.  When nothing is queued yet, the two buffers trade
 * storage instead (no copy of a message's end held for the next write);
 * *b comes back empty either way. */
int mwi_conn_queue_buf(mw_conn *c, mw_buf *b, mw_error *err)
{
    if (c->wbuf.len || c->wbuf.max != b->max) {
        int rc = mwi_conn_queue(c, b->data, b->len, err);
        if (!rc) mwi_buf_reset(b);
        return rc;
    }
    int rc = check_usable(c, err);
    if (rc) return rc;
    mw_buf t = c->wbuf;
    c->wbuf = *b;
    *b = t;
    mwi_buf_reset(b);
    return 0;
}

int mwi_conn_starttls(mw_conn *c, const mw_tls_opts *opts, mw_error *err)
{
    int rc = check_usable(c, err);
    if (rc) return rc;
    size_t n = c->rend - c->rstart;
    if (n > 0)
        return fail(
            c, mwi_err_set(err, MW_EPROTO,
                           "%zu bytes received before the TLS handshake (possible injection)", n));
    if ((rc = mwi_conn_flush(c, err))) return rc;
    mw_stream *t = NULL;
    rc = mwi_tls_wrap(&t, c->s, opts, c->deadline, err);
    if (rc) {
        c->s = NULL; /* freed by mwi_tls_wrap */
        c->broken = rc;
        return rc;
    }
    c->s = t;
    c->rstart = c->rend = c->scanned = 0;
    return 0;
}
