/* Internal: the connection half of a loop job, one for POP3 and SMTP
 * (pop3_job.c, smtp_job.c): the non-blocking connect, TLS (implicit or
 * after STLS / STARTTLS, with the one injection check), bounded input and
 * output buffers, reads and writes as far as they go, the events to wait
 * for, the per-job deadlines and the fairness budget.  The protocol gives
 * hooks; it sees whole buffers and never a socket. */
#ifndef MW_LOOP_LCONN_H
#define MW_LOOP_LCONN_H

#include "loop/loop_int.h"
#include "loop/loop_tls.h"
#include "net/rate.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mwi_lconn_ops {
    void (*connected)(void *impl); /* TCP is up (before TLS, if any) */
    void (*tls_up)(void *impl);    /* the handshake is done, the certificate accepted */
    void (*process)(void *impl);   /* take what is in `in` (and compact it) */
    void (*feed)(void *impl);      /* top up `out` before writing; may be NULL */
    void (*fail)(void *impl, int code, const char *msg); /* end the job */
    const char *(*state)(void *impl);                    /* the job's state, for messages */
    /* The step deadline passed: return 1 when the job handled it (an idle
     * session's next NOOP, with a new step_deadline), 0 for a timeout.
     * May be NULL. */
    int (*deadline)(void *impl);
    /* Nothing to write and input awaited: work that need not wait for it
     * (the next message's preparation), done before the job sleeps; may
     * queue output.  May be NULL. */
    void (*ahead)(void *impl);
} mwi_lconn_ops;

typedef struct mwi_lconn {
    mw_loop_job *job;
    const mwi_lconn_ops *ops;
    void *impl;
    char *host;
    unsigned port;
    int connecting, handshaking, tls_pending;
    mwi_ltls_cfg tlscfg;
    mwi_ltls *tls;
    char *in;
    size_t in_len, in_cap;
    mw_buf out; /* bounded by out.max */
    size_t out_off;
    int wblock, rwant, eof;
    int drained; /* plain: a read this step came back short, the socket is empty */
    int io_timeout_ms;
    int64_t step_deadline, total_deadline;
    int max_time_ms;       /* what total_deadline came from, for its error (0: none) */
    const char *tls_reply; /* "STLS +OK": names the reply in the injection error, or NULL */
    size_t read_budget;
    mw_trace_fn trace;
    void *trace_ud;
    /* A host that is a name: looked up first on the loop (src/resolve),
     * then its addresses raced (Happy Eyeballs, leyes.h). */
    int resolving;
    struct mwi_rslv *rslv;
    struct mwi_raddr *addrs;
    size_t naddrs;
    struct mwi_leyes *race; /* the connects in flight, or NULL */
    int dns_owner;          /* this job's lookup is the loop's for its name (lcache.h) */
    unsigned dns_gen;       /* or the one it waits for */
    int connect_timeout_ms; /* the race's own deadline (0: the one set) */
    /* External I/O (a blocking driver, pop3_drive.c): the buffers without
     * the socket.  The driver writes `out`, reads into `in` and calls
     * process; handshaking set means the job asks for TLS, which the
     * driver puts up (ext_tls_up) before calling tls_up; connecting set
     * again (mwi_lconn_reconnect) asks for a new connection. */
    int external, ext_tls_up;
    int lf_only;           /* lines end in a bare LF (src/pop3's msex, old Exchange) */
    mw_stream *ext_stream; /* the driver's stream once TLS is up (channel binding) */
    int ext_cert;          /* the driver's TLS presents a client certificate */
    /* Through a proxy (lproxy.h): set up by the job before its connect;
     * proxying while the handshake runs, between the connect and TLS. */
    struct mwi_lproxy *proxy;
    int proxying;
    /* The job's rate floor (mw_loop_set_speed_limit), src/net/rate.c's
     * bookkeeping: each step's octets against the wait before it. */
    mw_rate rate;
    int rate_set;      /* rate initialised from the job's floor */
    int64_t rate_mark; /* the end of the last step that counted (0: none) */
    uint64_t moved;    /* octets read and written so far */
} mwi_lconn;

/* TLS is up on the connection (the socket's, or the driver's). */
#define MWI_LCONN_SECURE(c) ((c)->tls != NULL || (c)->ext_tls_up)

/* Sets up c (in buffer of in_cap, output bounded by out_max).  Returns 0
 * or MW_ENOMEM. */
