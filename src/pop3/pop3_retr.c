/* POP3 message retrieval: RETR/TOP streamed and dot-unstuffed, ranges with
 * a pipelining window (RFC 2449 §6.6), scsh retrieve-message/-headers. */
#include "pop3/pop3_int.h"

#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUF_MAX ((size_t)64 * 1024 * 1024)

uint64_t mwi_pop3_message_bound(uint64_t size, uint64_t cap)
{
    uint64_t slack = size > P3_SIZE_SLACK_MIN ? size : P3_SIZE_SLACK_MIN;
    uint64_t b = size > UINT64_MAX - slack ? UINT64_MAX : size + slack;
    return cap && cap < b ? cap : b;
}

void mwi_pop3_set_message_cap(mw_pop3 *p, uint64_t cap)
{
    if (p) p->max_message = cap;
}

uint64_t mwi_pop3_overflow_msg(const mw_pop3 *p)
{
    return p ? p->overflow_msg : 0;
}

int mwi_pop3_read_body(mw_pop3 *p, mw_pop3_sink_fn sink, void *ud, mw_pop3_retr_info *info,
                       const char *what, uint64_t announced, uint64_t bound)
{
    mw_pop3_body b;
    mwi_pop3_body_init(&b);
    /* The decoder leaves at most one byte unconsumed (a CR after a
     * line-start dot); then two bytes are needed for it to go on. */
    size_t carry = 0;
    int sink_rc = 0;
    for (;;) {
        char *data;
        size_t len;
        int rc = mwi_conn_peek_mut(p->conn, carry + 1, &data, &len, &p->err);
        if (rc) {
            info->octets = b.produced;
            info->complete = 0;
            char why[sizeof p->err.message];
            snprintf(why, sizeof why, "%s", p->err.message);
            mwi_err_set(&p->err, rc, "%s: %s after %llu octets; the message is incomplete", what,
                        why, (unsigned long long)b.produced);
            return mwi_pop3_fatal(p, rc);
        }
        /* Un-stuffed in place in the connection's buffer: the output never
         * passes the input, and what is decoded is consumed, so no byte is
         * copied before the sink sees it.  What follows the terminator is
         * the next reply: it is left unconsumed. */
        size_t used, out;
        int done = mwi_pop3_body_decode(&b, data, len, &used, &out);
        if (b.produced > bound) {
            /* A reply far longer than announced: stop reading it (what is
             * left of it may never end); the session cannot go on. */
            info->octets = b.produced - out;
            info->complete = 0;
            p->overflow_msg = info->msg;
            mw_error_clear(&p->err);
            mwi_err_set_command(&p->err, what, strlen(what));
            if (announced == UINT64_MAX || bound < mwi_pop3_message_bound(announced, 0))
                mwi_err_set(&p->err, MW_ETOOBIG,
                            "%s: the message runs past the %llu-octet size limit; stopped reading "
                            "it, the message is incomplete",
                            what, (unsigned long long)bound);
            else
                mwi_err_set(&p->err, MW_ETOOBIG,
                            "%s: the server sent over %llu octets for a message announced as %llu "
                            "octets (RFC 1939 §5); stopped reading it, the message is incomplete",
                            what, (unsigned long long)bound, (unsigned long long)announced);
            return mwi_pop3_fatal(p, MW_ETOOBIG);
        }
        if (out && !sink_rc) sink_rc = sink(data, out, ud);
        mwi_conn_consume(p->conn, used);
        if (done) break;
        carry = len - used;
    }
    info->octets = b.produced;
    info->complete = 1;
    if (info->size_known && info->declared != b.produced) {
        info->size_mismatch = 1;
        char note[128];
        int n = snprintf(note, sizeof note, "%s: the server announced %llu octets but sent %llu",
                         what, (unsigned long long)info->declared, (unsigned long long)b.produced);
        mwi_conn_trace(p->conn, MW_TRACE_INFO, note, (size_t)n);
    }
    if (sink_rc) {
        mw_error_clear(&p->err);
        /* The callback's value comes back unchanged (docs/CONVENTIONS.md). */
        return mwi_err_set(&p->err, sink_rc, "%s: the receiver of the message stopped it (%d)",
                           what, sink_rc);
    }
    return 0;
}

/* Reads the reply to one RETR/TOP already sent: status, then the body.
 * listed: the size the caller knows (LIST), UINT64_MAX when none.  A RETR
 * is bounded by the smallest size announced (listed, the LIST n of
 * -retr-mode list, the "+OK n octets" of the reply) plus the slack of
 * mwi_pop3_message_bound, and by the session's cap. */
