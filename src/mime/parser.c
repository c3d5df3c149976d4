/* The streaming MIME parser (RFC 2045, RFC 2046): bytes in chunks of any
 * size, bodies decoded as they pass, memory bounded by the limits (and by
 * max_kept when the raw bodies are kept for writing back). */
#include "mime/codec.h"
#include "mime/mime_int.h"
#include "util/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (64 * 1024)
/* RFC 2046 §5.1.1 caps boundaries at 70 characters; we accept longer ones
 * up to this, and transport padding (white space after a delimiter) up to
 * MAX_PAD, so deciding whether a line is a delimiter needs a bounded look. */
#define MAX_BOUNDARY   200
#define MAX_PAD        256
#define LOOK           (2 + MAX_BOUNDARY + 2 + MAX_PAD + 2)
#define HARD_MAX_DEPTH 1000
/* Every part keeps its header block in the tree: all of them together may
 * hold at most this many times headers.max_total (16 MiB by default), so
 * max_parts small parts cannot each bring a whole block's worth. */
#define ALL_HEADERS_FACTOR 16
#define DECODE_SLICE       8192

enum { S_HEADERS, S_BODY };

struct mw_mime_parser {
    mw_mime_parse_opts o;
    mw_error err;
    int failed, finished;
    mw_mime_part *root, *cur;
    int state;
    mw_mime_part **ms; /* multiparts whose boundary is active, outermost first */
    size_t nm, msize;
    char held[2];      /* the line end before a possible delimiter, kept across runs */
    const char *heldp; /* where the held line end is: in the input buffer or held[] */
    size_t nheld;
    const char *pend; /* body bytes not yet passed on: contiguous runs are joined so */
    size_t npend;     /* that decoding and callbacks see big chunks, not lines */
    int bol;
    mw_buf in;
    size_t nparts, warnings, kept;
    size_t hdr_bytes; /* header bytes of all parts so far */
    mw_b64dec b64;
    mw_qpdec qp;
    mw_cv cv;
    int cv_on;
    mw_buf conv;
};

static int fail(mw_mime_parser *p, int code)
{
    p->failed = 1;
    return code;
}

static void warn(mw_mime_parser *p, mw_mime_part *part, const char *what)
{
    p->warnings++;
    if (p->o.on_warning) p->o.on_warning(part, what, p->o.userdata);
}

