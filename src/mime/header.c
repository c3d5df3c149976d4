/* RFC 5322 header block: a push parser that keeps every field's raw bytes,
 * plus the setters the builder uses. */
#include "mime/mime_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define DEF_MAX_FIELD_LEN (256u * 1024)
#define DEF_MAX_FIELDS    4096
#define DEF_MAX_TOTAL     (1024u * 1024)
/* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; we fold built
 * fields near there. */
#define FOLD_AT 76

struct field_rec {
    char *raw; /* raw bytes, NUL, then the unfolded value, NUL */
    size_t raw_len;
    size_t name_len;
    size_t value_off; /* offset of the value inside raw's allocation */
    size_t value_len;
};

enum { ST_LINE_START, ST_IN_LINE, ST_CR_START, ST_DONE };

struct mw_mime_headers {
    struct field_rec *f;
    size_t n, cap;
    mw_buf cur; /* the field being read */
    int have_cur;
    int state;
    char sep[2];
    size_t sep_len;
    int complete;
    size_t total;
    mw_mime_header_opts o;
    mw_error err;
};

int mwi_ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return alen < blen ? -1 : 1;
    for (size_t i = 0; i < alen; i++) {
        int x = mw_lower((unsigned char)a[i]), y = mw_lower((unsigned char)b[i]);
        if (x != y) return x - y;
    }
    return 0;
}

int mwi_mime_headers_init_defaults(mw_mime_header_opts *o, const mw_mime_header_opts *in)
{
    mw_mime_header_opts d = MW_MIME_HEADER_OPTS_INIT;
    if (in) {
        if (in->version != MW_MIME_HEADER_OPTS_VERSION) return MW_EINVAL;
        d = *in;
    }
    if (!d.max_field_len) d.max_field_len = DEF_MAX_FIELD_LEN;
    if (!d.max_fields) d.max_fields = DEF_MAX_FIELDS;
    if (!d.max_total) d.max_total = DEF_MAX_TOTAL;
    *o = d;
    return 0;
}

int mw_mime_headers_new(mw_mime_headers **out, const mw_mime_header_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_mime_headers_new: no place for the headers");
    *out = NULL;
    mw_mime_headers *h = calloc(1, sizeof *h);
    if (!h) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (mwi_mime_headers_init_defaults(&h->o, opts)) {
        free(h);
        return mwi_err_set(err, MW_EINVAL, "bad mw_mime_header_opts (version or limits)");
    }
    h->cur.max = h->o.max_field_len;
    h->state = ST_LINE_START;
    *out = h;
    return 0;
}

void mw_mime_headers_free(mw_mime_headers *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++)
        free(h->f[i].raw);
    free(h->f);
    mwi_buf_free(&h->cur);
    free(h);
}

const mw_error *mw_mime_headers_error(const mw_mime_headers *h)
{
    return &h->err;
}

/* RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == ':') return 0;
    }
    return 1;
}

/* Builds the record of one field from its raw bytes: finds the name (RFC
 * 5322 §4.5 allows white space before the colon) and unfolds the value
 * (§2.2.3: unfolding removes each CRLF that precedes white space). */
