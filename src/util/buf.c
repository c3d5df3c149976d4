#include "util/buf.h"

#include "mailwire/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t buf_max(const mw_buf *b)
{
    return b->max ? b->max : SIZE_MAX / 2;
}

int mwi_buf_reserve(mw_buf *b, size_t extra)
{
    size_t max = buf_max(b);
    if (extra > max || b->len > max - extra) return MW_ETOOBIG;
    size_t need = b->len + extra;
    if (b->data && need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    char *p = realloc(b->data, cap + 1);
    if (!p) return MW_ENOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 0;
}

int mwi_buf_append(mw_buf *b, const void *p, size_t n)
{
    int rc = mwi_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int mwi_buf_append_str(mw_buf *b, const char *s)
{
    return mwi_buf_append(b, s, strlen(s));
}

int mwi_buf_append_char(mw_buf *b, char c)
{
    return mwi_buf_append(b, &c, 1);
}

int mwi_buf_printf(mw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return MW_EINVAL;
    int rc = mwi_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mwi_buf_consume(mw_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data) b->data[b->len] = '\0';
}

void mwi_buf_reset(mw_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void mwi_buf_free(mw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *mwi_buf_take(mw_buf *b, size_t *len)
{
    if (!b->data && mwi_buf_reserve(b, 0)) return NULL;
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