int mw_mime_parser_new(mw_mime_parser **out, const mw_mime_parse_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_mime_parser_new: no place for the parser");
    *out = NULL;
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    if (opts) {
        if (opts->version != MW_MIME_PARSE_OPTS_VERSION)
            return mwi_err_set(err, MW_EINVAL, "mw_mime_parse_opts version %u not supported",
                               opts->version);
        o = *opts;
    }
    mw_mime_header_opts ho;
    if (mwi_mime_headers_init_defaults(&ho, &o.headers))
        return mwi_err_set(err, MW_EINVAL, "bad header limits in mw_mime_parse_opts");
    o.headers = ho;
    if (!o.max_depth) o.max_depth = 32;
    if (o.max_depth > HARD_MAX_DEPTH) o.max_depth = HARD_MAX_DEPTH;
    if (!o.max_parts) o.max_parts = 10000;
    if (!o.max_kept) o.max_kept = (size_t)256 * 1024 * 1024;
    mw_mime_parser *p = calloc(1, sizeof *p);
    if (!p) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    p->o = o;
    p->in.max = CHUNK + LOOK;
    p->root = p->cur = mwi_part_new(NULL, &p->o.headers);
    p->ms = calloc(o.max_depth + 1, sizeof *p->ms);
    p->msize = o.max_depth + 1;
    if (!p->root || !p->ms) {
        mw_mime_part_free(p->root);
        free(p->ms);
        free(p);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    p->root->src = p->o.keep_bodies ? MW_SRC_RAW : MW_SRC_NONE;
    p->nparts = 1;
    p->state = S_HEADERS;
    p->bol = 1;
    *out = p;
    return 0;
}

void mw_mime_parser_free(mw_mime_parser *p)
{
    if (!p) return;
    mw_mime_part_free(p->root);
    if (p->cv_on) mwi_cv_close(&p->cv);
    mwi_buf_free(&p->conv);
    mwi_buf_free(&p->in);
    free(p->ms);
    free(p);
}

const mw_error *mw_mime_parser_error(const mw_mime_parser *p)
{
    return &p->err;
}
size_t mw_mime_parser_warnings(const mw_mime_parser *p)
{
    return p->warnings;
}

/* Decoded bytes of the current leaf go to the caller, converted if asked. */
static int deliver(mw_mime_parser *p, mw_mime_part *part, const char *d, size_t n, int final)
{
    part->decoded += n;
    if (!p->o.on_body) return 0;
    if (p->cv_on) {
        p->conv.len = 0;
        int rc = mwi_cv_run(&p->cv, d, n, final, &p->conv);
        if (rc) return mwi_err_set(&p->err, rc, "out of memory converting to UTF-8");
        d = p->conv.data;
        n = p->conv.len;
    }
    int rc = n ? p->o.on_body(part, d, n, p->o.userdata) : 0;
    /* The callback's value comes back unchanged (docs/CONVENTIONS.md). */
    if (rc) return mwi_err_set(&p->err, rc, "stopped by the body callback (%d)", rc);
    return 0;
}

static int decode(mw_mime_parser *p, mw_mime_part *part, const char *d, size_t n)
{
    unsigned char out[DECODE_SLICE + 128];
    int rc = 0;
    if (part->enc != MW_MIME_ENC_BASE64 && part->enc != MW_MIME_ENC_QP)
        return deliver(p, part, d, n, 0);
    while (n && !rc) {
        size_t take = n < DECODE_SLICE ? n : DECODE_SLICE;
        size_t o = part->enc == MW_MIME_ENC_BASE64 ? mwi_b64dec_run(&p->b64, d, take, out)
                                                   : mwi_qpdec_run(&p->qp, d, take, out);
        rc = deliver(p, part, (const char *)out, o, 0);
        d += take;
        n -= take;
    }
    return rc;
}

/* Body bytes of the current region: kept raw if asked, decoded for leaves. */
static int emit_now(mw_mime_parser *p, const char *d, size_t n)
{
    mw_mime_part *part = p->cur;
    if (!n) return 0;
    if (p->o.keep_bodies) {
        if (n > p->o.max_kept - p->kept)
            return fail(p, mwi_err_set(&p->err, MW_ETOOBIG,
                                       "message bodies over the %zu bytes allowed to be kept",
                                       p->o.max_kept));
        mw_buf *b = part->kind == MW_K_MULTI && part->closed ? &part->epilogue : &part->body;
        if (mwi_buf_append(b, d, n))
            return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
        p->kept += n;
    }
    part->rawsize += n;
    if (part->kind == MW_K_LEAF) {
        int rc = decode(p, part, d, n);
        if (rc) return fail(p, rc);
    }
    return 0;
}

static int flush_pend(mw_mime_parser *p)
{
    size_t n = p->npend;
    p->npend = 0;
    return n ? emit_now(p, p->pend, n) : 0;
}

static int emit(mw_mime_parser *p, const char *d, size_t n)
{
    if (!n) return 0;
    if (p->npend && p->pend + p->npend == d) {
        p->npend += n;
        return 0;
    }
    int rc = flush_pend(p);
    p->pend = d;
    p->npend = n;
    return rc;
}

static int flush_held(mw_mime_parser *p)
{
    int rc = emit(p, p->heldp, p->nheld);
    p->nheld = 0;
    return rc;
}

/* Is the line at s (n bytes available) a delimiter of an active multipart?
 * RFC 2046 §5.1.1: "--" boundary ["--"] *LWSP CRLF.  Returns -1 (need more
 * bytes), 0 (no), 1 (yes: *lvl, *isclose, *ll = line length with its end). */
static int check_bnd(const mw_mime_parser *p, const char *s, size_t n, int eof, size_t *lvl,
                     int *isclose, size_t *ll)
{
    if (n < 2) return eof || (n == 1 && s[0] != '-') ? 0 : -1;
    if (s[0] != '-' || s[1] != '-') return 0;
    int need = 0;
    for (size_t k = p->nm; k-- > 0;) {
        const char *b = p->ms[k]->boundary;
        size_t bl = strlen(b);
        size_t m = n - 2 < bl ? n - 2 : bl;
        if (memcmp(s + 2, b, m)) continue;
        if (m < bl) {
            if (!eof) need = 1;
            continue;
        }
        size_t j = 2 + bl;
        int cl = 0;
        if (j + 1 < n && s[j] == '-' && s[j + 1] == '-') {
            cl = 1;
            j += 2;
        } else if (j + 1 >= n && !eof && (j == n || s[j] == '-')) {
            need = 1;
            continue;
        }
        size_t pad = 0;
        while (j < n && (s[j] == ' ' || s[j] == '\t') && pad < MAX_PAD) {
            j++;
            pad++;
        }
        if (j == n) {
            if (eof) {
                *lvl = k, *isclose = cl, *ll = j;
                return 1;
            }
            if (pad < MAX_PAD) need = 1;
            continue;
        }
        if (s[j] == '\n' || (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')) {
            *lvl = k, *isclose = cl, *ll = j + (s[j] == '\r' ? 2 : 1);
            return 1;
        }
        if (s[j] == '\r' && j + 1 == n) {
            if (eof) {
                *lvl = k, *isclose = cl, *ll = j + 1;
                return 1;
            }
            need = 1;
        }
    }
    return need ? -1 : 0;
}

static int call_part(mw_mime_parser *p, mw_mime_part *part)
{
    int rc = p->o.on_part ? p->o.on_part(part, p->o.userdata) : 0;
    if (rc) return fail(p, mwi_err_set(&p->err, rc, "stopped by the part callback (%d)", rc));
    return 0;
}

/* Headers of the current part are complete: decide what its body is. */
static int begin_body(mw_mime_parser *p)
{
    mw_mime_part *part = p->cur;
    part->body_started = 1;
    part->src = p->o.keep_bodies ? MW_SRC_RAW : MW_SRC_NONE;
    unsigned f = mwi_part_derive(part);
    if (!part->type) return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
    part->flags |= f;
    if (f & MW_MIME_F_BAD_CTYPE) warn(p, part, "unreadable Content-Type, text/plain assumed");
    if (part->enc == MW_MIME_ENC_UNKNOWN)
        warn(p, part, "unknown Content-Transfer-Encoding, body passed as is");
    int rc = call_part(p, part);
    if (rc) return rc;
    p->bol = 1;
    p->nheld = 0;
    part->kind = MW_K_LEAF;
    if (!strncmp(part->type, "multipart/", 10)) {
        const char *b = mw_mime_part_param(part, "boundary");
        size_t bl = b ? strlen(b) : 0;
        if (bl == 0 || bl > MAX_BOUNDARY) {
            part->flags |= MW_MIME_F_NO_BOUNDARY;
            warn(p, part, "multipart without a usable boundary, read as a single part");
        } else if (part->depth >= p->o.max_depth || p->nm >= p->msize) {
            part->flags |= MW_MIME_F_TOO_DEEP;
            warn(p, part, "multipart nested too deep, read as a single part");
        } else {
            part->boundary = strdup(b);
            if (!part->boundary) return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
            part->kind = MW_K_MULTI;
            p->ms[p->nm++] = part;
            p->state = S_BODY;
            return 0;
        }
    } else if ((!strcmp(part->type, "message/rfc822") || !strcmp(part->type, "message/global")) &&
               part->enc != MW_MIME_ENC_BASE64 && part->enc != MW_MIME_ENC_QP &&
               part->enc != MW_MIME_ENC_UNKNOWN) {
        /* RFC 2046 §5.2.1: the body is a whole message, parsed as one. */
        if (part->depth >= p->o.max_depth) {
            part->flags |= MW_MIME_F_TOO_DEEP;
            warn(p, part, "message nested too deep, read as a single part");
        } else if (p->nparts >= p->o.max_parts) {
            part->flags |= MW_MIME_F_TOO_MANY;
            warn(p, part, "too many parts, the rest is read as a single part");
        } else {
            mw_mime_part *c = mwi_part_new(part, &p->o.headers);
            if (!c) return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
            p->nparts++;
            part->kind = MW_K_MESSAGE;
            c->src = part->src;
            p->cur = c;
            p->state = S_HEADERS;
            return 0;
        }
    }
    memset(&p->b64, 0, sizeof p->b64);
    memset(&p->qp, 0, sizeof p->qp);
    p->cv_on = 0;
    if (p->o.to_utf8 && !strncmp(part->type, "text/", 5)) {
        const char *cs = mw_mime_part_charset(part);
        if (cs && !mwi_charset_is_utf8(cs)) {
            if (mwi_cv_open(&p->cv, cs) == 0) {
                p->cv_on = 1;
            } else {
                part->flags |= MW_MIME_F_BAD_CHARSET;
                warn(p, part, "unknown charset, text passed unconverted");
            }
        }
    }
    p->state = S_BODY;
    return 0;
}

/* The current part ends (its delimiter, an outer one, or the end). */
static int end_part(mw_mime_parser *p, mw_mime_part *part)
{
    int rc;
    if (!part->body_started) {
        if ((rc = mw_mime_headers_finish(part->hdr)))
            return fail(p,
                        mwi_err_set(&p->err, rc, "%s", mw_mime_headers_error(part->hdr)->message));
        /* Its headers were cut (by a delimiter or the end of input): it has
         * no body, whatever its type says. */
        part->flags |= MW_MIME_F_CUT_HEADERS | mwi_part_derive(part);
        if (!part->type) return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
        part->body_started = 1;
        part->kind = MW_K_LEAF;
        memset(&p->b64, 0, sizeof p->b64);
        memset(&p->qp, 0, sizeof p->qp);
        warn(p, part, "part headers not ended by an empty line");
        if ((rc = call_part(p, part))) return rc;
    }
    if (part->kind == MW_K_LEAF) {
        unsigned char out[128];
        size_t o = 0;
        if (part->enc == MW_MIME_ENC_BASE64) {
            o = mwi_b64dec_end(&p->b64, out);
            if (p->b64.skipped) part->flags |= MW_MIME_F_BAD_ENCODING;
        } else if (part->enc == MW_MIME_ENC_QP) {
            o = mwi_qpdec_end(&p->qp, out);
            if (p->qp.malformed) part->flags |= MW_MIME_F_BAD_ENCODING;
        }
        if ((rc = deliver(p, part, (const char *)out, o, 1))) return fail(p, rc);
        if (part->flags & MW_MIME_F_BAD_ENCODING)
            warn(p, part, "malformed transfer encoding, decoded leniently");
        if (p->cv_on) {
            if (p->cv.bad) {
                part->flags |= MW_MIME_F_BAD_CHARSET;
                warn(p, part, "invalid bytes for the charset replaced by U+FFFD");
            }
            mwi_cv_close(&p->cv);
            p->cv_on = 0;
        }
    } else if (part->kind == MW_K_MULTI && !part->closed) {
        part->flags |= MW_MIME_F_NO_CLOSE;
        warn(p, part, "multipart without its close delimiter");
        /* Its boundary stops being active. */
        for (size_t k = 0; k < p->nm; k++)
            if (p->ms[k] == part) {
                p->nm = k;
                break;
            }
    }
    rc = p->o.on_part_end ? p->o.on_part_end(part, p->o.userdata) : 0;
    if (rc) return fail(p, mwi_err_set(&p->err, rc, "stopped by the part-end callback (%d)", rc));
    return 0;
}

static int set_buf(mw_mime_parser *p, mw_buf *b, const char *a, size_t an, const char *c, size_t cn)
{
    if (!p->o.keep_bodies) return 0;
    if (an + cn > p->o.max_kept - p->kept)
        return fail(p, mwi_err_set(&p->err, MW_ETOOBIG,
                                   "message bodies over the %zu bytes allowed to be kept",
                                   p->o.max_kept));
    p->kept += an + cn;
    if (mwi_buf_append(b, a, an) || mwi_buf_append(b, c, cn))
        return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
    return 0;
}

static int on_boundary(mw_mime_parser *p, size_t lvl, int isclose, const char *line, size_t ll)
{
    mw_mime_part *m = p->ms[lvl];
    int rc;
    if (!isclose && p->nparts >= p->o.max_parts) {
        /* Bounded: no new part, the delimiter is read as body text. */
        if (!(m->flags & MW_MIME_F_TOO_MANY)) {
            m->flags |= MW_MIME_F_TOO_MANY;
            warn(p, m, "too many parts, the rest is read as body text");
        }
        if ((rc = flush_held(p))) return rc;
        p->bol = ll > 0 && line[ll - 1] == '\n';
        return emit(p, line, ll);
    }
    if ((rc = flush_pend(p))) return rc;
    while (p->cur != m) {
        mw_mime_part *c = p->cur;
        if ((rc = end_part(p, c))) return rc;
        p->cur = c->parent;
    }
    p->nm = lvl + 1;
    if (isclose) {
        if ((rc = set_buf(p, &m->close, p->heldp, p->nheld, line, ll))) return rc;
        m->closed = 1;
        p->nm = lvl;
        p->state = S_BODY;
    } else {
        mw_mime_part *c = mwi_part_new(m, &p->o.headers);
        if (!c) return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
        p->nparts++;
        c->src = m->src;
        if ((rc = set_buf(p, &c->delim, p->heldp, p->nheld, line, ll))) return rc;
        p->cur = c;
        p->state = S_HEADERS;
    }
    p->nheld = 0;
    p->bol = 1;
    return 0;
}

/* Header bytes of the current part from d[*i..n) (to the line end when
 * boundaries are watched): fed, counted against the limit of all header
 * blocks, *i moved past them; the body begins after the blank line. */
static int feed_headers(mw_mime_parser *p, const char *d, size_t n, size_t *i)
{
    size_t end = n;
    if (p->nm) {
        const char *nl = memchr(d + *i, '\n', n - *i);
        if (nl) end = (size_t)(nl - d) + 1;
    }
    size_t used = 0;
    int r = mw_mime_headers_feed(p->cur->hdr, d + *i, end - *i, &used);
    size_t all = p->o.headers.max_total > SIZE_MAX / ALL_HEADERS_FACTOR
                     ? SIZE_MAX
                     : p->o.headers.max_total * ALL_HEADERS_FACTOR;
    p->hdr_bytes += used;
    if (r >= 0 && p->hdr_bytes > all) {
        return fail(p, mwi_err_set(&p->err, MW_ETOOBIG,
                                   "part %s: the header blocks of all parts are over the "
                                   "%zu bytes allowed together",
                                   p->cur->path, all));
    }
    if (r < 0)
        return fail(p, mwi_err_set(&p->err, r, "part %s: %s", p->cur->path,
                                   mw_mime_headers_error(p->cur->hdr)->message));
    *i += used;
    if (r == 1) return begin_body(p);
    p->bol = d[end - 1] == '\n';
    return 0;
}

/* Processes p->in; leaves at most a few bytes (an undecided line start or
 * a CR) for the next call unless eof. */
static int run(mw_mime_parser *p, int eof)
{
    const char *d = p->in.data;
    size_t n = p->in.len, i = 0;
    int rc = 0;
    while (!rc) {
        size_t lvl = 0, ll = 0;
        int cl = 0;
        if (p->state == S_HEADERS) {
            if (i == n) break;
            if (p->nm && p->bol) {
                int r = check_bnd(p, d + i, n - i, eof, &lvl, &cl, &ll);
                if (r < 0) break;
                if (r > 0) {
                    rc = on_boundary(p, lvl, cl, d + i, ll);
                    i += ll;
                    continue;
                }
            }
            rc = feed_headers(p, d, n, &i);
            continue;
        }
        if (p->nm == 0) {
            rc = emit(p, d + i, n - i);
            i = n;
            break;
        }
        if (p->bol) {
            if (i == n) break;
            int r = check_bnd(p, d + i, n - i, eof, &lvl, &cl, &ll);
            if (r < 0) break;
            if (r > 0) {
                rc = on_boundary(p, lvl, cl, d + i, ll);
                i += ll;
                continue;
            }
            if ((rc = flush_held(p))) break;
            p->bol = 0;
        }
        if (i == n) break;
        const char *nl = memchr(d + i, '\n', n - i);
        if (nl) {
            size_t e = (size_t)(nl - d);
            size_t le = (e > i && d[e - 1] == '\r') ? e - 1 : e;
            if ((rc = emit(p, d + i, le - i))) break;
            p->nheld = e + 1 - le;
            p->heldp = d + le;
            i = e + 1;
            p->bol = 1;
        } else {
            size_t end = n;
            if (!eof && d[n - 1] == '\r')
                end = n - 1; /* maybe the CR of a CRLF before a delimiter */
            rc = emit(p, d + i, end - i);
            i = end;
            break;
        }
    }
    if (!rc) rc = flush_pend(p);
    if (p->nheld && p->heldp != p->held) {
        /* The input buffer is about to move: keep the line end ourselves. */
        memmove(p->held, p->heldp, p->nheld);
        p->heldp = p->held;
    }
    mwi_buf_consume(&p->in, i);
    return rc;
}

int mw_mime_parser_feed(mw_mime_parser *p, const char *data, size_t len)
{
    if (p->failed || p->finished)
        return mwi_err_set(&p->err, MW_ESTATE,
                           p->failed ? "parser stopped after an error" : "parser already finished");
    while (len) {
        size_t room = CHUNK + LOOK - p->in.len;
        size_t take = len < room ? len : room;
        if (mwi_buf_append(&p->in, data, take))
            return fail(p, mwi_err_set(&p->err, MW_ENOMEM, "out of memory"));
        data += take;
        len -= take;
        int rc = run(p, 0);
        if (rc) return fail(p, rc);
    }
    return 0;
}

int mw_mime_parser_finish(mw_mime_parser *p, mw_mime_part **root)
{
    if (root) *root = NULL;
    if (p->failed || p->finished)
        return mwi_err_set(&p->err, MW_ESTATE,
                           p->failed ? "parser stopped after an error" : "parser already finished");
    int rc = run(p, 1);
    if (!rc) rc = flush_held(p);
    if (!rc && p->in.len) rc = emit(p, p->in.data, p->in.len);
    if (!rc) rc = flush_pend(p);
    while (!rc && p->cur) {
        mw_mime_part *c = p->cur;
        rc = end_part(p, c);
        p->cur = c->parent;
    }
    if (rc) return fail(p, rc);
    p->finished = 1;
    if (root) {
        *root = p->root;
        p->root = NULL;
    }
    return 0;
}

int mw_mime_parse(mw_mime_part **root, const char *data, size_t len, const mw_mime_parse_opts *opts,
                  mw_error *err)
{
    mw_mime_parser *p;
    *root = NULL;
    int rc = mw_mime_parser_new(&p, opts, err);
    if (rc) return mwi_err_set(err, rc, rc == MW_EINVAL ? "bad parser options" : "out of memory");
    rc = mw_mime_parser_feed(p, data, len);
    if (!rc) rc = mw_mime_parser_finish(p, root);
    if (rc && err) *err = p->err;
    mw_mime_parser_free(p);
    return rc;
}