static int make_rec(struct field_rec *r, const char *raw, size_t len)
{
    size_t line_end = len;
    const char *nl = memchr(raw, '\n', len);
    if (nl) line_end = (size_t)(nl - raw);
    const char *colon = memchr(raw, ':', line_end);
    size_t name_len = 0, vstart = 0;
    if (colon) {
        size_t n = (size_t)(colon - raw);
        while (n > 0 && mw_is_wsp((unsigned char)raw[n - 1]))
            n--;
        if (valid_name(raw, n)) {
            name_len = n;
            vstart = (size_t)(colon - raw) + 1;
        }
    }
    char *p = malloc(len * 2 + 2);
    if (!p) return MW_ENOMEM;
    memcpy(p, raw, len);
    p[len] = '\0';
    char *v = p + len + 1;
    size_t vl = 0;
    for (size_t i = vstart; i < len; i++) {
        char c = raw[i];
        if (c == '\n' || (c == '\r' && i + 1 < len && raw[i + 1] == '\n')) continue;
        v[vl++] = c;
    }
    /* A CR left at the very end (line cut at end of input) is a line end too. */
    while (vl > 0 && (mw_is_wsp((unsigned char)v[vl - 1]) || v[vl - 1] == '\r'))
        vl--;
    size_t lead = 0;
    while (lead < vl && mw_is_wsp((unsigned char)v[lead]))
        lead++;
    memmove(v, v + lead, vl - lead);
    vl -= lead;
    v[vl] = '\0';
    r->raw = p;
    r->raw_len = len;
    r->name_len = name_len;
    r->value_off = len + 1;
    r->value_len = vl;
    return 0;
}

static int push_rec(mw_mime_headers *h, const char *raw, size_t len, size_t at)
{
    if (h->n >= h->o.max_fields)
        return mwi_err_set(&h->err, MW_ETOOBIG, "header block has more than %zu fields",
                           h->o.max_fields);
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        struct field_rec *nf = realloc(h->f, nc * sizeof *nf);
        if (!nf) return mwi_err_set(&h->err, MW_ENOMEM, "out of memory");
        h->f = nf;
        h->cap = nc;
    }
    struct field_rec r;
    if (make_rec(&r, raw, len)) return mwi_err_set(&h->err, MW_ENOMEM, "out of memory");
    if (at > h->n) at = h->n;
    memmove(h->f + at + 1, h->f + at, (h->n - at) * sizeof *h->f);
    h->f[at] = r;
    h->n++;
    return 0;
}

/* Sets the separator written after the fields. */
static void set_sep(mw_mime_headers *h, const char *sep, size_t len)
{
    h->sep_len = len > 2 ? 2 : len;
    memcpy(h->sep, sep, h->sep_len);
    h->complete = len > 0;
    h->state = ST_DONE;
    mwi_buf_free(&h->cur);
}

static int commit(mw_mime_headers *h)
{
    if (!h->have_cur) return 0;
    int rc = push_rec(h, h->cur.data, h->cur.len, h->n);
    h->have_cur = 0;
    h->cur.len = 0;
    return rc;
}

static int cur_append(mw_mime_headers *h, const char *p, size_t n)
{
    if (n > h->o.max_total - h->total)
        return mwi_err_set(&h->err, MW_ETOOBIG, "header block longer than %zu bytes",
                           h->o.max_total);
    int rc = mwi_buf_append(&h->cur, p, n);
    if (rc == MW_ETOOBIG)
        return mwi_err_set(&h->err, rc, "header field longer than %zu bytes", h->o.max_field_len);
    if (rc) return mwi_err_set(&h->err, rc, "out of memory");
    h->total += n;
    return 0;
}

int mw_mime_headers_feed(mw_mime_headers *h, const char *data, size_t len, size_t *consumed)
{
    size_t i = 0;
    int rc = 0;
    if (consumed) *consumed = 0;
    if (h->state == ST_DONE) return mwi_err_set(&h->err, MW_ESTATE, "header block already ended");
    while (i < len) {
        char c = data[i];
        switch (h->state) {
        case ST_LINE_START:
            if (c == '\n') {
                i++;
                if ((rc = commit(h))) goto out;
                set_sep(h, "\n", 1);
                rc = 1;
                goto out;
            }
            if (c == '\r') {
                h->state = ST_CR_START;
                i++;
                break;
            }
            /* RFC 5322 §2.2.3: a line starting with white space continues
             * the field before it; anything else starts a new field. */
            if (!(mw_is_wsp((unsigned char)c) && h->have_cur)) {
                if ((rc = commit(h))) goto out;
                h->have_cur = 1;
            }
            h->state = ST_IN_LINE;
            break;
        case ST_CR_START:
            if (c == '\n') {
                i++;
                if ((rc = commit(h))) goto out;
                set_sep(h, "\r\n", 2);
                rc = 1;
                goto out;
            }
            /* A line that starts with a bare CR: not a field, kept as is. */
            if ((rc = commit(h))) goto out;
            h->have_cur = 1;
            if ((rc = cur_append(h, "\r", 1))) goto out;
            h->state = ST_IN_LINE;
            break;
        case ST_IN_LINE: {
            const char *nl = memchr(data + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - data) + 1 : len;
            if ((rc = cur_append(h, data + i, end - i))) goto out;
            i = end;
            if (nl) h->state = ST_LINE_START;
            break;
        }
        default:
            rc = MW_ESTATE;
            goto out;
        }
    }
out:
    if (consumed) *consumed = i;
    return rc;
}

