/* libFuzzer target: the connection's line reader and bulk peek/consume
 * (src/net/conn.c) over a callbacks stream.
 *
 * Input layout: byte 0 = line limit (1..256), byte 1 = read chunk size
 * (1..256), byte 2 = operation pattern (bit i: peek instead of read line at
 * step i % 8); the rest is what the "server" sends.  Invariants checked:
 * a line never contains LF, never exceeds the limit, never ends with the CR
 * of a CRLF; every byte sent is accounted for exactly once. */
#include "mailwire/net.h"
#include "net/conn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct src {
    const uint8_t *data;
    size_t len, pos, chunk;
};

static long src_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    struct src *s = ud;
    size_t n = s->len - s->pos;
    if (n > s->chunk) n = s->chunk;
    if (n > len) n = len;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (long)n;
}

static long src_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)ud;
    (void)buf;
    (void)deadline;
    return (long)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t max_line = (size_t)data[0] + 1;
    struct src s = {data + 3, size - 3, 0, (size_t)data[1] + 1};
    unsigned pattern = data[2];
    static const mw_stream_ops ops = {src_read, src_write, NULL};
    mw_stream *st = NULL;
    mw_conn *c = NULL;
    mw_error err = {0};
    if (mw_stream_callbacks(&st, &ops, &s, &err) || mwi_conn_new(&c, st, &err)) abort();
    mwi_conn_set_max_line(c, max_line);
    size_t accounted = 0; /* bytes handed out as lines (with their ends) or peeked */
    for (unsigned step = 0;; step++) {
        int rc;
        if (pattern & (1u << (step % 8))) {
            const char *d;
            size_t n;
            rc = mwi_conn_peek(c, &d, &n, &err);
            if (rc == 0) {
                if (n == 0 || memcmp(d, s.data + accounted, n) != 0) abort();
                /* consume about half, at least one byte */
                size_t take = n / 2 + 1;
                mwi_conn_consume(c, take);
                accounted += take;
            }
        } else {
            const char *line;
            size_t len;
            rc = mwi_conn_read_line(c, &line, &len, &err);
            if (rc == 0) {
                if (len > max_line || memchr(line, '\n', len)) abort();
                if (memcmp(line, s.data + accounted, len) != 0) abort();
                size_t end = accounted + len;
                if (s.data[end] == '\r') end++;
                if (s.data[end] != '\n') abort();
                accounted = end + 1;
            }
        }
        if (rc == MW_ENET || rc == MW_ETOOBIG) {
            if (rc == MW_ETOOBIG && err.message[0] == '\0') abort();
            break;
        }
        if (rc != 0) abort();
        if (mwi_conn_buffered(c) + accounted != s.pos) abort();
    }
    mwi_conn_free(c);
    return 0;
}
