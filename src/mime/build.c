/* The builder: parts from bytes, files or sub-parts (Tcllib's
 * mime::initialize -canonical / setheader / buildmessage, in C). */
#include "mime/codec.h"
#include "mime/mime_int.h"
#include "util/err.h"
#include "util/random.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_CHUNK (64 * 1024)

/* Sets a Content-* field: only the builder itself may. */
static int set_internal(mw_mime_part *p, const char *name, const char *value, mw_error *err)
{
    int rc = mw_mime_headers_set(p->hdr, name, value);
    if (rc) return mwi_err_set(err, rc, "%s", mw_mime_headers_error(p->hdr)->message);
    mwi_part_derive(p);
    if (!p->type) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    return 0;
}

/* RFC 2045 §5.1: a value that is not a token is quoted; RFC 2231 §4: a
 * value with non-ASCII bytes (or too long for one line) is %-encoded in
 * UTF-8, in continuations of at most 60 characters. */
static int render_param(mw_buf *b, const char *name, const char *value)
{
    size_t vl = strlen(value);
    int ascii = 1, token = vl > 0;
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c >= 0x80 || c < 32 || c == 127) ascii = 0;
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?=", c)) token = 0;
    }
    int rc;
    if (ascii && vl <= 60) {
        if (token) return mwi_buf_printf(b, "; %s=%s", name, value);
        rc = mwi_buf_printf(b, "; %s=\"", name);
        for (size_t i = 0; i < vl && !rc; i++) {
            if (value[i] == '"' || value[i] == '\\') rc = mwi_buf_append_char(b, '\\');
            if (!rc) rc = mwi_buf_append_char(b, value[i]);
        }
        return rc ? rc : mwi_buf_append_char(b, '"');
    }
    mw_buf enc = MW_BUF_INIT(0);
    rc = mwi_buf_append_str(&enc, "utf-8''");
    for (size_t i = 0; i < vl && !rc; i++) {
        unsigned char c = (unsigned char)value[i];
        /* RFC 2231 §7 attribute-char */
        if (c > 32 && c < 127 && !strchr("*'%()<>@,;:\\\"/[]?=", c))
            rc = mwi_buf_append_char(&enc, (char)c);
        else
            rc = mwi_buf_printf(&enc, "%%%02X", c);
    }
    if (!rc && enc.len <= 60) {
        rc = mwi_buf_printf(b, "; %s*=%s", name, enc.data);
    } else {
        size_t off = 0;
        for (int sec = 0; off < enc.len && !rc; sec++) {
            size_t take = enc.len - off > 60 ? 60 : enc.len - off;
            /* never split a %XX escape */
            if (off + take < enc.len) {
                if (enc.data[off + take - 1] == '%')
                    take -= 1;
                else if (take > 1 && enc.data[off + take - 2] == '%')
                    take -= 2;
            }
            rc = mwi_buf_printf(b, "; %s*%d*=%.*s", name, sec, (int)take, enc.data + off);
            off += take;
        }
    }
    mwi_buf_free(&enc);
    return rc;
}

/* Rewrites the Content-Type field from a type and the params of ct, with
 * one parameter replaced (value NULL: removed). */
static int rebuild_ctype(mw_mime_part *p, const char *field, const char *type,
                         const mw_mime_ctype *ct, const char *pname, const char *pvalue,
                         mw_error *err)
{
    mw_buf b = MW_BUF_INIT(64 * 1024);
    int rc = mwi_buf_append_str(&b, type);
    int done = 0;
    for (size_t i = 0; ct && i < mw_mime_ctype_param_count(ct) && !rc; i++) {
        mw_mime_param pr;
        mw_mime_ctype_param_at(ct, i, &pr);
        if (pname && !strcmp(pr.name, pname)) {
            if (pvalue && !done) rc = render_param(&b, pname, pvalue);
            done = 1;
            continue;
        }
        rc = render_param(&b, pr.name, pr.value);
    }
    if (!rc && pname && pvalue && !done) rc = render_param(&b, pname, pvalue);
    if (rc) {
        mwi_buf_free(&b);
        return mwi_err_set(err, rc, rc == MW_ETOOBIG ? "parameters too long" : "out of memory");
    }
    rc = set_internal(p, field, b.data, err);
    mwi_buf_free(&b);
    return rc;
}