int mw_mime_headers_finish(mw_mime_headers *h)
{
    int rc = 0;
    if (h->state == ST_DONE) return 0;
    if (h->state == ST_CR_START) {
        if ((rc = commit(h))) return rc;
        h->have_cur = 1;
        if ((rc = cur_append(h, "\r", 1))) return rc;
    }
    if ((rc = commit(h))) return rc;
    set_sep(h, "", 0);
    return 0;
}

int mw_mime_headers_parse(mw_mime_headers **out, const char *data, size_t len, size_t *consumed,
                          const mw_mime_header_opts *opts, mw_error *err)
{
    mw_mime_headers *h;
    *out = NULL;
    int rc = mw_mime_headers_new(&h, opts, err);
    if (rc) return rc;
    size_t used = 0;
    rc = mw_mime_headers_feed(h, data, len, &used);
    if (rc == 0) rc = mw_mime_headers_finish(h);
    if (rc < 0) {
        if (err) *err = h->err;
        mw_mime_headers_free(h);
        return rc;
    }
    if (consumed) *consumed = used;
    *out = h;
    return 0;
}

int mw_mime_headers_complete(const mw_mime_headers *h)
{
    return h->complete;
}

size_t mw_mime_headers_count(const mw_mime_headers *h)
{
    return h->n;
}

static void to_field(const struct field_rec *r, mw_mime_field *out)
{
    out->raw = r->raw;
    out->raw_len = r->raw_len;
    out->name = r->raw;
    out->name_len = r->name_len;
    out->value = r->raw + r->value_off;
    out->value_len = r->value_len;
}

int mw_mime_headers_at(const mw_mime_headers *h, size_t i, mw_mime_field *out)
{
    if (i >= h->n) return MW_EINVAL;
    to_field(&h->f[i], out);
    return 0;
}

static long find_index(const mw_mime_headers *h, const char *name, size_t nth)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        const struct field_rec *r = &h->f[i];
        if (r->name_len && !mwi_ascii_casecmp_n(r->raw, r->name_len, name, nl)) {
            if (nth == 0) return (long)i;
            nth--;
        }
    }
    return -1;
}

int mw_mime_headers_find(const mw_mime_headers *h, const char *name, size_t nth, mw_mime_field *out)
{
    long i = find_index(h, name, nth);
    if (i < 0) return MW_EINVAL;
    to_field(&h->f[i], out);
    return 0;
}

const char *mw_mime_headers_get(const mw_mime_headers *h, const char *name, size_t nth)
{
    long i = find_index(h, name, nth);
    return i < 0 ? NULL : h->f[i].raw + h->f[i].value_off;
}

size_t mw_mime_headers_count_name(const mw_mime_headers *h, const char *name)
{
    size_t n = 0;
    while (find_index(h, name, n) >= 0)
        n++;
    return n;
}

/* Renders "Name: value" CRLF, folding before white space so that lines
 * stay near 78 characters (RFC 5322 §2.2.3); a value with no white space
 * stays on one line. */