static int read_message_reply(mw_pop3 *p, uint64_t msg, long top, mw_pop3_sink_fn sink, void *ud,
                              mw_pop3_retr_info *info, uint64_t listed)
{
    char what[48];
    snprintf(what, sizeof what, top < 0 ? "RETR %llu" : "TOP %llu", (unsigned long long)msg);
    mw_pop3_status st;
    int rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    char cmd[48];
    if (top < 0)
        snprintf(cmd, sizeof cmd, "RETR %llu", (unsigned long long)msg);
    else
        snprintf(cmd, sizeof cmd, "TOP %llu %ld", (unsigned long long)msg, top);
    mwi_err_set_command(&p->err, cmd, strlen(cmd));
    if (st.kind != MW_POP3_OK) return mwi_pop3_server_error(p, &st, MW_ESERVER, what);
    info->msg = msg;
    if (top < 0 && p->retr_mode == MW_POP3_RETR_RETR && !info->size_known) {
        uint64_t sz;
        if (mwi_pop3_parse_retr_size(st.text, st.text_len, &sz)) {
            info->declared = sz;
            info->size_known = 1;
        } else {
            /* Tcllib: no size in the RETR reply switches to LIST for good. */
            p->retr_mode = MW_POP3_RETR_LIST;
        }
    }
    uint64_t announced = UINT64_MAX, bound = UINT64_MAX;
    if (top >= 0 && listed != UINT64_MAX) {
        /* TOP brings a part of the message: its size bounds it too. */
        announced = listed;
        bound = mwi_pop3_message_bound(listed, 0);
    } else if (top < 0) {
        if (info->size_known) announced = info->declared;
        if (listed < announced) announced = listed;
        if (announced != UINT64_MAX)
            bound = mwi_pop3_message_bound(announced, p->max_message);
        else if (p->max_message)
            bound = p->max_message;
    }
    return mwi_pop3_read_body(p, sink, ud, info, what, announced, bound);
}

static int send_retr(mw_pop3 *p, uint64_t msg, long top, int flush)
{
    if (top < 0) return mwi_pop3_sendf(p, flush, "RETR %llu", (unsigned long long)msg);
    return mwi_pop3_sendf(p, flush, "TOP %llu %ld", (unsigned long long)msg, top);
}

/* LIST n for -retr-mode list; no usable size falls back to slow for good. */
static int size_by_list(mw_pop3 *p, uint64_t msg, mw_pop3_retr_info *info)
{
    uint64_t sz;
    int rc = mw_pop3_list_one(p, msg, &sz);
    if (rc == 0) {
        info->declared = sz;
        info->size_known = 1;
        return 0;
    }
    if (p->state == P3_BROKEN) return rc;
    if (rc == MW_ESERVER || rc == MW_EPROTO) p->retr_mode = MW_POP3_RETR_SLOW;
    return rc == MW_ESERVER ? 0 : rc;
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
    if (!rc && top < 0 && p->retr_mode == MW_POP3_RETR_LIST) rc = size_by_list(p, msg, info);
    if (rc) return rc;
    if (p->command_timeout_ms > 0)
        mwi_conn_set_deadline(p->conn, mw_now_ms() + p->command_timeout_ms);
    rc = send_retr(p, msg, top, 1);
    if (!rc) rc = read_message_reply(p, msg, top, sink, ud, info, UINT64_MAX);
    if (p->conn) mwi_conn_set_deadline(p->conn, MW_NO_DEADLINE);
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
    if (!p->have_count && (rc = mw_pop3_stat(p, NULL, NULL))) return rc;
    uint64_t a, b;
    if (!strcmp(start, "start")) {
        a = 1;
    } else if (!strcmp(start, "end")) {
        a = p->count;
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
        b = p->count;
    } else if (parse_index(end, &b)) {
        mw_error_clear(&p->err);
        return mwi_err_set(&p->err, MW_EINVAL, "bad end index '%s' (a number, end, last)", end);
    }
    if (b > p->count) b = p->count;
    *first = a;
    *last = b;
    mw_error_clear(&p->err);
    return 0;
}

typedef struct range_ctx {
    mw_pop3_msg_fn fn;
    void *ud;
    uint64_t msg;
} range_ctx;

static int range_sink(const char *data, size_t len, void *ud)
{
    range_ctx *r = ud;
    return r->fn(r->msg, data, len, NULL, r->ud);
}