static int valid_type(const char *t)
{
    const char *slash = strchr(t, '/');
    if (!slash || slash == t || !slash[1]) return 0;
    for (const char *c = t; *c; c++)
        if ((unsigned char)*c <= 32 || (unsigned char)*c >= 127 || strchr("()<>@,;:\\\"[]?=", *c))
            return 0;
    return strchr(slash + 1, '/') == NULL;
}

int mw_mime_part_new(mw_mime_part **out, const char *type, mw_error *err)
{
    *out = NULL;
    if (!type || !valid_type(type))
        return mwi_err_set(err, MW_EINVAL, "invalid content type \"%.64s\" (want type/subtype)",
                           type ? type : "");
    mw_mime_part *p = mwi_part_new(NULL, NULL);
    if (!p) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    p->src = MW_SRC_BYTES;
    int rc = rebuild_ctype(p, "Content-Type", type, NULL, NULL, NULL, err);
    if (rc) {
        mw_mime_part_free(p);
        return rc;
    }
    if (!strncmp(p->type, "multipart/", 10))
        p->kind = MW_K_MULTI;
    else if (!strcmp(p->type, "message/rfc822") || !strcmp(p->type, "message/global"))
        p->kind = MW_K_MESSAGE;
    *out = p;
    return 0;
}

static int check_built(mw_mime_part *p, mw_error *err)
{
    if (p->src == MW_SRC_RAW || p->src == MW_SRC_NONE)
        return mwi_err_set(err, MW_ESTATE, "part %s was parsed, not built: its body is fixed",
                           p->path);
    return 0;
}

int mw_mime_part_set_param(mw_mime_part *p, const char *name, const char *value, mw_error *err)
{
    if (!name || !*name || strpbrk(name, " \t\r\n;=\"*'%()<>@,:\\/[]?"))
        return mwi_err_set(err, MW_EINVAL, "invalid parameter name");
    if (value && strpbrk(value, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "CR or LF in parameter %.32s (header injection)", name);
    char lname[64];
    size_t nl = strlen(name);
    if (nl >= sizeof lname) return mwi_err_set(err, MW_EINVAL, "parameter name too long");
    for (size_t i = 0; i <= nl; i++)
        lname[i] = (char)mw_lower((unsigned char)name[i]);
    if (!strcmp(lname, "boundary"))
        return mwi_err_set(err, MW_EINVAL, "the boundary is chosen by the builder");
    char *type = strdup(mw_mime_part_type(p));
    if (!type) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    mw_mime_ctype *old = p->ct;
    p->ct = NULL; /* rebuild_ctype re-derives; keep the old list alive till then */
    int rc = rebuild_ctype(p, "Content-Type", type, old, lname, value, err);
    if (rc)
        p->ct = old;
    else
        mw_mime_ctype_free(old);
    free(type);
    return rc;
}

int mw_mime_part_set_disposition(mw_mime_part *p, const char *disp, const char *filename,
                                 mw_error *err)
{
    if (!disp || !*disp || strpbrk(disp, " \t\r\n;=\"/"))
        return mwi_err_set(err, MW_EINVAL, "invalid disposition type");
    if (filename && strpbrk(filename, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "CR or LF in file name (header injection)");
    return rebuild_ctype(p, "Content-Disposition", disp, NULL, filename ? "filename" : NULL,
                         filename, err);
}

int mw_mime_part_set_content_id(mw_mime_part *p, const char *id, mw_error *err)
{
    if (!id || strpbrk(id, "\r\n <>"))
        return mwi_err_set(err, MW_EINVAL, "invalid Content-ID (no spaces, CR, LF or <>)");
    char buf[1024];
    if ((size_t)snprintf(buf, sizeof buf, "<%s>", id) >= sizeof buf)
        return mwi_err_set(err, MW_EINVAL, "Content-ID too long");
    return set_internal(p, "Content-ID", buf, err);
}

int mw_mime_part_set_encoding(mw_mime_part *p, int enc, mw_error *err)
{
    if (enc < MW_MIME_ENC_NONE || enc >= MW_MIME_ENC_UNKNOWN)
        return mwi_err_set(err, MW_EINVAL, "unknown transfer encoding %d", enc);
    int rc = check_built(p, err);
    if (rc) return rc;
    p->enc_forced = enc == MW_MIME_ENC_NONE ? 0 : enc;
    return 0;
}

int mw_mime_part_set_body(mw_mime_part *p, const void *data, size_t len, mw_error *err)
{
    int rc = check_built(p, err);
    if (rc) return rc;
    if (p->kind != MW_K_LEAF)
        return mwi_err_set(err, MW_EINVAL, "a %s part has sub-parts, not a body", p->type);
    p->body.len = 0;
    free(p->file);
    p->file = NULL;
    p->src = MW_SRC_BYTES;
    if (mwi_buf_append(&p->body, data, len)) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    p->decoded = len; /* Tcllib getproperty size: the body's size */
    return 0;
}

int mw_mime_part_set_body_file(mw_mime_part *p, const char *path, mw_error *err)
{
    int rc = check_built(p, err);
    if (rc) return rc;
    if (p->kind != MW_K_LEAF)
        return mwi_err_set(err, MW_EINVAL, "a %s part has sub-parts, not a body", p->type);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mwi_err_set(err, MW_EIO, "%.200s: %s", path, MW_ERRNO_TEXT(errno));
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok) return mwi_err_set(err, MW_EIO, "%.200s: not a regular file", path);
    char *f = strdup(path);
    if (!f) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    free(p->file);
    p->file = f;
    mwi_buf_free(&p->body);
    p->src = MW_SRC_FILE;
    p->decoded = (uint64_t)st.st_size; /* as read now; the file is read again when written */
    return 0;
}

static void renumber(mw_mime_part *p)
{
    size_t k = 1;
    for (mw_mime_part *c = p->first; c; c = c->next, k++) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, ".%zu", k);
        size_t pl = strlen(p->path), tl = strlen(tmp);
        char *np = malloc(pl + tl + 1);
        if (np) {
            memcpy(np, p->path, pl);
            memcpy(np + pl, tmp, tl + 1);
            free(c->path);
            c->path = np;
        }
        c->depth = p->depth + 1;
        renumber(c);
    }
}

