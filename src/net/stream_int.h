/* Internal: the stream object shared by the stream kinds (stream.c: fd, TCP,
 * command, callbacks; tls.c: TLS) and the helpers conn.c uses.
 *
 * A stream is blocking with deadlines: each read/write waits (poll) until the
 * descriptor is ready, the deadline passes (MW_ETIMEOUT) or the cancel token
 * fires (MW_ECANCELED).  Descriptors are non-blocking underneath so no single
 * system call can outlive a deadline; the one exception is a TCP socket we
 * opened, read with no cancel token set, which blocks in recv under an
 * SO_RCVTIMEO no later than the deadline (see fd_read). */
#ifndef MW_NET_STREAM_INT_H
#define MW_NET_STREAM_INT_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/rate.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Why certificate verification failed (an X509_V_ERR_* code), with the
 * certificate's names for a mismatch; cert (an X509 *) may be NULL. */
struct x509_st;
void mwi_tls_verify_reason(long vr, struct x509_st *cert, char *buf, size_t len);

enum mw_stream_kind {
    MW_STREAM_FD = 1,  /* fd, TCP and command streams */
    MW_STREAM_CB = 2,  /* caller callbacks */
    MW_STREAM_TLS = 3, /* TLS over `inner` */
};

struct mw_tls; /* tls.c */

struct mw_stream {
    int kind;
    /* MW_STREAM_FD */
    int rfd, wfd;
    int own;         /* close rfd/wfd on free */
    int wfd_socket;  /* wfd is a socket: send(MSG_NOSIGNAL) avoids SIGPIPE */
    int rd_short;    /* the last read returned less than asked: wait before the next */
    int sock_timed;  /* a socket left blocking: reads without a cancel token block
                      * in recv under SO_RCVTIMEO (one system call per wait, not
                      * poll + read); every other call passes MSG_DONTWAIT */
    int rcvtimeo_ms; /* the SO_RCVTIMEO now set on rfd (0 = none, block) */
    pid_t pid;       /* command child to reap on free, or -1 */
    /* MW_STREAM_CB */
    mw_stream_ops ops;
    void *userdata;
    /* MW_STREAM_TLS */
    struct mw_tls *tls;
    mw_stream *inner;
    /* all kinds */
    char *host;        /* the host name/literal connected to (TCP), or NULL */
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

/* 1 when the last MW_ETIMEOUT of s (or of a stream under it) came from a
 * session limit (max_time_ms, the rate floor): its message then says so
 * and should be kept. */
int mwi_stream_limit_hit(const mw_stream *s);

/* Allocates a zeroed stream of `kind` (fds -1, pid -1). NULL on no memory. */
mw_stream *mwi_stream_alloc(int kind);

/* Sets the cancel token on s and every stream under it (TLS inner). */
void mwi_stream_set_cancel(mw_stream *s, mw_cancel *cancel);
/* The host name the innermost stream was connected to, or NULL. */
const char *mwi_stream_host(const mw_stream *s);

/* The earlier of `deadline_ms` and now + io_timeout_ms (0 = no io timeout). */
int64_t mwi_deadline_min(int64_t deadline_ms, int io_timeout_ms);

/* Happy Eyeballs (RFC 8305), stream.c: the order of attempts (families
 * alternating) and the racing connect.  Internal; the unit tests call them
 * with hand-made address lists. */
struct addrinfo;
#define MW_TCP_MAX_ADDRS        32
#define MW_TCP_ATTEMPT_DELAY_MS 250 /* RFC 8305 §5 "Connection Attempt Delay" */
size_t mwi_tcp_order(const struct addrinfo *res, const struct addrinfo **out, size_t max);
int mwi_tcp_connect_happy(const struct addrinfo *res, int timeout_ms, int delay_ms,
                          mw_cancel *cancel, int *fdout, int *tried, int *last_errno, char *last,
                          size_t lastsz);

/* Waits until fd is ready for `events` (POLLIN/POLLOUT), watching the cancel
 * token.  Returns 0, MW_ETIMEOUT, MW_ECANCELED or MW_ENET (poll failure).
 * `what` names the wait in the error message ("reading", "connecting"). */
int mwi_wait_fd(int fd, short events, int64_t deadline_ms, mw_cancel *cancel, const char *what,
                mw_error *err);

/* The cancel token's pollable descriptor (readable once cancel is
 * requested), or -1. */
int mwi_cancel_fd(const mw_cancel *c);

/* tls.c: the handshake with an explicit overall deadline (the earlier of it
 * and now + opts->handshake_timeout_ms applies).  Owns `inner` as
 * mw_stream_tls does. */
int mwi_tls_wrap(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts, int64_t deadline_ms,
                 mw_error *err);
/* tls.c: the per-kind operations of a TLS stream. */
int mwi_tls_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline_ms,
                 mw_error *err);
int mwi_tls_write(mw_stream *s, const void *buf, size_t len, int64_t deadline_ms, mw_error *err);
void mwi_tls_close(mw_stream *s);

#endif