static int check_range(mw_pop3 *p, uint64_t first, uint64_t last, const char *what)
{
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    if (rc) return rc;
    if (first == 0 || (p->have_count && last > p->count && first <= last)) {
        mw_error_clear(&p->err);
        return mwi_err_set(&p->err, MW_EINVAL, "%s: range %llu-%llu is outside 1-%llu", what,
                           (unsigned long long)first, (unsigned long long)last,
                           (unsigned long long)p->count);
    }
    return 0;
}

/* The messages of one pipelined run: first..first+n-1, or a list. */
typedef struct run {
    const mw_pop3_listing *list; /* RETR: numbers and sizes (for the byte window) */
    const uint64_t *nums;        /* DELE: numbers */
    uint64_t first;              /* neither: a range */
    uint64_t n;
} run;

static uint64_t run_msg(const run *r, uint64_t i)
{
    return r->list ? r->list[i].msg : r->nums ? r->nums[i] : r->first + i;
}

static uint64_t run_size(const run *r, uint64_t i)
{
    return r->list ? r->list[i].size : 0;
}

/* RETR/TOP over a run with a window of commands in flight (RFC 2449 §6.6),
 * refilled after every reply so the server always has the next requests
 * queued: at most max_cmds unanswered, and, when sizes are known, at most
 * max_bytes of announced size unanswered (always at least one).
 *
 * No deadlock.  RFC 2449 §6.6: "If either the client or server uses
 * blocking writes, it MUST not exceed the window size of the underlying
 * transport layer."  Our writes block (until a deadline), so we write only
 * after a whole reply was read, and what is unanswered is at most 1024
 * commands of at most 37 octets ("TOP <20 digits> <9 digits>" CRLF), under
 * 40 KB — within the 64 KB a TCP window holds without scaling.  The
 * replies the window asks for cost no memory here: they are read as they
 * come. */
static int retr_run(mw_pop3 *p, const run *r, long top_lines, uint64_t max_cmds, uint64_t max_bytes,
                    mw_pop3_msg_fn fn, void *userdata)
{
    /* -retr-mode list: one LIST for every size instead of one per message. */
    mw_pop3_listing *sizes = NULL;
    size_t nsizes = 0;
    int rc;
    if (top_lines < 0 && p->retr_mode == MW_POP3_RETR_LIST) {
        rc = mw_pop3_list(p, &sizes, &nsizes);
        if (rc && p->state == P3_BROKEN) return rc;
        if (rc) {
            p->retr_mode = MW_POP3_RETR_SLOW;
            sizes = NULL;
            nsizes = 0;
        }
    }
    uint64_t sent = 0, got = 0, stop_at = r->n, in_flight = 0;
    int first_err = 0;
    mw_error saved;
    memset(&saved, 0, sizeof saved);
    range_ctx rctx = {fn, userdata, 0};
    size_t si = 0;
    while (got < stop_at) {
        int queued = 0;
        while (sent < stop_at && sent - got < max_cmds &&
               (sent == got ||
                (in_flight <= max_bytes && run_size(r, sent) <= max_bytes - in_flight))) {
            if ((rc = send_retr(p, run_msg(r, sent), top_lines, 0))) goto out;
            in_flight += run_size(r, sent);
            sent++;
            queued = 1;
        }
        /* One write for whatever went into the queue; QUIT is never part
         * of it. */
        if (queued && (rc = mwi_conn_flush(p->conn, &p->err))) {
            rc = mwi_pop3_fatal(p, rc);
            goto out;
        }
        uint64_t msg = run_msg(r, got);
        mw_pop3_retr_info info;
        memset(&info, 0, sizeof info);
        info.msg = msg;
        while (si < nsizes && sizes[si].msg < msg)
            si++;
        if (si < nsizes && sizes[si].msg == msg) {
            info.declared = sizes[si].size;
            info.size_known = 1;
        }
        rctx.msg = msg;
        rc = read_message_reply(p, msg, top_lines, range_sink, &rctx, &info,
                                r->list ? run_size(r, got) : UINT64_MAX);
        if (p->state == P3_BROKEN) goto out;
        in_flight -= run_size(r, got);
        if (!rc && !first_err) rc = fn(msg, NULL, 0, &info, userdata);
        if (rc && !first_err) {
            /* Stop asking; read what is already in flight. */
            first_err = rc;
            saved = p->err;
            stop_at = sent;
        }
        got++;
    }
    rc = first_err;
    if (rc) p->err = saved;
out:
    free(sizes);
    return rc;
}