int mw_mime_part_add(mw_mime_part *parent, mw_mime_part *child, mw_error *err)
{
    int rc = check_built(parent, err);
    if (rc) return rc;
    if (child->parent) return mwi_err_set(err, MW_EINVAL, "the part already has a parent");
    for (mw_mime_part *a = parent; a; a = a->parent)
        if (a == child) return mwi_err_set(err, MW_EINVAL, "a part cannot contain itself");
    if (parent->kind == MW_K_LEAF)
        return mwi_err_set(err, MW_EINVAL, "a %s part cannot have sub-parts", parent->type);
    if (parent->kind == MW_K_MESSAGE && parent->nchild)
        return mwi_err_set(err, MW_EINVAL, "a message/rfc822 part holds one message");
    child->parent = parent;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->nchild++;
    renumber(parent);
    return 0;
}

static int is_content_field(const char *name)
{
    return !strncasecmp(name, "content-", 8) || !strcasecmp(name, "mime-version");
}

int mw_mime_part_header(mw_mime_part *p, const char *name, const char *value, int mode,
                        mw_error *err)
{
    if (!name) return mwi_err_set(err, MW_EINVAL, "no header name");
    /* Tcllib's setheader refuses these: they describe the body, and have
     * their own setters. */
    if (is_content_field(name))
        return mwi_err_set(err, MW_EINVAL,
                           "%.64s is set through the content setters, not as a header", name);
    int rc;
    switch (mode) {
    case MW_MIME_HDR_SET:
        rc = value ? mw_mime_headers_set(p->hdr, name, value) : MW_EINVAL;
        break;
    case MW_MIME_HDR_APPEND:
        rc = value ? mw_mime_headers_append(p->hdr, name, value) : MW_EINVAL;
        break;
    case MW_MIME_HDR_DELETE:
        mw_mime_headers_delete(p->hdr, name);
        return 0;
    default:
        return mwi_err_set(err, MW_EINVAL, "unknown header mode %d", mode);
    }
    if (rc)
        return mwi_err_set(err, rc, "%s",
                           value ? mw_mime_headers_error(p->hdr)->message : "no value");
    return 0;
}

/* ---- writing built parts ---- */

