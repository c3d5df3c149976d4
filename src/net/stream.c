/* The generic part of every stream: allocation, the options and session
 * limits (mw_net_opts version 3), and the public read/write/free, which
 * reach the stream's kind only through its vtable (net/stream.h). */
#include "net/stream.h"
#include "util/err.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the object ------------------------------------------------------------ */

/* The kind's state follows the stream in the same block, aligned for any
 * type. */
#define IMPL_OFFSET                                                                                \
    ((sizeof(mw_stream) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))

mw_stream *mwi_stream_new(const mwi_stream_vt *vt, size_t impl_size)
{
    mw_stream *s = calloc(1, IMPL_OFFSET + impl_size);
    if (!s) return NULL;
    s->vt = vt;
    s->impl = impl_size ? (char *)s + IMPL_OFFSET : NULL;
    s->pid = -1;
    s->op_deadline = MW_NO_DEADLINE;
    return s;
}

void mwi_ms_text(char *buf, size_t n, int ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%d s", ms / 1000);
    else
        snprintf(buf, n, "%d ms", ms);
}

int64_t mwi_deadline_min(int64_t deadline_ms, int io_timeout_ms)
{
    if (io_timeout_ms <= 0) return deadline_ms;
    int64_t io = mw_now_ms() + io_timeout_ms;
    return io < deadline_ms ? io : deadline_ms;
}

void mwi_stream_set_cancel(mw_stream *s, mw_cancel *cancel)
{
    for (; s; s = s->inner)
        s->cancel = cancel;
}

const char *mwi_stream_host(const mw_stream *s)
{
    for (; s; s = s->inner)
        if (s->host) return s->host;
    return NULL;
}

const char *mwi_stream_kind(const mw_stream *s)
{
    return s ? s->vt->name : NULL;
}

int mwi_stream_pollfd(const mw_stream *s)
{
    return s ? s->vt->pollfd(s) : -1;
}

/* ---- options ----------------------------------------------------------------- */

int mw_net_opts_copy(mw_net_opts *dst, const mw_net_opts *src)
{
    mw_net_opts d = MW_NET_OPTS_INIT;
    *dst = d;
    if (!src) return 0;
    if (src->version == 1 || src->version == 2) {
        /* Version 1 ends before proxy, version 2 before max_time_ms: copy
         * only what the caller's struct has; the rest keeps its default. */
        memcpy(dst, src,
               src->version == 1 ? offsetof(mw_net_opts, proxy)
                                 : offsetof(mw_net_opts, max_time_ms));
        dst->version = MW_NET_OPTS_VERSION;
        return 0;
    }
    if (src->version != MW_NET_OPTS_VERSION) return MW_EINVAL;
    *dst = *src;
    return 0;
}

