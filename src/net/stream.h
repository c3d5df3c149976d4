/* Internal: the stream object and its vtable, the core every stream kind
 * is built on.
 *
 * Layers (docs/ARCHITECTURE.md, "How the net layer is layered"): stream.c
 * is the generic part — allocation, the public read/write/free, the
 * session limits (max_time_ms, the rate floor) and the cancel check —
 * and calls a kind only through its vtable.  One file per kind: s_fd.c
 * (descriptors), s_tcp.c (TCP), s_cmd.c (a command's stdin/stdout),
 * s_cb.c (caller callbacks), tls.c (TLS over an inner stream).  A kind
 * that runs over another stream (TLS, the proxy handshake in proxy.c)
 * calls it through mw_stream_read/mw_stream_write, never a kind's own
 * functions, so no kind depends on one above it.
 *
 * A stream is blocking with deadlines: each read/write waits until the
 * peer is ready, the deadline passes (MW_ETIMEOUT) or the cancel token
 * fires (MW_ECANCELED). */
#ifndef MW_NET_STREAM_H
#define MW_NET_STREAM_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/cancel.h"
#include "net/rate.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What a kind does.  read/write get the deadline already narrowed by the
 * stream's io timeout and session limits; the generic part checks the
 * arguments (len > 0) and the cancel token before calling them. */
typedef struct mwi_stream_vt {
    const char *name; /* "fd", "tcp", "command", "callbacks", "tls" */
    /* Up to len bytes into buf; *got = 0: the peer closed. */
    int (*read)(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline, mw_error *err);
    /* All len bytes or an error; *done counts what went out, also on
     * failure (the rate floor counts it and a retry goes on from there). */
    int (*write)(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                 mw_error *err);
    /* The descriptor that becomes readable when the stream may have data
     * (for a TLS stream: its inner stream's), or -1 when there is none. */
    int (*pollfd)(const mw_stream *s);
    /* Releases the kind's state: closes descriptors, ends a child, sends
     * close_notify and frees the stream below.  Never fails. */
    void (*close)(mw_stream *s);
} mwi_stream_vt;

struct mw_stream {
    const mwi_stream_vt *vt;
    void *impl;        /* the kind's state, allocated with the stream */
    mw_stream *inner;  /* the stream below (TLS), or NULL */
    char *host;        /* the host name/literal connected to (TCP), or NULL */
    pid_t pid;         /* the command kind's child (s_cmd.c), or -1: here, not in
                        * that kind's state, as the unit tests read it */
    int io_timeout_ms; /* bound on each read/write; 0 = none */
    mw_cancel *cancel; /* watched in every wait; may be NULL */
    /* Session limits (mw_net_opts version 3), applied by mw_stream_read/
     * mw_stream_write.  Set on the stream made from the options (TCP, fd,
     * command); a TLS stream over it has none of its own, its inner
     * stream's reads and writes carry them. */
    int64_t op_deadline; /* when max_time_ms runs out, or MW_NO_DEADLINE */
    int max_time_ms;
    unsigned speed_limit;
    int speed_time_ms;
    mw_rate rate;
    int limit_hit; /* the last MW_ETIMEOUT came from one of these limits */
};

/* A zeroed stream of kind vt with impl_size bytes of zeroed kind state at
 * s->impl, in one allocation.  NULL on no memory. */
mw_stream *mwi_stream_new(const mwi_stream_vt *vt, size_t impl_size);

/* Copies the caller's options (any supported version) into *o and checks
 * the session limits.  Returns 0 or MW_EINVAL (err set). */
int mwi_net_opts_load(mw_net_opts *o, const mw_net_opts *opts, mw_error *err);
/* Sets the io timeout, cancel token and session limits of o on s;
 * max_time_ms counts from start. */
void mwi_stream_apply_opts(mw_stream *s, const mw_net_opts *o, int64_t start);

/* 1 when the last MW_ETIMEOUT of s (or of a stream under it) came from a
 * session limit (max_time_ms, the rate floor): its message then says so
 * and should be kept. */
int mwi_stream_limit_hit(const mw_stream *s);
/* Sets the cancel token on s and every stream under it. */
void mwi_stream_set_cancel(mw_stream *s, mw_cancel *cancel);
/* The host name the innermost stream was connected to, or NULL. */
const char *mwi_stream_host(const mw_stream *s);
/* The kind's name ("tcp", "tls", ...). */
const char *mwi_stream_kind(const mw_stream *s);
/* The descriptor to poll for reading (vtable pollfd), or -1. */
int mwi_stream_pollfd(const mw_stream *s);

/* The earlier of `deadline_ms` and now + io_timeout_ms (0 = no io timeout). */
int64_t mwi_deadline_min(int64_t deadline_ms, int io_timeout_ms);
/* A limit for a message: "5 s" when whole seconds, else "1500 ms". */
void mwi_ms_text(char *buf, size_t n, int ms);

#endif
