/* The callbacks stream kind: I/O done by the caller's functions
 * (mw_stream_ops).  A cancel token is checked before each callback, not
 * during one; the deadline is handed to the callback, which must keep it. */
#include "net/stream.h"
#include "util/err.h"

struct cb {
    mw_stream_ops ops;
    void *userdata;
};

static int cb_result(long n, size_t len, const char *what, mw_error *err)
{
    if (n < 0) {
        int code = (n >= MW_ERROR_LAST) ? (int)n : MW_EIO;
        return mwi_err_set(err, code, "stream callback failed %s: %s", what, mw_strerror(code));
    }
    if ((size_t)n > len)
        return mwi_err_set(err, MW_EINVAL, "stream callback returned %ld bytes for a %zu-byte %s",
                           n, len, what);
    return 0;
}

static int cb_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                   mw_error *err)
{
    struct cb *c = s->impl;
    long n = c->ops.read(buf, len, deadline, c->userdata);
    int rc = cb_result(n, len, "reading", err);
    if (rc) return rc;
    *got = (size_t)n;
    return 0;
}

static int cb_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                    mw_error *err)
{
    struct cb *c = s->impl;
    const char *p = buf;
    while (len > 0) {
        if (mw_cancel_requested(s->cancel))
            return mwi_err_set(err, MW_ECANCELED, "operation canceled");
        if (deadline != MW_NO_DEADLINE && mw_now_ms() >= deadline)
            return mwi_err_set(err, MW_ETIMEOUT, "timed out waiting to send");
        long n = c->ops.write(p, len, deadline, c->userdata);
        int rc = cb_result(n, len, "writing", err);
        if (rc) return rc;
        if (n == 0) return mwi_err_set(err, MW_ENET, "stream callback wrote nothing");
        p += n;
        len -= (size_t)n;
        *done += (size_t)n;
    }
    return 0;
}

/* The caller's I/O has no descriptor we know of. */
static int cb_pollfd(const mw_stream *s)
{
    (void)s;
    return -1;
}

static void cb_close(mw_stream *s)
{
    struct cb *c = s->impl;
    if (c->ops.close) c->ops.close(c->userdata);
}

static const mwi_stream_vt cb_vt = {"callbacks", cb_read, cb_write, cb_pollfd, cb_close};

int mw_stream_callbacks(mw_stream **out, const mw_stream_ops *ops, void *userdata, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (!ops || !ops->read || !ops->write)
        return mwi_err_set(err, MW_EINVAL, "stream callbacks need read and write");
    mw_stream *s = mwi_stream_new(&cb_vt, sizeof(struct cb));
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    struct cb *c = s->impl;
    c->ops = *ops;
    c->userdata = userdata;
    *out = s;
    return 0;
}
