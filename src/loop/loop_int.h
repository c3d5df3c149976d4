/* Internal: what the loop (loop.c) knows of a job, and what a job kind
 * (pop3_job.c) gives it.  A job owns one descriptor at a time; the loop
 * maps descriptors to jobs, asks each job which events it waits for and
 * when its deadline is, and calls its step function. */
#ifndef MW_LOOP_LOOP_INT_H
#define MW_LOOP_LOOP_INT_H

#include "mailwire/loop.h"

#include <stdint.h>

struct mw_loop_job;

typedef struct mwi_job_ops {
    /* Runs the job as far as it goes without waiting.  events: what the
     * descriptor is ready for (0 when called for a deadline or a retry).
     * The job updates its fd/want/deadline/again fields, or sets done. */
    void (*step)(struct mw_loop_job *job, int events);
    /* Closes everything the job holds (no QUIT) and frees its state. */
    void (*destroy)(struct mw_loop_job *job);
} mwi_job_ops;

struct mw_loop_job {
    mw_loop *loop;
    const mwi_job_ops *ops;
    void *impl;
    struct mw_loop_job *prev, *next;
    int fd;           /* -1 when none */
    int want;         /* MW_LOOP_IN | MW_LOOP_OUT */
    int64_t deadline; /* mw_now_ms() clock, MW_NO_DEADLINE for none */
    int again;        /* work left that no descriptor event will announce */
    int done;         /* ended: result holds the outcome */
    int reg_fd;       /* mw_loop_run's epoll registration: descriptor (-1: none) */
    int reg_want;     /* and its events */
    int cancel_rc;    /* nonzero: end with this at the next step */
    int family;       /* a host name's addresses: 0 any, 4 IPv4 only, 6 IPv6 only */
    /* Descriptors besides fd, each waiting for MW_LOOP_OUT: the racing
     * connects of Happy Eyeballs (leyes.c).  An event on one steps the job
     * as one on fd does.  Set with mwi_loop_set_xfds; the loop's copy. */
    int *xfd;
    int *xev; /* their events (mwi_loop_set_xfds_ev), MW_LOOP_OUT for each */
    size_t nxfd;
    int xreg;     /* mw_loop_run's epoll set holds them */
    int dns_wait; /* waits for another job's name lookup (lcache.h) */
    /* mw_loop_set_speed_limit's floor (0: none), lconn.c's to apply. */
    unsigned speed_limit;
    int speed_time_ms;
    mw_loop_result result;
    mw_error err;
    mw_loop_done_fn done_fn;
    /* Frees userdata when the job goes without its done callback
     * (mw_loop_free while it runs): the fetch job's own state (fetch_job.c). */
    void (*ud_free)(void *userdata);
    void *userdata;
    /* The asynchronous token provider (ltoken.h), and the wait for its
     * answer: tok_ticket nonzero while one is pending. */
    mw_loop_token_fn tok_fn;
    void *tok_ud;
    uint64_t tok_ticket;
    struct mwi_sasld *tok_sd;
    void (*tok_resume)(struct mw_loop_job *job, int act);
};

/* loop.c: takes a new job into the loop (counts it, links it).  Returns 0
 * or MW_ETOOBIG. */
int mwi_loop_attach(mw_loop *loop, struct mw_loop_job *job, mw_error *err);
/* loop.c: the job now uses descriptor fd (or -1); keeps the fd map. */
int mwi_loop_set_fd(struct mw_loop_job *job, int fd);

/* loop.c: the job's other descriptors are now fds[0..n) (n at most
 * MWI_LOOP_XFD_MAX), each waiting for MW_LOOP_OUT; the ones no longer
 * listed are forgotten (call it before closing them).  Returns 0,
 * MW_ETOOBIG or MW_ENOMEM (the job then has none). */
#define MWI_LOOP_XFD_MAX 16
int mwi_loop_set_xfds(struct mw_loop_job *job, const int *fds, size_t n);
/* The same, each descriptor waiting for its own events (MW_LOOP_IN,
 * MW_LOOP_OUT): a child's stdin and pidfd (lchild.h). */
int mwi_loop_set_xfds_ev(struct mw_loop_job *job, const int *fds, const int *events, size_t n);
/* loop.c: the delay between two connect attempts of a race (leyes.c):
 * MWI_HE_ATTEMPT_DELAY_MS (util/addrorder.h) unless a test set another. */