struct stats {
    int eight, nul, cr, longline, trail, dot, from;
    size_t col;
    unsigned char last;
    unsigned char head[5];
    size_t nhead;
};

static void scan(struct stats *s, const unsigned char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = d[i];
        if (c == '\n') {
            if (s->last == ' ' || s->last == '\t') s->trail = 1;
            if (s->col > 76) s->longline = 1;
            s->col = 0;
            s->nhead = 0;
            s->last = c;
            continue;
        }
        if (c == '\r') {
            if (i + 1 < n && d[i + 1] == '\n') {
                continue;
            }
            if (i + 1 < n) s->cr = 1;
            /* a CR at the end of a chunk: decided on the next (rare) */
        }
        if (s->col == 0 && c == '.') s->dot = 1;
        if (s->nhead < 5) {
            s->head[s->nhead++] = c;
            if (s->nhead == 5 && !memcmp(s->head, "From ", 5)) s->from = 1;
        }
        if (c >= 0x80) s->eight = 1;
        if (c == 0) s->nul = 1;
        s->col++;
        s->last = c;
    }
}

static void scan_end(struct stats *s)
{
    if (s->last == ' ' || s->last == '\t') s->trail = 1;
    if (s->col > 76) s->longline = 1;
}

static int read_all(int fd, unsigned char *buf, size_t size, size_t *got)
{
    for (;;) {
        ssize_t r = read(fd, buf, size);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        *got = (size_t)r;
        return 0;
    }
}

static int scan_source(mw_mime_part *p, struct stats *st, mw_error *err)
{
    memset(st, 0, sizeof *st);
    if (p->src == MW_SRC_BYTES) {
        scan(st, (const unsigned char *)p->body.data, p->body.len);
    } else {
        int fd = open(p->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return mwi_err_set(err, MW_EIO, "%.200s: %s", p->file, MW_ERRNO_TEXT(errno));
        unsigned char *buf = malloc(IO_CHUNK);
        size_t got = 0;
        int rc = 0;
        if (!buf) rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
        while (!rc) {
            if (read_all(fd, buf, IO_CHUNK, &got)) {
                rc = mwi_err_set(err, MW_EIO, "%.200s: %s", p->file, MW_ERRNO_TEXT(errno));
                break;
            }
            if (!got) break;
            scan(st, buf, got);
        }
        free(buf);
        close(fd);
        if (rc) return rc;
    }
    scan_end(st);
    return 0;
}

static int latin_charset(const char *cs)
{
    if (!cs) return 0;
    if (!strcasecmp(cs, "us-ascii")) return 1;
    /* iso-8859-1 ... iso-8859-8 */
    return !strncasecmp(cs, "iso-8859-", 9) && cs[9] >= '1' && cs[9] <= '8' && !cs[10];
}

/* The transfer encoding Tcllib's mime package would choose, with one
 * deliberate change: 8-bit text without a charset is labelled 8bit rather
 * than sent unlabelled. */
static int choose_encoding(mw_mime_part *p, const struct stats *st)
{
    const char *t = p->type;
    if (!strncmp(t, "audio/", 6) || !strncmp(t, "image/", 6) || !strncmp(t, "video/", 6))
        return MW_MIME_ENC_BASE64;
    int text = !strncmp(t, "text/", 5);
    if (!text && (st->nul || st->eight || st->cr)) return MW_MIME_ENC_BASE64;
    const char *cs = mw_mime_part_charset(p);
    if (text && st->eight && cs && !latin_charset(cs)) return MW_MIME_ENC_BASE64;
    if (st->longline || st->trail || st->dot || st->from || st->nul || st->cr || (st->eight && cs))
        return MW_MIME_ENC_QP;
    if (st->eight) return MW_MIME_ENC_8BIT;
    return MW_MIME_ENC_NONE;
}

struct enc_out {
    mw_mime_write_fn fn;
    void *ud;
    int enc;
    mw_b64enc b64;
    mw_qpenc qp;
    int lastcr; /* the last byte seen was a CR */
    int canon;  /* text in base64: line ends made CRLF first */
    char *buf;
    unsigned char *tmp;
};

/* Bare LF and bare CR made CRLF; out needs 2 * n bytes. */
static size_t crlf_normalize(const unsigned char *d, size_t n, unsigned char *out, int *lastcr)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = d[i];
        if (c == '\n' && !*lastcr) out[o++] = '\r';
        if (*lastcr && c != '\n') out[o++] = '\n';
        out[o++] = c;
        *lastcr = c == '\r';
    }
    return o;
}