int mw_pop3_retr_range(mw_pop3 *p, uint64_t first, uint64_t last, long top_lines, mw_pop3_msg_fn fn,
                       void *userdata)
{
    if (!p || !fn) return MW_EINVAL;
    const char *what = top_lines < 0 ? "RETR" : "TOP";
    int rc = check_range(p, first, last, what);
    if (rc || first > last) return rc;
    run r = {NULL, NULL, first, last - first + 1};
    return retr_run(p, &r, top_lines, p->pipelining ? p->window : 1, UINT64_MAX, fn, userdata);
}

/* Message numbers of a list: each within the count, strictly ascending (the
 * replies are matched to them in order, and a number twice is a mistake). */
static int check_list(mw_pop3 *p, const run *r, const char *what)
{
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    for (uint64_t i = 0; !rc && i < r->n; i++) {
        rc = mwi_pop3_check_msg(p, run_msg(r, i));
        if (!rc && i && run_msg(r, i) <= run_msg(r, i - 1))
            rc =
                mwi_err_set(&p->err, MW_EINVAL, "%s: message numbers not in ascending order", what);
    }
    return rc;
}

int mw_pop3_retr_msgs(mw_pop3 *p, const mw_pop3_listing *msgs, size_t n, uint64_t window_bytes,
                      mw_pop3_msg_fn fn, void *userdata)
{
    if (!p || !fn || (n && !msgs)) return MW_EINVAL;
    run r = {msgs, NULL, 0, n};
    int rc = check_list(p, &r, "RETR");
    if (rc || n == 0) return rc;
    uint64_t bytes = window_bytes ? window_bytes : MW_POP3_WINDOW_BYTES;
    return retr_run(p, &r, -1, p->pipelining ? MW_POP3_WINDOW_MAX : 1, bytes, fn, userdata);
}

int mwi_pop3_top_msgs(mw_pop3 *p, const mw_pop3_listing *msgs, size_t n, long lines,
                      mw_pop3_msg_fn fn, void *userdata)
{
    if (!p || !fn || (n && !msgs) || lines < 0) return MW_EINVAL;
    run r = {msgs, NULL, 0, n};
    int rc = check_list(p, &r, "TOP");
    if (rc || n == 0) return rc;
    return retr_run(p, &r, lines, p->pipelining ? p->window : 1, UINT64_MAX, fn, userdata);
}

/* DELE over a run, pipelined as RETR is.  stop: no more DELE after the
 * first -ERR (what is in flight is still read and counted). */
static int dele_run(mw_pop3 *p, const run *r, int stop, size_t *deleted)
{
    uint64_t window = p->pipelining ? p->window : 1;
    uint64_t sent = 0, got = 0, stop_at = r->n;
    size_t ok = 0;
    int first_err = 0, rc = 0;
    mw_error saved;
    memset(&saved, 0, sizeof saved);
    while (got < stop_at) {
        int queued = 0;
        while (sent < stop_at && sent - got < window) {
            if ((rc = mwi_pop3_sendf(p, 0, "DELE %llu", (unsigned long long)run_msg(r, sent))))
                goto out;
            sent++;
            queued = 1;
        }
        if (queued && (rc = mwi_conn_flush(p->conn, &p->err))) {
            rc = mwi_pop3_fatal(p, rc);
            goto out;
        }
        mw_pop3_status st;
        if ((rc = mwi_pop3_read_status(p, &st))) goto out;
        if (st.kind == MW_POP3_OK) {
            ok++;
        } else if (!first_err) {
            char what[40];
            snprintf(what, sizeof what, "DELE %llu", (unsigned long long)run_msg(r, got));
            mwi_err_set_command(&p->err, what, strlen(what));
            first_err = mwi_pop3_server_error(p, &st, MW_ESERVER, what);
            saved = p->err;
            if (stop) stop_at = sent;
        }
        got++;
    }
    rc = first_err;
    if (first_err) p->err = saved;
out:
    if (deleted) *deleted = ok;
    return rc;
}

int mw_pop3_dele_range(mw_pop3 *p, uint64_t first, uint64_t last)
{
    if (!p) return MW_EINVAL;
    int rc = check_range(p, first, last, "DELE");
    if (rc || first > last) return rc;
    run r = {NULL, NULL, first, last - first + 1};
    return dele_run(p, &r, 1, NULL);
}

int mw_pop3_dele_msgs(mw_pop3 *p, const uint64_t *msgs, size_t n, size_t *deleted)
{
    if (deleted) *deleted = 0;
    if (!p || (n && !msgs)) return MW_EINVAL;
    run r = {NULL, msgs, 0, n};
    int rc = check_list(p, &r, "DELE");
    if (rc || n == 0) return rc;
    return dele_run(p, &r, 0, deleted);
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