int mwi_loop_attempt_delay(const mw_loop *loop);
void mwi_loop_set_attempt_delay(mw_loop *loop, int ms);

/* loop.c: a non-blocking TCP socket to a scoped IPv6 literal, its
 * connect started (*connect_rc, *connect_errno: connect's result;
 * EINPROGRESS is the usual).  Any other host, a name or a plain address
 * literal, gives *fd -1 and EINPROGRESS: the job's connection half looks
 * the name up on the loop and races the addresses (lconn.h,
 * mwi_lconn_arm; a literal is its own one address).  Returns 0 or MW_ENET
 * (no socket). */
int mwi_loop_tcp_socket(const char *host, unsigned port, int *fd, int *connect_rc,
                        int *connect_errno, mw_error *err);

/* loop.c: where the loop's name lookups read resolv.conf and the hosts
 * file (NULL: the system's files); copied.  For the tests: the library
 * reads no environment variable.  Returns 0 or MW_ENOMEM. */
int mwi_loop_set_resolv_paths(mw_loop *loop, const char *resolv_conf, const char *hosts);
/* loop.c: those paths, for src/resolve. */
const struct mwi_rslv_paths *mwi_loop_resolv_paths(mw_loop *loop);

/* loop.c: mw_loop_run's poll(2) runner, the one used where there is no
 * epoll(7); the tests call it to keep it tried. */
int mwi_loop_run_poll(mw_loop *loop, int64_t deadline_ms, mw_error *err);

/* loop.c: the loop's cache of name lookups (lcache.h), and the wake-up
 * of the jobs waiting for one (dns_wait): each is stepped once more. */
struct mwi_lcache **mwi_loop_dns_cache(mw_loop *loop);
/* loop.c: the budget of deferred store files shared by the loop's fetch
 * jobs (src/store/store_defer.h; the loop's thread alone uses it). */
struct mwi_store_budget *mwi_loop_store_budget(mw_loop *loop);
void mwi_loop_wake_dns(mw_loop *loop);

/* loop.c: the loop's token answers (ltoken.h), made at the first
 * asynchronous provider asked. */
struct mwi_ltok **mwi_loop_tok(mw_loop *loop);

/* loop.c: the loop's TLS context cache (loop_tls.h). */
struct mwi_ltls_cache **mwi_loop_tls_cache(mw_loop *loop);

/* pop3_job.c: a fetch job over an already connected descriptor, for the
 * tests that play the server over a socketpair (opts->tls as given; the
 * certificate name is tls_opts->servername, else "peer").  The job owns
 * fd from the call on, even on failure. */
/* A message the POP3 job could not take (refused, cut off, not of its
 * LIST size): it is neither stored nor deleted; err says why. */
typedef void (*mwi_loop_msg_error_fn)(struct mw_loop_job *job, uint64_t msg, const mw_error *err,
                                      void *ud);
void mwi_loop_pop3_on_msg_error(struct mw_loop_job *job, mwi_loop_msg_error_fn fn, void *ud);
/* The fetch filter on a POP3 fetch job (pop3_top.c): after the plan, TOP
 * n 0 of every message to get, pipelined in runs of consecutive numbers
 * as src/fetch sends them.  headers() gets a message's headers and gives
 * its new action (MW_LOOP_GET, MW_LOOP_DELE, both, or 0); top_fail()
 * hears of a message whose TOP failed (err: the refusal, or NULL and
 * why), which is then neither fetched nor deleted. */
typedef int (*mwi_loop_headers_fn)(struct mw_loop_job *job, uint64_t msg, const char *hdr,
                                   size_t len, void *ud);
typedef void (*mwi_loop_top_fail_fn)(struct mw_loop_job *job, uint64_t msg, int code,
                                     const mw_error *err, const char *why, void *ud);
void mwi_loop_pop3_on_headers(struct mw_loop_job *job, mwi_loop_headers_fn headers,
                              mwi_loop_top_fail_fn fail, void *ud);
/* headers() may also return MWI_LOOP_HDR_WAIT: the message is decided
 * later and the job reads no more replies meanwhile (its socket rests;
 * the headers given stay valid).  At each of the job's steps it calls
 * wait(), which looks at its own descriptors (mwi_loop_set_xfds_ev) and
 * returns the action, or MWI_LOOP_HDR_WAIT with *deadline: when to be
 * called again at the latest.  drop() hears that the job ends (cancelled,
 * max-time, freed) while it waits. */