/* Encodes one chunk; unencoded text gets bare LF/CR made CRLF. */
static int enc_chunk(struct enc_out *e, const unsigned char *d, size_t n)
{
    size_t o = 0;
    int rc = 0;
    while (n && !rc) {
        size_t take = n > 8192 ? 8192 : n;
        switch (e->enc) {
        case MW_MIME_ENC_BASE64:
            if (e->canon) {
                /* RFC 2045 §6.8, RFC 2049 §4: text is put in canonical form
                 * (CRLF line ends) before base64. */
                size_t m = crlf_normalize(d, take, e->tmp, &e->lastcr);
                o = mwi_b64enc_run(&e->b64, e->tmp, m, e->buf);
            } else {
                o = mwi_b64enc_run(&e->b64, d, take, e->buf);
            }
            break;
        case MW_MIME_ENC_QP:
            o = mwi_qpenc_run(&e->qp, d, take, e->buf);
            break;
        case MW_MIME_ENC_BINARY:
            memcpy(e->buf, d, take);
            o = take;
            break;
        default:
            o = crlf_normalize(d, take, (unsigned char *)e->buf, &e->lastcr);
        }
        rc = o ? e->fn(e->buf, o, e->ud) : 0;
        d += take;
        n -= take;
    }
    return rc;
}

static int enc_end(struct enc_out *e)
{
    size_t o = 0;
    if (e->enc == MW_MIME_ENC_BASE64) {
        if (e->canon && e->lastcr) {
            static const unsigned char lf = '\n';
            o = mwi_b64enc_run(&e->b64, &lf, 1, e->buf);
        }
        o += mwi_b64enc_end(&e->b64, e->buf + o);
    } else if (e->enc == MW_MIME_ENC_QP) {
        o = mwi_qpenc_end(&e->qp, e->buf);
    } else if (e->enc != MW_MIME_ENC_BINARY && e->lastcr) {
        e->buf[o++] = '\n';
    }
    return o ? e->fn(e->buf, o, e->ud) : 0;
}

/* A leaf body encoded a piece at a time: mwi_leaf_step reads one input piece
 * (the whole in-memory body, or IO_CHUNK bytes of the file) and hands its
 * encoding to fn.  write_leaf_body runs it to the end; the pull reader
 * (reader.c) one step per refill, so a file is never held whole. */
struct mw_leaf {
    struct enc_out e;
    mw_mime_part *p;
    int fd;
    unsigned char *in;
    size_t off; /* in-memory body: how much was encoded */
    int done;
};