int mwi_net_opts_load(mw_net_opts *o, const mw_net_opts *opts, mw_error *err)
{
    if (mw_net_opts_copy(o, opts) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", opts->version);
    /* The limits of version 3 must make sense: a negative time is a mistake. */
    if (o->max_time_ms < 0)
        return mwi_err_set(err, MW_EINVAL, "invalid max_time_ms %d (0 = none)", o->max_time_ms);
    if (o->speed_limit && o->speed_time_ms <= 0)
        return mwi_err_set(err, MW_EINVAL, "speed_limit %u needs a speed_time_ms above 0",
                           o->speed_limit);
    return 0;
}

void mwi_stream_apply_opts(mw_stream *s, const mw_net_opts *o, int64_t start)
{
    s->io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 0;
    s->cancel = o->cancel;
    s->max_time_ms = o->max_time_ms > 0 ? o->max_time_ms : 0;
    s->op_deadline = s->max_time_ms ? start + s->max_time_ms : MW_NO_DEADLINE;
    s->speed_limit = o->speed_limit;
    s->speed_time_ms = o->speed_time_ms;
    mwi_rate_init(&s->rate, o->speed_limit, o->speed_time_ms);
}

/* ---- session limits (mw_net_opts version 3) ----------------------------------- */

enum { LIM_NONE, LIM_OP, LIM_RATE };

static int has_limits(const mw_stream *s)
{
    return s->op_deadline != MW_NO_DEADLINE || mwi_rate_on(&s->rate);
}

/* The earliest of deadline, the session's max-time deadline and the end of
 * the rate window (counted from now); *which says if it is one of the last
 * two. */
static int64_t limit_deadline(const mw_stream *s, int64_t deadline, int64_t now, int *which)
{
    *which = LIM_NONE;
    if (s->op_deadline <= deadline) {
        deadline = s->op_deadline;
        *which = LIM_OP;
    }
    if (mwi_rate_on(&s->rate)) {
        int64_t end = now + mwi_rate_budget(&s->rate);
        if (end < deadline) {
            deadline = end;
            *which = LIM_RATE;
        }
    }
    return deadline;
}

static int max_time_exceeded(mw_stream *s, const char *what, mw_error *err)
{
    char t[32];
    mwi_ms_text(t, sizeof t, s->max_time_ms);
    s->limit_hit = 1;
    return mwi_err_set(err, MW_ETIMEOUT, "session exceeded its max-time of %s while %s", t, what);
}

static int too_slow(mw_stream *s, const char *what, mw_error *err)
{
    char t[32];
    mwi_ms_text(t, sizeof t, s->speed_time_ms);
    s->limit_hit = 1;
    return mwi_err_set(
        err, MW_ETIMEOUT, "transfer slower than %u byte%s/s over %s (%llu byte%s moved) while %s",
        s->speed_limit, s->speed_limit == 1 ? "" : "s", t, (unsigned long long)s->rate.failed_bytes,
        s->rate.failed_bytes == 1 ? "" : "s", what);
}

int mwi_stream_limit_hit(const mw_stream *s)
{
    for (; s; s = s->inner)
        if (s->limit_hit) return 1;
    return 0;
}

/* ---- the public calls ------------------------------------------------------------ */

int mw_stream_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline_ms,
                   mw_error *err)
{
    if (!got) return mwi_err_set(err, MW_EINVAL, "no output length pointer");
    *got = 0;
    if (!s || (!buf && len)) return mwi_err_set(err, MW_EINVAL, "invalid stream read arguments");
    if (len == 0) return 0;
    if (mw_cancel_requested(s->cancel)) return mwi_err_set(err, MW_ECANCELED, "operation canceled");
    int64_t deadline = mwi_deadline_min(deadline_ms, s->io_timeout_ms);
    s->limit_hit = 0;
    if (!has_limits(s)) return s->vt->read(s, buf, len, got, deadline, err);
    for (;;) {
        int which;
        int64_t t0 = mw_now_ms();
        int64_t dl = limit_deadline(s, deadline, t0, &which);
        if (which == LIM_OP && t0 >= dl) return max_time_exceeded(s, "waiting for data", err);
        int rc = s->vt->read(s, buf, len, got, dl, err);
        if (mwi_rate_account(&s->rate, mw_now_ms() - t0, *got) != 0) {
            *got = 0;
            return too_slow(s, "waiting for data", err);
        }
        if (rc == MW_ETIMEOUT && which == LIM_RATE) continue; /* window not over yet */
        if (rc == MW_ETIMEOUT && which == LIM_OP)
            return max_time_exceeded(s, "waiting for data", err);
        return rc;
    }
}

int mw_stream_write(mw_stream *s, const void *buf, size_t len, int64_t deadline_ms, mw_error *err)
{
    if (!s || (!buf && len)) return mwi_err_set(err, MW_EINVAL, "invalid stream write arguments");
    if (len == 0) return 0;
    if (mw_cancel_requested(s->cancel)) return mwi_err_set(err, MW_ECANCELED, "operation canceled");
    int64_t deadline = mwi_deadline_min(deadline_ms, s->io_timeout_ms);
    s->limit_hit = 0;
    size_t done = 0;
    if (!has_limits(s)) return s->vt->write(s, buf, len, &done, deadline, err);
    const char *p = buf;
    for (;;) {
        int which;
        int64_t t0 = mw_now_ms();
        int64_t dl = limit_deadline(s, deadline, t0, &which);
        if (which == LIM_OP && t0 >= dl) return max_time_exceeded(s, "sending", err);
        done = 0;
        int rc = s->vt->write(s, p, len, &done, dl, err);
        if (mwi_rate_account(&s->rate, mw_now_ms() - t0, done) != 0)
            return too_slow(s, "sending", err);
        p += done;
        len -= done;
        if (rc == MW_ETIMEOUT && which == LIM_RATE && len > 0) continue;
        if (rc == MW_ETIMEOUT && which == LIM_OP) return max_time_exceeded(s, "sending", err);
        return rc;
    }
}

void mw_stream_free(mw_stream *s)
{
    if (!s) return;
    s->vt->close(s);
    free(s->host);
    free(s);
}
