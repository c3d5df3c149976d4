/* Content-Type / Content-Disposition values: RFC 2045 §5.1 syntax, read
 * leniently, with RFC 2231 parameter continuations, charsets, languages. */
#include "mime/mime_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS  128
#define MAX_SECTION 999 /* RFC 2231 §3 section numbers we accept */

struct rawp {
    char *base;  /* lowercased name without the '*' parts */
    int section; /* -1: not sectioned */
    int ext;     /* value is %-encoded (name* or name*N*) */
    char *val;
    size_t vlen;
};

struct mw_mime_ctype {
    char *value; /* "type/subtype" lowercased, or the disposition type */
    mw_mime_param *p;
    size_t n;
};

void mw_mime_ctype_free(mw_mime_ctype *ct)
{
    if (!ct) return;
    for (size_t i = 0; i < ct->n; i++) {
        free((char *)ct->p[i].name);
        free((char *)ct->p[i].value);
        free((char *)ct->p[i].charset);
        free((char *)ct->p[i].language);
    }
    free(ct->p);
    free(ct->value);
    free(ct);
}

const char *mw_mime_ctype_value(const mw_mime_ctype *ct)
{
    return ct->value;
}
size_t mw_mime_ctype_param_count(const mw_mime_ctype *ct)
{
    return ct->n;
}

int mw_mime_ctype_param_at(const mw_mime_ctype *ct, size_t i, mw_mime_param *out)
{
    if (i >= ct->n) return MW_EINVAL;
    *out = ct->p[i];
    return 0;
}

const char *mw_mime_ctype_param(const mw_mime_ctype *ct, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < ct->n; i++)
        if (!mwi_ascii_casecmp_n(ct->p[i].name, strlen(ct->p[i].name), name, nl))
            return ct->p[i].value;
    return NULL;
}

/* Skips white space, folding and RFC 5322 comments (nested). */
static size_t skip_cfws(const char *s, size_t i, size_t len)
{
    while (i < len) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            i++;
        } else if (c == '(') {
            int depth = 0;
            while (i < len) {
                if (s[i] == '\\' && i + 1 < len) {
                    i += 2;
                    continue;
                }
                if (s[i] == '(')
                    depth++;
                else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
                i++;
            }
        } else {
            break;
        }
    }
    return i;
}

/* RFC 2045 §5.1 tspecials, plus white space and controls end a token. */
static int is_tchar(unsigned char c)
{
    return c > 32 && c != 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

static char *dup_lower(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)mw_lower((unsigned char)s[i]);
    p[n] = '\0';
    return p;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = mw_lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* RFC 2231 §4: %XX decoding; a '%' not followed by two hex digits is kept. */
static int pct_decode(mw_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (s[i] == '%' && i + 2 < n && hexv((unsigned char)s[i + 1]) >= 0 &&
            hexv((unsigned char)s[i + 2]) >= 0) {
            rc = mwi_buf_append_char(
                b, (char)(hexv((unsigned char)s[i + 1]) << 4 | hexv((unsigned char)s[i + 2])));
            i += 2;
        } else {
            rc = mwi_buf_append_char(b, s[i]);
        }
        if (rc) return rc;
    }
    return 0;
}

/* Reads a parameter value: a quoted-string (RFC 5322 §3.2.4, backslash
 * escapes) or, leniently, everything up to ';' with white space trimmed. */