#define MWI_LOOP_HDR_WAIT (-1)
typedef int (*mwi_loop_hdr_wait_fn)(struct mw_loop_job *job, uint64_t msg, int64_t *deadline,
                                    void *ud);
typedef void (*mwi_loop_hdr_drop_fn)(struct mw_loop_job *job, void *ud);
void mwi_loop_pop3_on_headers_wait(struct mw_loop_job *job, mwi_loop_hdr_wait_fn wait,
                                   mwi_loop_hdr_drop_fn drop);
/* The cap on a message's octets (0: none), as src/pop3's size limit: a
 * RETR reply past it is cut (with a plan: a new session goes on). */
void mwi_loop_pop3_set_message_cap(struct mw_loop_job *job, uint64_t cap);
/* With a plan: the store failed for msg (err: the store's error); the job
 * takes no more messages but still deletes what was stored (pop3_fetch.c).
 * Called with mwi_loop_pop3_on_msg_error's ud. */
void mwi_loop_pop3_on_store_error(struct mw_loop_job *job, mwi_loop_msg_error_fn fn);
/* The login's token provider (token.h; called synchronously, also on a
 * loop, whose other jobs then wait) and msex (commands ended by a bare
 * LF), as src/pop3 has them. */
void mwi_loop_pop3_set_login(struct mw_loop_job *job, mw_token_fn fn, void *ud, int msex);
/* The longest status or listing line (src/pop3's max_line): 512 up to
 * the input buffer less one.  Returns 0 or MW_EINVAL. */
int mwi_loop_pop3_set_max_line(struct mw_loop_job *job, size_t max_line);
/* A fetch's RETR window in octets of LIST sizes as well as in commands,
 * as src/pop3's mw_pop3_retr_msgs keeps it (0: commands only). */
void mwi_loop_pop3_set_window_bytes(struct mw_loop_job *job, uint64_t bytes);
/* For a POP3 fetch job's plan callback: 2 when UIDL was answered, 1 when
 * LAST was instead (*last: its answer), 0 when neither. */
int mwi_loop_pop3_uid_mode(const struct mw_loop_job *job, uint64_t *last);
/* mw_loop_add_pop3_cmds over a connected descriptor (tests, fuzzing). */
int mwi_loop_add_pop3_cmds_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                              const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                              void *reply_userdata, int fd, mw_loop_done_fn done, void *userdata,
                              mw_error *err);
int mwi_loop_add_pop3_fetch_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                               int fd, mw_loop_done_fn done, void *userdata, mw_error *err);

/* pop3_drive.c: a POP3 fetch job on no loop and no socket, for a blocking
 * driver (external I/O, lconn.h); run it with mwi_loop_pop3_drive, which
 * ends it (its done callback called, the job freed). */
int mwi_loop_pop3_fetch_new(struct mw_loop_job **out, const mw_loop_pop3_opts *opts, mw_error *err);
/* Runs job to its end over a blocking stream: `given` (the caller's, owned
 * from the call on) or one mw_stream_tcp opens to host with po's port and
 * net options, TLS as po says through mw_stream_tls; a new session (a cut
 * reply) opens a new stream.  Then the done callback and the job freed. */
void mwi_loop_pop3_drive(struct mw_loop_job *job, const char *host, const mw_pop3_opts *po,
                         mw_stream *given);

/* smtp_job.c: the same for a send job. */
int mwi_loop_add_smtp_send_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                              int fd, mw_loop_done_fn done, void *userdata, mw_error *err);
int mwi_loop_add_smtp_batch_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                               const mw_loop_smtp_batch *b, int fd, mw_loop_done_fn done,
                               void *userdata, mw_error *err);
/* smtp_batch.c: a batch held between messages, for a blocking driver.
 * hold (before the session is ready): next's 0 means "none yet", the
 * session then waits with nothing in flight (no io deadline, the
 * session's max-time still counts) instead of QUIT; push, once the
 * caller has a message for next, asks next again; release ends the
 * batch (QUIT now when waiting, else after the message in flight).
 * Each returns 0, or MW_ESTATE (not a batch, over, not held or not
 * waiting). */
int mwi_loop_smtp_hold(mw_loop_job *job);
int mwi_loop_smtp_push(mw_loop_job *job);
int mwi_loop_smtp_release(mw_loop_job *job);

#endif