int mwi_leaf_open(mw_leaf **out, mw_mime_part *p, int enc, mw_mime_write_fn fn, void *ud,
                  mw_error *err)
{
    mw_leaf *l = calloc(1, sizeof *l);
    *out = NULL;
    if (!l) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    l->p = p;
    l->fd = -1;
    l->e.fn = fn;
    l->e.ud = ud;
    l->e.enc = enc;
    l->e.canon = !strncmp(p->type, "text/", 5);
    mwi_qpenc_init(&l->e.qp, !l->e.canon);
    l->e.buf = malloc(8192 * 6 + 64);
    l->e.tmp = malloc(8192 * 2);
    if (!l->e.buf || !l->e.tmp) {
        mwi_leaf_free(l);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    if (p->src == MW_SRC_FILE) {
        l->fd = open(p->file, O_RDONLY | O_CLOEXEC);
        if (l->fd < 0) {
            int e = errno;
            mwi_leaf_free(l);
            return mwi_err_set(err, MW_EIO, "%.200s: %s", p->file, MW_ERRNO_TEXT(e));
        }
        if (!(l->in = malloc(IO_CHUNK))) {
            mwi_leaf_free(l);
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
    }
    *out = l;
    return 0;
}

/* 0: a piece was encoded (more may follow), 1: the body is finished, or
 * fn's non-zero value / MW_EIO. */
int mwi_leaf_step(mw_leaf *l, mw_error *err)
{
    if (l->done) return 1;
    int rc;
    if (l->fd < 0) {
        size_t n = l->p->body.len - l->off;
        if (n) {
            n = n > IO_CHUNK ? IO_CHUNK : n;
            rc = enc_chunk(&l->e, (const unsigned char *)l->p->body.data + l->off, n);
            l->off += n;
            return rc;
        }
        rc = 0;
    } else {
        size_t got;
        if (read_all(l->fd, l->in, IO_CHUNK, &got))
            return mwi_err_set(err, MW_EIO, "%.200s: %s", l->p->file, MW_ERRNO_TEXT(errno));
        if (got) return enc_chunk(&l->e, l->in, got);
        rc = 0;
    }
    if (!rc) rc = enc_end(&l->e);
    if (!rc) l->done = 1;
    return rc ? rc : 1;
}

void mwi_leaf_free(mw_leaf *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    free(l->in);
    free(l->e.buf);
    free(l->e.tmp);
    free(l);
}

static int write_leaf_body(mw_mime_part *p, int enc, mw_mime_write_fn fn, void *ud, mw_error *err)
{
    mw_leaf *l;
    int rc = mwi_leaf_open(&l, p, enc, fn, ud, err);
    while (!rc)
        rc = mwi_leaf_step(l, err);
    mwi_leaf_free(l);
    return rc == 1 ? 0 : rc;
}

static int gen_boundary(char *b, size_t size, mw_error *err)
{
    unsigned char r[16];
    if (mwi_random_bytes(r, sizeof r, err)) return MW_EIO;
    /* "=_" cannot appear in base64 or quoted-printable output (RFC 2045
     * §6.7 encodes '='), so only unencoded bodies need checking. */
    int n = snprintf(b, size, "=_mw_");
    for (size_t k = 0; k < sizeof r; k++)
        n += snprintf(b + n, size - (size_t)n, "%02x", r[k]);
    return 0;
}

/* Does an unencoded descendant contain the boundary?  In-memory bodies are
 * searched; files are searched by streaming them. */
static int boundary_in(mw_mime_part *p, const char *b)
{
    size_t bl = strlen(b);
    for (mw_mime_part *c = p->first; c; c = c->next) {
        if (c->kind != MW_K_LEAF) {
            if (boundary_in(c, b)) return 1;
            continue;
        }
        if (c->src == MW_SRC_RAW && c->body.len && memmem(c->body.data, c->body.len, b, bl))
            return 1;
        if (c->src == MW_SRC_BYTES && c->body.len && memmem(c->body.data, c->body.len, b, bl))
            return 1;
        if (c->src == MW_SRC_FILE) {
            int fd = open(c->file, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue; /* reported when the body is written */
            char *buf = malloc(IO_CHUNK + 64);
            size_t keep = 0, got;
            int found = 0;
            while (buf && !found && !read_all(fd, (unsigned char *)buf + keep, IO_CHUNK, &got) &&
                   got) {
                size_t n = keep + got;
                found = memmem(buf, n, b, bl) != NULL;
                keep = n < bl ? n : bl - 1;
                memmove(buf, buf + n - keep, keep);
            }
            free(buf);
            close(fd);
            if (found) return 1;
        }
    }
    return 0;
}

static int put_str(mw_mime_write_fn fn, void *ud, const char *s)
{
    return fn(s, strlen(s), ud);
}

/* The root of a built message gets MIME-Version, Date and Message-ID
 * (RFC 5322 §3.6: Date is required, Message-ID should be there). */
static int root_fields(mw_mime_part *p, mw_error *err)
{
    int rc = 0;
    if (!mw_mime_headers_get(p->hdr, "mime-version", 0))
        rc = mw_mime_headers_set(p->hdr, "MIME-Version", "1.0");
    char buf[512];
    if (!rc && !mw_mime_headers_get(p->hdr, "date", 0)) {
        if (mw_mime_date_now(buf, sizeof buf))
            return mwi_err_set(err, MW_EINVAL, "cannot read the clock");
        rc = mw_mime_headers_set(p->hdr, "Date", buf);
    }
    if (!rc && !mw_mime_headers_get(p->hdr, "message-id", 0)) {
        if (mw_mime_unique_id(buf, sizeof buf, NULL))
            return mwi_err_set(err, MW_EINVAL, "cannot make a Message-ID");
        rc = mw_mime_headers_set(p->hdr, "Message-ID", buf);
    }
    if (rc) return mwi_err_set(err, rc, "%s", mw_mime_headers_error(p->hdr)->message);
    /* The usual order: the caller's fields, then the MIME ones. */
    static const char *const mime_fields[] = {"MIME-Version", "Content-Type", "Content-Disposition",
                                              "Content-ID", "Content-Transfer-Encoding"};
    for (size_t i = 0; i < sizeof mime_fields / sizeof mime_fields[0]; i++)
        mwi_mime_headers_move_last(p->hdr, mime_fields[i]);
    return 0;
}

int mwi_write_built_body(mw_mime_part *p, mw_mime_write_fn fn, void *ud, mw_error *err)
{
    int rc = 0;
    if (!p->parent && (rc = root_fields(p, err))) return rc;
    if (p->kind == MW_K_MULTI) {
        char b[64];
        int tries = 0;
        do {
            if ((rc = gen_boundary(b, sizeof b, err))) return rc;
        } while (boundary_in(p, b) && ++tries < 8);
        if (tries == 8)
            return mwi_err_set(err, MW_EINVAL, "no boundary found that the content lacks");
        free(p->boundary);
        p->boundary = strdup(b);
        if (!p->boundary) return mwi_err_set(err, MW_ENOMEM, "out of memory");
        mw_mime_ctype *old = p->ct;
        p->ct = NULL;
        char *type = strdup(old ? mw_mime_ctype_value(old) : p->type);
        if (!type) {
            p->ct = old;
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
        rc = rebuild_ctype(p, "Content-Type", type, old, "boundary", b, err);
        free(type);
        if (rc) {
            p->ct = old;
            return rc;
        }
        mw_mime_ctype_free(old);
        if ((rc = mw_mime_headers_write(p->hdr, fn, ud))) return rc;
        if (!p->first)
            return mwi_err_set(err, MW_EINVAL, "multipart part %s has no sub-parts", p->path);
        /* RFC 2046 §5.1.1: the CRLF before each delimiter belongs to it. */
        for (mw_mime_part *c = p->first; c && !rc; c = c->next) {
            if (c != p->first) rc = fn("\r\n", 2, ud);
            if (!rc) rc = fn("--", 2, ud);
            if (!rc) rc = put_str(fn, ud, b);
            if (!rc) rc = fn("\r\n", 2, ud);
            if (!rc) rc = mwi_write_part(c, fn, ud, err);
        }
        if (!rc) rc = fn("\r\n--", 4, ud);
        if (!rc) rc = put_str(fn, ud, b);
        if (!rc) rc = fn("--\r\n", 4, ud);
        return rc;
    }
    if (p->kind == MW_K_MESSAGE) {
        mw_mime_headers_delete(p->hdr, "Content-Transfer-Encoding");
        if ((rc = mw_mime_headers_write(p->hdr, fn, ud))) return rc;
        if (!p->first)
            return mwi_err_set(err, MW_EINVAL, "message part %s has no message", p->path);
        return mwi_write_part(p->first, fn, ud, err);
    }
    int enc = p->enc_forced;
    if (!enc) {
        struct stats st;
        if ((rc = scan_source(p, &st, err))) return rc;
        enc = choose_encoding(p, &st);
    }
    if (enc == MW_MIME_ENC_NONE)
        mw_mime_headers_delete(p->hdr, "Content-Transfer-Encoding");
    else if ((rc = mw_mime_headers_set(p->hdr, "Content-Transfer-Encoding",
                                       mw_mime_encoding_name(enc))))
        return mwi_err_set(err, rc, "out of memory");
    p->enc = enc;
    if ((rc = mw_mime_headers_write(p->hdr, fn, ud))) return rc;
    /* The pull reader plans the output first and encodes bodies later. */
    if (fn == mwi_reader_plan_fn) return mwi_reader_plan_leaf(ud, p, enc, err);
    return write_leaf_body(p, enc, fn, ud, err);
}

int mw_mime_message_new(mw_mime_part **out, mw_mime_part *message, mw_error *err)
{
    int rc = mw_mime_part_new(out, "message/rfc822", err);
    if (rc) return rc;
    if ((rc = mw_mime_part_add(*out, message, err))) {
        mw_mime_part_free(*out);
        *out = NULL;
    }
    return rc;
}
