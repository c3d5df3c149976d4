/* Lines over a mw_stream, for test programs that talk to a server
 * (tests/unit/net, tests/interop/net, tests/tools/mwprobe.c).  The
 * library's own line handling is the machines' (src/loop/lconn.c and the
 * protocol jobs); this is only the tests' side of a conversation: a bounded
 * buffer, CRLF or bare LF ends a line, no cmocka. */
#ifndef MW_TEST_LINES_H
#define MW_TEST_LINES_H

#include "mailwire/net.h"

#include <stdio.h>
#include <string.h>

#define TL_MAX 8192

typedef struct tlines {
    mw_stream *s;
    int64_t deadline; /* passed to every read, or MW_NO_DEADLINE */
    size_t off, len;  /* unread bytes are buf[off, len) */
    char buf[TL_MAX + 2];
} tlines;

static inline void tl_init(tlines *t, mw_stream *s)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    t->deadline = MW_NO_DEADLINE;
}

/* Bytes received and not handed out yet. */
static inline size_t tl_buffered(const tlines *t)
{
    return t->len - t->off;
}

/* One line, its end cut off; *line stays valid until the next call.
 * MW_ENET when the peer closes first, MW_ETOOBIG past TL_MAX octets,
 * else the stream's error. */
static inline int tl_read(tlines *t, const char **line, size_t *len, mw_error *err)
{
    for (;;) {
        char *nl = memchr(t->buf + t->off, '\n', t->len - t->off);
        if (nl) {
            char *p = t->buf + t->off;
            size_t n = (size_t)(nl - p);
            t->off += n + 1;
            if (n && p[n - 1] == '\r') n--;
            *line = p;
            *len = n;
            return 0;
        }
        if (t->off) {
            memmove(t->buf, t->buf + t->off, t->len - t->off);
            t->len -= t->off;
            t->off = 0;
        }
        if (t->len == sizeof t->buf) {
            snprintf(err->message, sizeof err->message, "line longer than the %d-byte limit",
                     TL_MAX);
            return MW_ETOOBIG;
        }
        size_t got = 0;
        int rc =
            mw_stream_read(t->s, t->buf + t->len, sizeof t->buf - t->len, &got, t->deadline, err);
        if (rc) return rc;
        if (!got) {
            snprintf(err->message, sizeof err->message,
                     "the server closed the connection while reading a line");
            return MW_ENET;
        }
        t->len += got;
    }
}

/* Sends text and CRLF in one write. */
static inline int tl_send(tlines *t, const char *text, mw_error *err)
{
    char b[TL_MAX + 2];
    size_t n = strlen(text);
    if (n > TL_MAX) return MW_EINVAL;
    memcpy(b, text, n);
    memcpy(b + n, "\r\n", 2);
    return mw_stream_write(t->s, b, n + 2, t->deadline, err);
}

#endif