static int render(mw_buf *b, const char *name, const char *value)
{
    int rc = mwi_buf_append_str(b, name);
    if (!rc) rc = mwi_buf_append(b, ": ", 2);
    size_t col = b->len;
    size_t vl = strlen(value);
    for (size_t i = 0; i < vl && !rc; i++) {
        if (mw_is_wsp((unsigned char)value[i]) && col >= FOLD_AT && i > 0) {
            /* the white space starts the continuation line */
            rc = mwi_buf_append(b, "\r\n", 2);
            col = 0;
        }
        if (!rc) rc = mwi_buf_append_char(b, value[i]);
        col++;
    }
    if (!rc) rc = mwi_buf_append(b, "\r\n", 2);
    return rc;
}

static int check_nv(mw_mime_headers *h, const char *name, const char *value)
{
    if (!name || !valid_name(name, strlen(name)))
        return mwi_err_set(&h->err, MW_EINVAL, "invalid header field name");
    if (value && strpbrk(value, "\r\n"))
        return mwi_err_set(&h->err, MW_EINVAL,
                           "CR or LF in the value of header field %.64s (header injection)", name);
    return 0;
}

static int insert_field(mw_mime_headers *h, const char *name, const char *value, size_t at)
{
    mw_buf b = MW_BUF_INIT(h->o.max_field_len);
    int rc = render(&b, name, value);
    if (rc == MW_ETOOBIG)
        rc = mwi_err_set(&h->err, rc, "header field %.64s longer than %zu bytes", name,
                         h->o.max_field_len);
    else if (rc)
        rc = mwi_err_set(&h->err, rc, "out of memory");
    if (!rc) rc = push_rec(h, b.data, b.len, at);
    mwi_buf_free(&b);
    if (!rc && !h->complete && h->state != ST_DONE) {
        /* A block made by the caller ends with CRLF. */
        set_sep(h, "\r\n", 2);
    }
    return rc;
}

int mw_mime_headers_append(mw_mime_headers *h, const char *name, const char *value)
{
    int rc = check_nv(h, name, value);
    return rc ? rc : insert_field(h, name, value, h->n);
}

static void remove_at(mw_mime_headers *h, size_t i)
{
    free(h->f[i].raw);
    memmove(h->f + i, h->f + i + 1, (h->n - i - 1) * sizeof *h->f);
    h->n--;
}

int mw_mime_headers_set(mw_mime_headers *h, const char *name, const char *value)
{
    int rc = check_nv(h, name, value);
    if (rc) return rc;
    long first = find_index(h, name, 0);
    if (first < 0) return insert_field(h, name, value, h->n);
    rc = insert_field(h, name, value, (size_t)first);
    if (rc) return rc;
    long i;
    while ((i = find_index(h, name, 1)) >= 0)
        remove_at(h, (size_t)i);
    return 0;
}

size_t mw_mime_headers_delete(mw_mime_headers *h, const char *name)
{
    size_t n = 0;
    long i;
    while ((i = find_index(h, name, 0)) >= 0) {
        remove_at(h, (size_t)i);
        n++;
    }
    return n;
}

int mw_mime_headers_write(const mw_mime_headers *h, mw_mime_write_fn fn, void *userdata)
{
    for (size_t i = 0; i < h->n; i++) {
        int rc = fn(h->f[i].raw, h->f[i].raw_len, userdata);
        if (rc) return rc;
    }
    if (h->sep_len) return fn(h->sep, h->sep_len, userdata);
    return 0;
}

void mwi_mime_headers_move_last(mw_mime_headers *h, const char *name)
{
    size_t nl = strlen(name), w = 0, k = 0;
    struct field_rec moved[16];
    for (size_t i = 0; i < h->n; i++) {
        struct field_rec r = h->f[i];
        if (k < 16 && r.name_len && !mwi_ascii_casecmp_n(r.raw, r.name_len, name, nl))
            moved[k++] = r;
        else
            h->f[w++] = r;
    }
    memcpy(h->f + w, moved, k * sizeof moved[0]);
}
