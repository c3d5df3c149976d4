/* POP3 message retrieval: RETR/TOP streamed and dot-unstuffed, ranges with
 * a pipelining window (RFC 2449 §6.6), scsh retrieve-message/-headers.
 * The commands, their windows, the bounds on each reply and the
 * dot-unstuffing are the machine's (src/loop/pop3_cmds.c); here the
 * pieces go to the caller's sink or callback. */
#include "pop3/pop3_int.h"

#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUF_MAX ((size_t)64 * 1024 * 1024)

/* The pieces of RETR/TOP replies on their way to the caller: one
 * message's sink (mw_pop3_retr), or a run's callback (ranges). */
typedef struct msgs_ctx {
    mw_pop3 *p;
    mw_pop3_sink_fn sink;
    void *sink_ud;
    mw_pop3_msg_fn fn;
    void *fn_ud;
    mw_pop3_retr_info *info; /* the message being read */
    int top;
    int sink_rc;   /* this message's receiver said stop: no more of it */
    int first_err; /* a run stops at its first failure (what is in flight is read) */
    mw_error saved;
} msgs_ctx;

static void stopped(msgs_ctx *m, int rc)
{
    if (m->first_err) return;
    m->first_err = rc;
    mw_error_clear(&m->saved);
    char what[48];
    snprintf(what, sizeof what, "%s %llu", m->top ? "TOP" : "RETR",
             (unsigned long long)m->info->msg);
    /* The callback's value comes back unchanged (docs/CONVENTIONS.md). */
    mwi_err_set(&m->saved, rc, "%s: the receiver of the message stopped it (%d)", what, rc);
}

static int on_piece(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    msgs_ctx *m = ud;
    mw_pop3_retr_info *info = m->info;
    if (fail) {
        if (!m->first_err) {
            m->first_err = fail->code;
            m->saved = *fail;
        }
        return 0;
    }
    if (r->kind == MW_LOOP_POP3_STATUS) {
        memset(info, 0, sizeof *info);
        info->msg = r->msg;
        m->sink_rc = 0;
    } else if (r->kind == MW_LOOP_POP3_DATA) {
        info->octets += r->len;
        if (m->sink_rc) return 0;
        m->sink_rc = m->sink ? m->sink(r->data, r->len, m->sink_ud)
                             : m->fn(r->msg, r->data, r->len, NULL, m->fn_ud);
        if (m->sink_rc) stopped(m, m->sink_rc);
        return m->sink_rc;
    } else if (r->kind == MW_LOOP_POP3_END && r->msg) {
        info->octets = r->value;
        info->complete = 1;
        info->size_known = !m->top && r->lines != UINT64_MAX;
        info->declared = info->size_known ? r->lines : 0;
        info->size_mismatch = info->size_known && r->lines != r->value;
        if (m->fn && !m->sink_rc && !m->first_err) {
            int rc = m->fn(r->msg, NULL, 0, info, m->fn_ud);
            if (rc) stopped(m, rc);
            return rc;
        }
    }
    return 0;
}

/* A run's end: its first failure, or the session's. */
static int msgs_result(msgs_ctx *m, int rc)
{
    if (rc && !mwi_p3h_alive(m->p->h)) return rc; /* p->err is the machine's */
    if (m->first_err) {
        m->p->err = m->saved;
        return m->first_err;
    }
    return rc;
}

static int retr_common(mw_pop3 *p, uint64_t msg, long top, mw_pop3_sink_fn sink, void *ud,
                       mw_pop3_retr_info *info)
{
    mw_pop3_retr_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->msg = msg;
    if (!p || !sink) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, top < 0 ? "RETR" : "TOP");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    if (rc) return rc;
    msgs_ctx m;
    memset(&m, 0, sizeof m);
    m.p = p;
    m.sink = sink;
    m.sink_ud = ud;
    m.info = info;
    m.top = top >= 0;
    mw_loop_pop3_cmd c = {top < 0 ? MW_LOOP_POP3_RETR : MW_LOOP_POP3_TOP, msg,
                          top < 0 ? 0 : (uint64_t)top, 0};
    rc = mwi_pop3_run(p, &c, 1, NULL, on_piece, &m);
    info->msg = msg;
    if (!rc && m.sink_rc) {
        p->err = m.saved;
        rc = m.sink_rc;
    }
    return rc;
}

