/* A "server" for the session fuzz targets: the fuzz input is what it says,
 * handed out in pieces of at most `step` bytes (so every split point of a
 * reply is reached); what the client writes is counted and dropped.  The
 * end of the input is the server closing the connection. */
#ifndef MW_FUZZ_FAKE_SERVER_H
#define MW_FUZZ_FAKE_SERVER_H

#include "mailwire/net.h"

#include <stdint.h>
#include <string.h>

typedef struct fake_server {
    const uint8_t *p;
    size_t n, pos, step;
    size_t written;
} fake_server;

static inline long fake_server_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    fake_server *s = ud;
    size_t n = s->n - s->pos;
    if (n > len) n = len;
    if (n > s->step) n = s->step;
    memcpy(buf, s->p + s->pos, n);
    s->pos += n;
    return (long)n;
}

static inline long fake_server_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)buf;
    (void)deadline;
    fake_server *s = ud;
    s->written += len;
    return (long)len;
}

/* A stream over the server whose input is data[1..size); data[0] picks the
 * step (1..64).  Returns 0 or an mw_code. */
static inline int fake_server_stream(mw_stream **out, fake_server *s, const uint8_t *data,
                                     size_t size)
{
    static const mw_stream_ops ops = {fake_server_read, fake_server_write, NULL};
    s->p = data + 1;
    s->n = size - 1;
    s->pos = 0;
    s->step = (size_t)(data[0] % 64) + 1;
    s->written = 0;
    mw_error err;
    return mw_stream_callbacks(out, &ops, s, &err);
}

#endif
