/* Internal: building short text in a fixed buffer without printf.  Used on
 * per-message paths (SMTP command lines, Date and Message-ID fields), where
 * snprintf's format parsing cost about 1,000 instructions a call — several
 * calls a message, on the critical path between two replies.
 *
 * The buffer is always NUL-terminated; what does not fit is cut and
 * `over` is set, so a caller checks once at the end. */
#ifndef MW_UTIL_FMT_H
#define MW_UTIL_FMT_H

#include <stddef.h>
#include <string.h>

typedef struct mw_fmt {
    char *p;
    size_t cap; /* size of p, > 0 */
    size_t len;
    int over; /* something was cut */
} mw_fmt;

static inline void mw_fmt_init(mw_fmt *f, char *p, size_t cap)
{
    f->p = p;
    f->cap = cap;
    f->len = 0;
    f->over = 0;
    p[0] = '\0';
}

static inline void mw_fmt_mem(mw_fmt *f, const char *s, size_t n)
{
    size_t room = f->cap - 1 - f->len;
    if (n > room) {
        n = room;
        f->over = 1;
    }
    memcpy(f->p + f->len, s, n);
    f->len += n;
    f->p[f->len] = '\0';
}

static inline void mw_fmt_str(mw_fmt *f, const char *s)
{
    mw_fmt_mem(f, s, strlen(s));
}

/* Decimal, at least `width` digits (zero-padded). */
static inline void mw_fmt_uint(mw_fmt *f, unsigned long long v, int width)
{
    char d[24];
    int n = 0;
    do {
        d[sizeof d - 1 - (size_t)n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof d);
    while (n < width && n < (int)sizeof d)
        d[sizeof d - 1 - (size_t)n++] = '0';
    mw_fmt_mem(f, d + sizeof d - (size_t)n, (size_t)n);
}

/* Lower-case hexadecimal, no leading zeros. */
static inline void mw_fmt_hex(mw_fmt *f, unsigned long long v)
{
    static const char digits[] = "0123456789abcdef";
    char d[16];
    int n = 0;
    do {
        d[sizeof d - 1 - (size_t)n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    mw_fmt_mem(f, d + sizeof d - (size_t)n, (size_t)n);
}

#endif