int mw_pop3_retr(mw_pop3 *p, uint64_t msg, mw_pop3_sink_fn sink, void *userdata,
                 mw_pop3_retr_info *info)
{
    return retr_common(p, msg, -1, sink, userdata, info);
}

int mw_pop3_top(mw_pop3 *p, uint64_t msg, uint64_t lines, mw_pop3_sink_fn sink, void *userdata)
{
    if (lines > 999999999)
        return p ? mwi_err_set(&p->err, MW_EINVAL, "TOP line count too large") : MW_EINVAL;
    return retr_common(p, msg, (long)lines, sink, userdata, NULL);
}

static int buf_sink(const char *data, size_t len, void *ud)
{
    return mwi_buf_append(ud, data, len);
}

int mw_pop3_retr_buf(mw_pop3 *p, uint64_t msg, char **data, size_t *len, size_t max,
                     mw_pop3_retr_info *info)
{
    if (!data || !len) return MW_EINVAL;
    *data = NULL;
    *len = 0;
    mw_buf b = MW_BUF_INIT(max ? max : DEFAULT_BUF_MAX);
    int rc = retr_common(p, msg, -1, buf_sink, &b, info);
    if (rc == MW_ETOOBIG && p->state != P3_BROKEN)
        mwi_err_set(&p->err, rc, "RETR %llu: message over the %zu-byte limit",
                    (unsigned long long)msg, b.max);
    if (rc) {
        mwi_buf_free(&b);
        return rc;
    }
    if (!b.data) {
        *data = calloc(1, 1);
        if (!*data) return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
        return 0;
    }
    *data = mwi_buf_take(&b, len);
    return 0;
}

/* ---- Ranges ----------------------------------------------------------------- */

static int parse_index(const char *s, uint64_t *v)
{
    if (!s || !*s) return -1;
    uint64_t x = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9' || c - s >= 18) return -1;
        x = x * 10 + (uint64_t)(*c - '0');
    }
    *v = x;
    return 0;
}

int mw_pop3_range(mw_pop3 *p, const char *start, const char *end, uint64_t *first, uint64_t *last)
{
    if (!p || !start || !first || !last) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "range");
    if (rc) return rc;
    uint64_t count;
    if (!mwi_pop3_have_count(p, &count) && (rc = mw_pop3_stat(p, &count, NULL))) return rc;
    uint64_t a, b;
    if (!strcmp(start, "start")) {
        a = 1;
    } else if (!strcmp(start, "end")) {
        a = count;
    } else if (!strcmp(start, "next")) {
        uint64_t l = 0;
        rc = mw_pop3_last(p, &l);
        if (rc && p->state == P3_BROKEN) return rc;
        /* Tcllib: a failed LAST counts as 0. */
        a = rc ? 1 : l + 1;
    } else if (parse_index(start, &a)) {
        mw_error_clear(&p->err);
        return mwi_err_set(&p->err, MW_EINVAL, "bad start index '%s' (a number, start, next, end)",
                           start);
    }
    if (a == 0) a = 1;
    if (!end) {
        b = a;
    } else if (!strcmp(end, "end") || !strcmp(end, "last")) {
        b = count;
    } else if (parse_index(end, &b)) {
        mw_error_clear(&p->err);
        return mwi_err_set(&p->err, MW_EINVAL, "bad end index '%s' (a number, end, last)", end);
    }
    if (b > count) b = count;
    *first = a;
    *last = b;
    mw_error_clear(&p->err);
    return 0;
}

static int check_range(mw_pop3 *p, uint64_t first, uint64_t last, const char *what)
{
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    if (rc) return rc;
    uint64_t count;
    int have = mwi_pop3_have_count(p, &count);
    if (first == 0 || (have && last > count && first <= last)) {
        mw_error_clear(&p->err);
        return mwi_err_set(&p->err, MW_EINVAL, "%s: range %llu-%llu is outside 1-%llu", what,
                           (unsigned long long)first, (unsigned long long)last,
                           (unsigned long long)count);
    }
    return 0;
}

