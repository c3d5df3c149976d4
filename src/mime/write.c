/* Writing a tree: parsed parts as the bytes they were read from (with any
 * header changes), built parts encoded (see build.c). */
#include "mime/mime_int.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int put(mw_mime_write_fn fn, void *ud, const mw_buf *b)
{
    return b->len ? fn(b->data, b->len, ud) : 0;
}

int mwi_write_part(mw_mime_part *p, mw_mime_write_fn fn, void *ud, mw_error *err)
{
    int rc;
    if (p->src == MW_SRC_NONE && p->kind != MW_K_MULTI && p->kind != MW_K_MESSAGE)
        return mwi_err_set(err, MW_ESTATE,
                           "part %s: its body was not kept (parse with keep_bodies)", p->path);
    if (p->src != MW_SRC_RAW) return mwi_write_built_body(p, fn, ud, err);
    if ((rc = mw_mime_headers_write(p->hdr, fn, ud))) return rc;
    switch (p->kind) {
    case MW_K_MULTI:
        if ((rc = put(fn, ud, &p->body))) return rc;
        for (mw_mime_part *c = p->first; c; c = c->next) {
            if ((rc = put(fn, ud, &c->delim))) return rc;
            if ((rc = mwi_write_part(c, fn, ud, err))) return rc;
        }
        if ((rc = put(fn, ud, &p->close))) return rc;
        return put(fn, ud, &p->epilogue);
    case MW_K_MESSAGE:
        return p->first ? mwi_write_part(p->first, fn, ud, err) : 0;
    default:
        return put(fn, ud, &p->body);
    }
}

/* Errors from the caller's callback are returned as they are; the detail
 * says so. */
int mw_mime_part_write(mw_mime_part *p, mw_mime_write_fn fn, void *ud, mw_error *err)
{
    int rc = mwi_write_part(p, fn, ud, err);
    if (rc && err && err->code != rc) mwi_err_set(err, rc, "the output callback returned %d", rc);
    return rc;
}

struct fdw {
    int fd;
    mw_error *err;
};

static int fd_write(const char *d, size_t n, void *ud)
{
    struct fdw *w = ud;
    while (n) {
        ssize_t r = write(w->fd, d, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return mwi_err_set(w->err, MW_EIO, "write: %s", MW_ERRNO_TEXT(errno));
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

int mw_mime_part_write_fd(mw_mime_part *p, int fd, mw_error *err)
{
    struct fdw w = {fd, err};
    return mwi_write_part(p, fd_write, &w, err);
}

static int buf_write(const char *d, size_t n, void *ud)
{
    return mwi_buf_append(ud, d, n);
}

int mw_mime_part_to_buffer(mw_mime_part *p, char **out, size_t *len, mw_error *err)
{
    mw_buf b = MW_BUF_INIT(0);
    *out = NULL;
    int rc = mwi_write_part(p, buf_write, &b, err);
    if (!rc && !b.data) rc = mwi_buf_reserve(&b, 1);
    if (rc) {
        mwi_buf_free(&b);
        if (rc == MW_ENOMEM) mwi_err_set(err, rc, "out of memory");
        return rc;
    }
    *out = mwi_buf_take(&b, len);
    return 0;
}