int mwi_lconn_init(mwi_lconn *c, mw_loop_job *job, const mwi_lconn_ops *ops, void *impl,
                   size_t in_cap, size_t out_max, size_t read_budget);
/* Closes the connection (no goodbye) and frees what c holds. */
void mwi_lconn_free(mwi_lconn *c);
/* Ends the job once: code (0: success) and msg into the job's error, a
 * trace line, the connection closed (no goodbye).  The protocol cleans up
 * its own part first. */
void mwi_lconn_end(mwi_lconn *c, int code, const char *msg);
/* Trace lines: one as it is, and an MW_TRACE_INFO line made with printf. */
void mwi_lconn_trace(mwi_lconn *c, int dir, const char *line, size_t len);
void mwi_lconn_info(mwi_lconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes the socket and TLS; the job waits for nothing more. */
void mwi_lconn_close(mwi_lconn *c);
/* Appends a line and CR LF to the output.  Returns 0, MW_EINVAL (CR or LF
 * in it), MW_ETOOBIG, MW_ENOMEM. */
int mwi_lconn_queue_line(mwi_lconn *c, const char *line);
/* Queues all of *b (0, or MW_ENOMEM / MW_ETOOBIG with nothing queued).  When nothing
 * is pending the two buffers trade storage instead of copying (each keeps
 * its own bound): a message's data goes out without a copy.  *b comes
 * back empty when queued. */
int mwi_lconn_queue_buf(mwi_lconn *c, mw_buf *b);

/* ---- external I/O: the blocking drivers (pop3_drive.c, smtp_held.c) ---- */
/* Ends the job with rc and e's message (mw_strerror(rc) when empty). */
void mwi_lconn_ext_fail(mwi_lconn *c, int rc, const mw_error *e);
/* Writes what is queued to s within deadline: 0 (the output empty), or
 * the code with *e set. */
int mwi_lconn_ext_write(mwi_lconn *c, mw_stream *s, int64_t deadline, mw_error *e);
/* Reads what s has into the input within deadline: 0 with *got octets
 * added (0: end of stream), MW_ETOOBIG when the input is full, or the
 * stream's code, with *e set. */
int mwi_lconn_ext_read(mwi_lconn *c, mw_stream *s, int64_t deadline, size_t *got, mw_error *e);
/* The job asked for TLS: *s wrapped (owned, also on failure), its
 * handshake within deadline; then the connection is secure (ext_stream,
 * ext_cert: the TLS presents a client certificate) and tls_up runs.  0, or
 * the code with *e set (the caller ends the job). */
int mwi_lconn_ext_tls(mwi_lconn *c, mw_stream **s, const mw_tls_opts *t, int64_t deadline, int cert,
                      mw_error *e);
/* Starts the TLS handshake now (implicit TLS). */
void mwi_lconn_start_tls(mwi_lconn *c);
/* After each reply line the protocol took: `pos` octets of `in` are used.
 * When the protocol set tls_pending (the server said yes to STLS /
 * STARTTLS), nothing may follow that reply before the handshake (RFC 2595
 * §4, RFC 3207 §4: such bytes could be a man in the middle's): then the
 * job fails, else the handshake starts.  Returns 1 when processing must
 * stop here. */
int mwi_lconn_after_line(mwi_lconn *c, size_t pos);
/* Closes the connection (no goodbye) and starts a new one to the same
 * host and port, for a job's next session: buffers emptied, TLS off, the
 * connect deadline connect_timeout_ms from now (and that timeout the
 * race's, c->connect_timeout_ms), the name looked up again.
 * The step that called it stops there.  Returns 0, or an error code with
 * the job's err set. */
int mwi_lconn_reconnect(mwi_lconn *c, int connect_timeout_ms);
/* Output octets not written yet. */
size_t mwi_lconn_pending(const mwi_lconn *c);
/* The loop's step for the job: see loop_int.h. */
void mwi_lconn_step(mwi_lconn *c, int events);
/* Sets the job's events and deadline from the connection's state (after
 * the job was added; mwi_lconn_step does it after every step).  A job
 * still connecting without a descriptor has a host that is a name or an
 * address literal (mwi_loop_tcp_socket gave fd -1): the first step looks
 * a name up, on the loop, for the family in job->family, within the
 * connect deadline (a literal is its own address), then races connects
 * to its addresses (leyes.h). */
void mwi_lconn_arm(mwi_lconn *c);
/* The job made progress now: the io deadline moves. */
void mwi_lconn_progress(mwi_lconn *c);

#endif
