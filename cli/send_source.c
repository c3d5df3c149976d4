/* `mailwire send`: stdin as the message source (send_int.h). */
#include "send_int.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int sin_refill(stdin_src *S)
{
    if (S->start > 0) {
        memmove(S->buf, S->buf + S->start, S->end - S->start);
        S->end -= S->start;
        S->start = 0;
    }
    for (;;) {
        ssize_t r = read(0, S->buf + S->end, sizeof S->buf - S->end);
        if (r > 0) {
            S->end += (size_t)r;
            return 0;
        }
        if (r == 0) {
            S->eof = 1;
            return 0;
        }
        if (errno != EINTR) {
            S->failed = errno;
            return -1;
        }
    }
}

/* Up to len octets of the message from stdin, stopping at the end line. */
static long sin_read(stdin_src *S, char *o, size_t len)
{
    size_t n = 0;
    while (n < len && !S->done) {
        if (S->end - S->start < 3 && !S->eof) {
            if (sin_refill(S) != 0) return n ? (long)n : -1;
            continue;
        }
        size_t a = S->end - S->start;
        if (a == 0) {
            S->done = 1;
            break;
        }
        const char *p = S->buf + S->start;
        if (S->bol && !S->ignore_dots && p[0] == '.' &&
            ((a == 1 && S->eof) || (a >= 2 && p[1] == '\n') ||
             (a >= 2 && p[1] == '\r' && ((a == 2 && S->eof) || (a >= 3 && p[2] == '\n'))))) {
            S->done = 1;
            break;
        }
        size_t want = len - n < a ? len - n : a;
        const char *nl = memchr(p, '\n', want);
        size_t k = nl ? (size_t)(nl - p) + 1 : want;
        memcpy(o + n, p, k);
        n += k;
        S->start += k;
        S->bol = nl != NULL;
    }
    return (long)n;
}

/* Length of the header block in d (through its empty line), 0 if none yet. */
size_t header_block_end(const char *d, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (d[i] == '\n') return i + 1;
        if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n') return i + 2;
        const char *nl = memchr(d + i, '\n', n - i);
        if (!nl) return 0;
        i = (size_t)(nl - d) + 1;
    }
    return 0;
}

/* Reads ahead into head: the header block (and what came with its last
 * read), or with `whole` the entire message (--bcc-digest builds its copy
 * in memory).  EFBIG past SEND_MAX_HEADER / SEND_MAX_MESSAGE. */
int sin_read_ahead(stdin_src *S, int whole)
{
    size_t cap = 0, max = whole ? SEND_MAX_MESSAGE : SEND_MAX_HEADER;
    S->bol = 1;
    while (!S->done && (whole || !(S->hlen && header_block_end(S->head, S->hlen)))) {
        if (S->hlen + 65536 > cap) {
            if (cap >= max) {
                errno = EFBIG;
                return -1;
            }
            size_t nc = cap ? cap * 2 : 65536;
            char *nh = realloc(S->head, nc);
            if (!nh) return -1;
            S->head = nh;
            cap = nc;
        }
        long r = sin_read(S, S->head + S->hlen, 65536);
        if (r < 0) {
            errno = S->failed;
            return -1;
        }
        S->hlen += (size_t)r;
    }
    return 0;
}

long send_source_read(void *buf, size_t len, void *ud)
{
    stdin_src *S = ud;
    if (S->hpos < S->hlen) {
        size_t k = S->hlen - S->hpos < len ? S->hlen - S->hpos : len;
        memcpy(buf, S->head + S->hpos, k);
        S->hpos += k;
        return (long)k;
    }
    return sin_read(S, buf, len);
}

int has_header(const char *d, size_t n, const char *name)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        if (d[i] == '\n' || (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n'))
            return 0; /* end of the header block */
        if (n - i > nl && !strncasecmp(d + i, name, nl) && d[i + nl] == ':') return 1;
        const char *e = memchr(d + i, '\n', n - i);
        if (!e) return 0;
        i = (size_t)(e - d) + 1;
    }
    return 0;
}

/* The first address of the message's From field, malloc'd, or NULL. */
char *from_field_address(const char *d, size_t n)
{
    mw_mime_headers *h = NULL;
    char *addr = NULL;
    if (mw_mime_headers_parse(&h, d, n, NULL, NULL, NULL) != 0) return NULL;
    const char *v = mw_mime_headers_get(h, "From", 0);
    mw_mime_addrlist *l = NULL;
    if (v && mw_mime_addrlist_parse(&l, v, strlen(v), NULL) == 0) {
        const mw_mime_address *a = mw_mime_addrlist_count(l) ? mw_mime_addrlist_at(l, 0) : NULL;
        if (a && a->address) addr = strdup(a->address);
        mw_mime_addrlist_free(l);
    }
    mw_mime_headers_free(h);
    return addr;
}