static int read_value(const char *s, size_t *pi, size_t len, mw_buf *v)
{
    size_t i = *pi;
    int rc = 0;
    if (i < len && s[i] == '"') {
        i++;
        while (i < len && s[i] != '"' && !rc) {
            if (s[i] == '\\' && i + 1 < len) i++;
            if (s[i] != '\r' && s[i] != '\n') rc = mwi_buf_append_char(v, s[i]);
            i++;
        }
        if (i < len) i++;
    } else {
        size_t st = i;
        while (i < len && s[i] != ';')
            i++;
        size_t e = i;
        while (e > st &&
               (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
            e--;
        rc = mwi_buf_append(v, s + st, e - st);
    }
    *pi = i;
    return rc;
}

static int cmp_section(const void *a, const void *b)
{
    const struct rawp *x = *(const struct rawp *const *)a, *y = *(const struct rawp *const *)b;
    return x->section - y->section;
}

/* An RFC 2231 value in charset: converted to UTF-8 in place when the
 * charset is known (else left as it is). */
static void to_utf8(mw_buf *v, const char *charset)
{
    mw_buf u = MW_BUF_INIT(0);
    int r = mwi_charset_to_utf8(charset, v->data ? v->data : "", v->len, &u);
    if (r == 0) {
        mwi_buf_free(v);
        *v = u;
    } else {
        mwi_buf_free(&u);
    }
}

/* Parameter base = *v appended to ct, taking *v, *charset and *lang
 * (set to NULL when taken); 0 or MW_ENOMEM. */
static int append_param(mw_mime_ctype *ct, const char *base, mw_buf *v, char **charset, char **lang)
{
    mw_mime_param *np = realloc(ct->p, (ct->n + 1) * sizeof *np);
    if (!np) return MW_ENOMEM;
    ct->p = np;
    mw_mime_param *p = &ct->p[ct->n];
    memset(p, 0, sizeof *p);
    p->name = dup_n(base, strlen(base));
    p->value_len = v->len;
    p->value = v->data ? mwi_buf_take(v, NULL) : dup_n("", 0);
    p->charset = *charset;
    p->language = *lang;
    if (!p->name || !p->value) {
        free((char *)p->name);
        free((char *)p->value);
        return MW_ENOMEM;
    }
    ct->n++;
    *charset = *lang = NULL;
    return 0;
}

/* Builds the final value of one parameter from its raw pieces. */
static int merge(mw_mime_ctype *ct, struct rawp *raw, size_t nraw, const char *base)
{
    struct rawp *plain = NULL, *star = NULL;
    struct rawp *sec[MAX_PARAMS];
    size_t ns = 0;
    for (size_t i = 0; i < nraw; i++) {
        if (strcmp(raw[i].base, base)) continue;
        if (raw[i].section >= 0)
            sec[ns++] = &raw[i];
        else if (raw[i].ext)
            star = &raw[i];
        else if (!plain)
            plain = &raw[i];
    }
    mw_buf v = MW_BUF_INIT(0);
    char *charset = NULL, *lang = NULL;
    int rc = 0, ext_any = 0;
    struct rawp *first = NULL;
    if (ns) {
        qsort(sec, ns, sizeof sec[0], cmp_section);
        first = sec[0];
    } else if (star) {
        sec[ns++] = star;
        first = star;
    }
    if (ns) {
        for (size_t k = 0; k < ns && !rc; k++) {
            const char *val = sec[k]->val;
            size_t vl = sec[k]->vlen;
            if (sec[k]->ext) {
                ext_any = 1;
                if (sec[k] == first) {
                    /* RFC 2231 §4: charset'language'value in the first piece. */
                    const char *q1 = memchr(val, '\'', vl);
                    const char *q2 = q1 ? memchr(q1 + 1, '\'', vl - (size_t)(q1 + 1 - val)) : NULL;
                    if (q1 && q2) {
                        if (q1 > val && !(charset = dup_n(val, (size_t)(q1 - val)))) rc = MW_ENOMEM;
                        if (q2 > q1 + 1 && !(lang = dup_n(q1 + 1, (size_t)(q2 - q1 - 1))))
                            rc = MW_ENOMEM;
                        vl -= (size_t)(q2 + 1 - val);
                        val = q2 + 1;
                    }
                }
                if (!rc) rc = pct_decode(&v, val, vl);
            } else {
                rc = mwi_buf_append(&v, val, vl);
            }
        }
    } else if (plain) {
        if (memmem(plain->val, plain->vlen, "=?", 2)) {
            /* Not standard, but common: RFC 2047 words inside a quoted
             * parameter (file names from many mailers). */
            rc = mwi_rfc2047_decode(plain->val, plain->vlen, &v);
        } else {
            rc = mwi_buf_append(&v, plain->val, plain->vlen);
        }
    }
    if (!rc && ext_any && charset) to_utf8(&v, charset);
    if (!rc) rc = append_param(ct, base, &v, &charset, &lang);
    free(charset);
    free(lang);
    mwi_buf_free(&v);
    return rc;
}

/* "type/subtype" (lower-cased) into ct->value; *pi after it. */
static int parse_type(mw_mime_ctype *ct, const char *s, size_t len, size_t *pi, mw_error *err)
{
    size_t i = skip_cfws(s, 0, len);
    size_t st = i;
    while (i < len && is_tchar((unsigned char)s[i]))
        i++;
    size_t tend = i;
    i = skip_cfws(s, i, len);
    if (i < len && s[i] == '/') {
        i = skip_cfws(s, i + 1, len);
        size_t s2 = i;
        while (i < len && is_tchar((unsigned char)s[i]))
            i++;
        if (i == s2 || tend == st) {
            return mwi_err_set(err, MW_EFORMAT, "content type without a type or subtype");
        }
        mw_buf t = MW_BUF_INIT(0);
        if (mwi_buf_append(&t, s + st, tend - st) || mwi_buf_append_char(&t, '/') ||
            mwi_buf_append(&t, s + s2, i - s2)) {
            mwi_buf_free(&t);
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
        ct->value = dup_lower(t.data, t.len);
        mwi_buf_free(&t);
    } else {
        ct->value = dup_lower(s + st, tend - st);
    }
    if (!ct->value) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    *pi = i;
    return 0;
}

/* RFC 2231 §3/§4: the section and extended flag of a parameter name
 * (name*N, name*N*, name*) into r; returns the length of its base name. */
static size_t rfc2231_name(const char *name, size_t len, struct rawp *r)
{
    const char *star = memchr(name, '*', len);
    size_t bl = star ? (size_t)(star - name) : len;
    r->section = -1;
    r->ext = 0;
    if (!star) return bl;
    const char *q = star + 1, *e = name + len;
    if (q < e && *q >= '0' && *q <= '9') {
        int num = 0;
        while (q < e && *q >= '0' && *q <= '9') {
            if (num <= MAX_SECTION) num = num * 10 + (*q - '0');
            q++;
        }
        r->section = num > MAX_SECTION ? MAX_SECTION : num;
        if (q < e && *q == '*') {
            r->ext = 1;
            q++;
        }
    } else {
        r->ext = 1; /* name*=charset'lang'value */
    }
    if (q != e || bl == 0) { /* not RFC 2231 after all: a plain name */
        bl = len;
        r->section = -1;
        r->ext = 0;
    }
    return bl;
}

int mw_mime_ctype_parse(mw_mime_ctype **out, const char *s, size_t len, mw_error *err)
{
    *out = NULL;
    mw_mime_ctype *ct = calloc(1, sizeof *ct);
    struct rawp raw[MAX_PARAMS];
    size_t nraw = 0;
    int rc = 0;
    if (!ct) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    size_t i = 0;
    if ((rc = parse_type(ct, s, len, &i, err))) goto fail;
    /* Parameters: ; attribute = value ... */
    while (i < len) {
        i = skip_cfws(s, i, len);
        if (i < len && s[i] != ';') {
            /* Junk between parameters: skip to the next ';'. */
            while (i < len && s[i] != ';')
                i++;
        }
        if (i >= len) break;
        i = skip_cfws(s, i + 1, len);
        size_t ns = i;
        while (i < len && is_tchar((unsigned char)s[i]))
            i++;
        size_t ne = i;
        i = skip_cfws(s, i, len);
        if (ne == ns || i >= len || s[i] != '=') continue;
        i = skip_cfws(s, i + 1, len);
        if (nraw == MAX_PARAMS) break;
        struct rawp *r = &raw[nraw];
        mw_buf v = MW_BUF_INIT(64 * 1024);
        if (read_value(s, &i, len, &v)) {
            mwi_buf_free(&v);
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
            goto fail;
        }
        size_t bl = rfc2231_name(s + ns, ne - ns, r);
        r->base = dup_lower(s + ns, bl);
        r->vlen = v.len;
        r->val = v.data ? mwi_buf_take(&v, NULL) : dup_n("", 0);
        if (!r->base || !r->val) {
            free(r->base);
            free(r->val);
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
            goto fail;
        }
        nraw++;
    }
    for (size_t k = 0; k < nraw; k++) {
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++)
            seen = !strcmp(raw[j].base, raw[k].base);
        if (!seen && (rc = merge(ct, raw, nraw, raw[k].base))) {
            rc = mwi_err_set(err, rc, "out of memory");
            goto fail;
        }
    }
    for (size_t k = 0; k < nraw; k++) {
        free(raw[k].base);
        free(raw[k].val);
    }
    *out = ct;
    return 0;
fail:
    for (size_t k = 0; k < nraw; k++) {
        free(raw[k].base);
        free(raw[k].val);
    }
    mw_mime_ctype_free(ct);
    return rc;
}
