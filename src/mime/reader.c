/* A pull reader over a part's output: the bytes mw_mime_part_write would
 * write, read a piece at a time (the shape of mw_smtp_read_fn).  A planning
 * pass runs the writer once, keeping the header blocks and delimiters (small)
 * and a mark for each built leaf body; the bodies are encoded only as they
 * are read, one input piece (64 KiB) at a time (build.c, mw_leaf_*), so a
 * file-backed attachment is never held whole. */
#include "mime/mime_int.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct seg {
    int leaf;        /* 1: a built leaf body, encoded on demand */
    mw_buf bytes;    /* leaf == 0: the bytes as written */
    mw_mime_part *p; /* leaf == 1 */
    int enc;
} seg;

struct mw_mime_reader {
    seg *segs;
    size_t nseg, cap;
    size_t cur, off; /* the segment being read, and where in its bytes */
    mw_leaf *leaf;   /* open for segs[cur] when it is a leaf */
    mw_buf out;      /* encoded bytes not yet handed out */
    size_t out_pos;
    mw_error err;
    int failed;
};

static seg *new_seg(mw_mime_reader *r)
{
    if (r->nseg == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        seg *n = realloc(r->segs, cap * sizeof *n);
        if (!n) return NULL;
        r->segs = n;
        r->cap = cap;
    }
    seg *s = &r->segs[r->nseg++];
    memset(s, 0, sizeof *s);
    return s;
}

int mwi_reader_plan_fn(const char *data, size_t len, void *ud)
{
    mw_mime_reader *r = ud;
    seg *s = r->nseg && !r->segs[r->nseg - 1].leaf ? &r->segs[r->nseg - 1] : new_seg(r);
    if (!s) return MW_ENOMEM;
    return mwi_buf_append(&s->bytes, data, len);
}

int mwi_reader_plan_leaf(void *ud, mw_mime_part *p, int enc, mw_error *err)
{
    mw_mime_reader *r = ud;
    seg *s = new_seg(r);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    s->leaf = 1;
    s->p = p;
    s->enc = enc;
    return 0;
}

static int capture(const char *data, size_t len, void *ud)
{
    return mwi_buf_append(&((mw_mime_reader *)ud)->out, data, len);
}

int mw_mime_reader_new(mw_mime_reader **out, mw_mime_part *part, mw_error *err)
{
    if (!out || !part) return mwi_err_set(err, MW_EINVAL, "mw_mime_reader_new: no part");
    *out = NULL;
    mw_mime_reader *r = calloc(1, sizeof *r);
    if (!r) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int rc = mwi_write_part(part, mwi_reader_plan_fn, r, err);
    if (rc) {
        if (rc == MW_ENOMEM || rc == MW_ETOOBIG) mwi_err_set(err, rc, "out of memory");
        mw_mime_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static long fail(mw_mime_reader *r, int rc)
{
    if (!r->err.code) mwi_err_set(&r->err, rc, "reading the message: error %d", rc);
    r->failed = r->err.code;
    return r->failed;
}

long mw_mime_reader_read(void *buf, size_t len, void *userdata)
{
    mw_mime_reader *r = userdata;
    if (!r || (!buf && len)) return MW_EINVAL;
    if (r->failed) return r->failed;
    char *o = buf;
    size_t n = 0;
    while (n < len) {
        if (r->out_pos < r->out.len) {
            size_t k = r->out.len - r->out_pos;
            k = k < len - n ? k : len - n;
            memcpy(o + n, r->out.data + r->out_pos, k);
            n += k;
            r->out_pos += k;
            if (r->out_pos == r->out.len) {
                mwi_buf_reset(&r->out);
                r->out_pos = 0;
            }
            continue;
        }
        if (r->cur == r->nseg) break;
        seg *s = &r->segs[r->cur];
        if (!s->leaf) {
            size_t k = s->bytes.len - r->off;
            k = k < len - n ? k : len - n;
            memcpy(o + n, s->bytes.data + r->off, k);
            n += k;
            r->off += k;
            if (r->off == s->bytes.len) {
                r->cur++;
                r->off = 0;
            }
            continue;
        }
        int rc = 0;
        if (!r->leaf) rc = mwi_leaf_open(&r->leaf, s->p, s->enc, capture, r, &r->err);
        if (!rc) rc = mwi_leaf_step(r->leaf, &r->err);
        if (rc == 1) {
            mwi_leaf_free(r->leaf);
            r->leaf = NULL;
            r->cur++;
        } else if (rc) {
            return fail(r, rc == MW_ETOOBIG ? MW_ENOMEM : rc);
        }
    }
    return (long)n;
}

const mw_error *mw_mime_reader_error(const mw_mime_reader *r)
{
    return &r->err;
}

void mw_mime_reader_free(mw_mime_reader *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nseg; i++)
        mwi_buf_free(&r->segs[i].bytes);
    free(r->segs);
    mwi_leaf_free(r->leaf);
    mwi_buf_free(&r->out);
    free(r);
}