/* Message numbers of a list: each within the count, strictly ascending (the
 * replies are matched to them in order, and a number twice is a mistake). */
static int check_list(mw_pop3 *p, const mw_pop3_listing *l, const uint64_t *nums, size_t n,
                      const char *what)
{
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    for (size_t i = 0; !rc && i < n; i++) {
        uint64_t m = l ? l[i].msg : nums[i], prev = !i ? 0 : l ? l[i - 1].msg : nums[i - 1];
        rc = mwi_pop3_check_msg(p, m);
        if (!rc && i && m <= prev)
            rc =
                mwi_err_set(&p->err, MW_EINVAL, "%s: message numbers not in ascending order", what);
    }
    return rc;
}

/* RETR/TOP over a run with a window of commands in flight (RFC 2449 §6.6),
 * refilled after every reply so the server always has the next requests
 * queued; stops at the first failure after reading what is in flight.
 * The machine writes only what the window holds, so a server that
 * answers before reading more never deadlocks with us (RFC 2449 §6.6). */
static int retr_run(mw_pop3 *p, const mw_loop_pop3_cmd *c, const mwi_p3h_opts *ro,
                    mw_pop3_msg_fn fn, void *userdata)
{
    mw_pop3_retr_info info;
    memset(&info, 0, sizeof info);
    msgs_ctx m;
    memset(&m, 0, sizeof m);
    m.p = p;
    m.fn = fn;
    m.fn_ud = userdata;
    m.info = &info;
    m.top = c->op == MW_LOOP_POP3_TOP;
    int rc = mwi_pop3_run(p, c, 1, ro, on_piece, &m);
    return msgs_result(&m, rc);
}

int mw_pop3_retr_range(mw_pop3 *p, uint64_t first, uint64_t last, long top_lines, mw_pop3_msg_fn fn,
                       void *userdata)
{
    if (!p || !fn) return MW_EINVAL;
    const char *what = top_lines < 0 ? "RETR" : "TOP";
    int rc = check_range(p, first, last, what);
    if (rc || first > last) return rc;
    mw_loop_pop3_cmd c = {top_lines < 0 ? MW_LOOP_POP3_RETR : MW_LOOP_POP3_TOP, first,
                          top_lines < 0 ? 0 : (uint64_t)top_lines, last};
    return retr_run(p, &c, NULL, fn, userdata);
}

int mw_pop3_retr_msgs(mw_pop3 *p, const mw_pop3_listing *msgs, size_t n, uint64_t window_bytes,
                      mw_pop3_msg_fn fn, void *userdata)
{
    if (!p || !fn || (n && !msgs)) return MW_EINVAL;
    int rc = check_list(p, msgs, NULL, n, "RETR");
    if (rc || n == 0) return rc;
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_RETR, 1, 0, 1};
    mwi_p3h_opts ro = {msgs,
                       n,
                       0,
                       p->pipelining ? MW_POP3_WINDOW_MAX : 1,
                       window_bytes ? window_bytes : MW_POP3_WINDOW_BYTES,
                       0};
    return retr_run(p, &c, &ro, fn, userdata);
}

/* DELE over a run, pipelined as RETR is; every +OK counted. */
static int on_dele(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    size_t *ok = ud;
    if (!fail && r->kind == MW_LOOP_POP3_END && r->msg) (*ok)++;
    return 0;
}

int mw_pop3_dele_range(mw_pop3 *p, uint64_t first, uint64_t last)
{
    if (!p) return MW_EINVAL;
    int rc = check_range(p, first, last, "DELE");
    if (rc || first > last) return rc;
    /* No DELE after the first -ERR (what is in flight is still read). */
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_DELE, first, 0, last};
    size_t ok = 0;
    return mwi_pop3_run(p, &c, 1, NULL, on_dele, &ok);
}

int mw_pop3_dele_msgs(mw_pop3 *p, const uint64_t *msgs, size_t n, size_t *deleted)
{
    if (deleted) *deleted = 0;
    if (!p || (n && !msgs)) return MW_EINVAL;
    int rc = check_list(p, NULL, msgs, n, "DELE");
    if (rc || n == 0) return rc;
    mw_pop3_listing *l = calloc(n, sizeof *l);
    if (!l) return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        l[i].msg = msgs[i];
    /* On after an -ERR: one message refused does not keep the others. */
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_DELE, 1, 0, 1};
    mwi_p3h_opts ro = {l, n, 1, 0, 0, 0};
    size_t ok = 0;
    rc = mwi_pop3_run(p, &c, 1, &ro, on_dele, &ok);
    free(l);
    if (deleted) *deleted = ok;
    return rc;
}

/* ---- scsh retrieve-message / retrieve-headers --------------------------------- */

static int headers_from(mw_pop3 *p, const char *data, size_t len, mw_mime_headers **headers,
                        size_t *consumed)
{
    mw_error e;
    mw_error_clear(&e);
    int rc = mw_mime_headers_parse(headers, data, len, consumed, NULL, &e);
    if (rc) {
        p->err = e;
        if (!p->err.message[0])
            mwi_err_set(&p->err, rc, "cannot parse the message's header: %s", mw_strerror(rc));
    }
    return rc;
}

int mw_pop3_retrieve_headers(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers)
{
    if (!headers) return MW_EINVAL;
    *headers = NULL;
    mw_buf b = MW_BUF_INIT(DEFAULT_BUF_MAX);
    int rc = retr_common(p, msg, 0, buf_sink, &b, NULL);
    if (!rc) rc = headers_from(p, b.data ? b.data : "", b.len, headers, NULL);
    mwi_buf_free(&b);
    return rc;
}

/* One block: the pointer array, then the text with each line end made a
 * NUL (a CRLF leaves its CR behind the NUL, unused). */
static char **split_lines(const char *d, size_t n, size_t *count)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += d[i] == '\n';
    if (n && d[n - 1] != '\n') k++; /* a last line without its end */
    if (k > (SIZE_MAX - n - 1) / sizeof(char *) - 1) return NULL;
    char **v = malloc((k + 1) * sizeof *v + n + 1);
    if (!v) return NULL;
    char *t = (char *)(v + k + 1);
    memcpy(t, d, n);
    t[n] = '\0';
    size_t li = 0;
    for (size_t i = 0, start = 0; i <= n && li < k; i++) {
        if (i < n && t[i] != '\n') continue;
        size_t end = i;
        if (end > start && t[end - 1] == '\r') end--;
        t[end] = '\0';
        v[li++] = t + start;
        start = i + 1;
    }
    v[k] = NULL;
    *count = k;
    return v;
}

int mw_pop3_retrieve_message_lines(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers,
                                   char ***lines, size_t *nlines, size_t max)
{
    if (!lines || !nlines) return MW_EINVAL;
    *lines = NULL;
    *nlines = 0;
    char *body;
    size_t len;
    int rc = mw_pop3_retrieve_message(p, msg, headers, &body, &len, max);
    if (rc) return rc;
    *lines = split_lines(body, len, nlines);
    free(body);
    if (!*lines) {
        mw_mime_headers_free(*headers);
        *headers = NULL;
        return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    }
    return 0;
}

int mw_pop3_retrieve_message(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers, char **body,
                             size_t *body_len, size_t max)
{
    if (!headers || !body || !body_len) return MW_EINVAL;
    *headers = NULL;
    *body = NULL;
    *body_len = 0;
    char *data;
    size_t len, used = 0;
    int rc = mw_pop3_retr_buf(p, msg, &data, &len, max, NULL);
    if (rc) return rc;
    rc = headers_from(p, data, len, headers, &used);
    if (!rc) {
        *body_len = len - used;
        *body = malloc(*body_len + 1);
        if (!*body) {
            mw_mime_headers_free(*headers);
            *headers = NULL;
            rc = mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
        } else {
            memcpy(*body, data + used, *body_len);
            (*body)[*body_len] = '\0';
        }
    }
    free(data);
    return rc;
}
