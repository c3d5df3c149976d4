/* mailwire — the event loop: many sessions in one thread, none of them
 * blocking.
 *
 * A loop holds jobs: a POP3 fetch of one account into a store (with or
 * without src/fetch's UIDL state), a send of one message, and a batch of
 * messages over one SMTP session.
 * Every job is a state machine over a non-blocking socket; the loop never
 * waits by itself except in mw_loop_run().  Two ways to drive it:
 *
 * (a) from an event loop of your own (libuv, GLib, epoll, ...):
 *
 *         n = mw_loop_fds(loop, fds, cap);      which descriptors, which events
 *         t = mw_loop_timeout_ms(loop);         the next deadline (-1: none)
 *         ... wait for them ...
 *         mw_loop_action(loop, fd, MW_LOOP_IN); for each ready descriptor
 *         mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);  when t ran out
 *
 *     The set of descriptors may change after every call that drives the
 *     loop (mw_loop_action, mw_loop_add_*, mw_loop_cancel): ask again.
 *
 * (b) mw_loop_run(loop, deadline): a ready-made poll(2) runner built on (a).
 *
 * A job ends exactly once: its done callback gets the result (0 or a
 * negative MW_E* code) and the detail in an mw_error, from inside
 * mw_loop_action / mw_loop_run, never from the call that added or cancelled
 * it.  The job handle is invalid once the callback returned.
 *
 * One loop is used by one thread at a time; it starts no thread.  A job's
 * host may be a name: it is looked up on the loop, by the job itself,
 * without a thread or a blocking call (the hosts file, then DNS over UDP
 * and TCP to the nameservers of resolv.conf), within the job's connect
 * deadline; its addresses are then tried one after the other, IPv6 and
 * IPv4 interleaved.  A job may connect through a SOCKS5 or HTTP CONNECT
 * proxy (the proxy field of its options): the proxy's handshake runs on
 * the loop too.  The store (include/mailwire/store.h) is
 * called from the loop: its fsyncs take the time the local disk takes. */
#ifndef MAILWIRE_LOOP_H
#define MAILWIRE_LOOP_H

#include "common.h"
#include "error.h"
#include "fetch.h"
#include "net.h"
#include "smtp.h"
#include "store.h"
#include "token.h"
#include "trace.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_loop mw_loop;
typedef struct mw_loop_job mw_loop_job;

/* Events, as bits (mapped to POLLIN/POLLOUT by the caller's loop). */
#define MW_LOOP_IN  1
#define MW_LOOP_OUT 2
#define MW_LOOP_ERR 4 /* error or hang-up; treated like MW_LOOP_IN (the read says what) */
/* The descriptor argument of mw_loop_action for "a deadline may be due". */
#define MW_LOOP_TIMEOUT (-1)

#define MW_LOOP_OPTS_VERSION 1
typedef struct mw_loop_opts {
    unsigned version;
    size_t max_jobs; /* jobs at once; default (0) 100000, adding more is MW_ETOOBIG */
} mw_loop_opts;
#define MW_LOOP_OPTS_INIT                                                                          \
    {                                                                                              \
        MW_LOOP_OPTS_VERSION, 0                                                                    \
    }

/* Creates a loop.  opts may be NULL.  Returns 0, MW_EINVAL, MW_ENOMEM; on
 * failure *out is NULL and err (may be NULL) says why. */
MW_EXTERN int mw_loop_new(mw_loop **out, const mw_loop_opts *opts, mw_error *err);
/* Closes every job's connection (no QUIT: nothing is deleted on the
 * server) and frees the loop, without calling done callbacks; what a
 * fetch job holds (its store, with a delivery cut short removed, its
 * UIDL state and lock, a running filter) goes with it.  NULL is fine.
 * Not from inside a callback of this loop. */
MW_EXTERN void mw_loop_free(mw_loop *loop);

typedef struct mw_loop_fd {
    int fd;
    int events; /* MW_LOOP_IN | MW_LOOP_OUT */
} mw_loop_fd;

/* Writes up to cap entries into fds and returns how many descriptors the
 * loop waits on (may be more than cap: call again with more room). */
MW_EXTERN size_t mw_loop_fds(mw_loop *loop, mw_loop_fd *fds, size_t cap);
/* Milliseconds until the earliest deadline of any job (0: something is
 * due now, call mw_loop_action(loop, MW_LOOP_TIMEOUT, 0)), or -1 when no
 * job is running. */
MW_EXTERN int mw_loop_timeout_ms(mw_loop *loop);
/* Tells the loop that fd is ready for `events` (MW_LOOP_*), or, with fd
 * MW_LOOP_TIMEOUT, that time passed.  Runs the jobs concerned as far as
 * they go without waiting, ends the jobs whose deadline passed, and calls
 * the done callbacks of the jobs that ended.  A descriptor the loop does
 * not know (closed meanwhile) is ignored.  Returns the number of jobs
 * still running. */
MW_EXTERN size_t mw_loop_action(mw_loop *loop, int fd, int events);
/* Jobs added and not yet ended. */
MW_EXTERN size_t mw_loop_running(const mw_loop *loop);

/* Runs the loop with poll(2) until no job is left (0) or deadline_ms
 * (mw_now_ms() clock, MW_NO_DEADLINE for none) passes with jobs still
 * running (MW_ETIMEOUT; they go on at the next call).  MW_ENET when poll
 * fails, MW_ENOMEM. */
MW_EXTERN int mw_loop_run(mw_loop *loop, int64_t deadline_ms, mw_error *err);

/* Ends a job: its connection is closed without QUIT (so the POP3 server
 * deletes nothing of that session, RFC 1939 §6) and its done callback gets
 * MW_ECANCELED at the next mw_loop_action / mw_loop_run.  Messages already
 * committed to the store stay there.  May be called from any callback of
 * the loop.  Returns 0, or MW_ESTATE when the job has already ended. */
MW_EXTERN int mw_loop_cancel(mw_loop *loop, mw_loop_job *job);

/* A floor on a job's transfer rate, as mw_net_opts' speed_limit /
 * speed_time_ms (net.h) and with its words: fewer than bytes_per_s bytes
 * per second (both directions) averaged over speed_time_ms of waiting for
 * the server ends the job with MW_ETIMEOUT ("transfer slower than 3
 * bytes/s over 4 s (2 bytes moved) while reading a line").  Waiting counts
 * from the end of the connect and the TLS handshakes (those have their own
 * timeouts) and is the time between the job's steps; an idle session's
 * wait for its next NOOP counts too, so give such a job no floor.  Call it
 * right after adding the job (a fetch added with mw_loop_add_fetch gets
 * net's floor, the default one included, without it).  bytes_per_s 0: no
 * floor (the default of mw_loop_add_pop3_* and mw_loop_add_smtp_send).
 * Returns 0, MW_EINVAL (speed_time_ms <= 0 with a floor, or not a running
 * job of loop). */
MW_EXTERN int mw_loop_set_speed_limit(mw_loop *loop, mw_loop_job *job, unsigned bytes_per_s,
                                      int speed_time_ms);

/* An asynchronous token provider: asked, as mw_token_fn (token.h) is,
 * for the XOAUTH2 / OAUTHBEARER token of a job's login (refused = 1 after
 * the server refused the one it gave: once), but it need not answer at
 * once.  Either it sets *token (malloc'd; the job wipes and frees it) and
 * returns 0, or returns MW_LOOP_TOKEN_PENDING and answers later with
 * mw_loop_token_answer(loop, ticket, ...), from this thread or another;
 * any other value fails the login as mw_token_fn's does (err: why).
 * Meanwhile the loop's other jobs run, and this one waits with its
 * deadlines running: past the io timeout (or the max-time) without an
 * answer it ends with MW_ETIMEOUT and a message naming the token
 * provider; a cancel ends it as usual.  ticket is never 0 and never used
 * twice on a loop: an answer can not reach another job. */
#define MW_LOOP_TOKEN_PENDING 1
typedef int (*mw_loop_token_fn)(mw_loop_job *job, uint64_t ticket, int refused, char **token,
                                mw_error *err, void *userdata);
/* Gives a POP3 or SMTP job (any mw_loop_add_*) an asynchronous token
 * provider, used instead of a token_fn; call it right after adding the
 * job, before the loop runs again (an SMTP job with a user and neither
 * password nor token takes it in its options instead: token_async).
 * Returns 0, or MW_EINVAL (fn NULL, not a running job of loop). */
MW_EXTERN int mw_loop_set_token_provider(mw_loop *loop, mw_loop_job *job, mw_loop_token_fn fn,
                                         void *userdata);
/* The answer to a provider that said MW_LOOP_TOKEN_PENDING: rc 0 and the
 * token (len octets, copied: wipe yours), or rc < 0 and err (may be NULL)
 * saying why the login fails.  Safe from any thread while the loop
 * exists (not during or after mw_loop_free): it wakes the loop through a
 * descriptor of its own, which mw_loop_fds lists once a provider was
 * asked (mw_loop_action on it hands the answer over; mw_loop_run does it
 * by itself).  A token holding NUL ends the login (MW_EINVAL); CR or LF
 * are refused as in a token given at once.  Returns 0 (taken: the job gets
 * it at the loop's next action, unless it ends first; then it is wiped),
 * MW_ESTATE (no job waits for this ticket: it ended, was cancelled, or
 * was answered already; nothing kept), MW_EINVAL (loop NULL, ticket 0,
 * rc 0 without a token, len over 64 KiB), MW_ENOMEM. */
MW_EXTERN int mw_loop_token_answer(mw_loop *loop, uint64_t ticket, int rc, const char *token,
                                   size_t len, const mw_error *err);

/* What a job did, given to its done callback. */
typedef struct mw_loop_result {
    int code;            /* 0, or the negative MW_E* code (or a callback's stop value) */
    const mw_error *err; /* the detail; err->code == code */
    uint64_t messages;   /* messages on the server when the session listed them */
    uint64_t stored;     /* messages committed durably to the store */
    uint64_t deleted;    /* messages marked deleted (+OK to DELE) */
    uint64_t bytes;      /* message octets received (after dot-unstuffing) */
    int quit_ok;         /* 1: the server said +OK / 221 to QUIT (POP3: the deletions are done) */
    int sent;            /* SMTP: 1 once the server said 2xx to the end of the data */
} mw_loop_result;

typedef void (*mw_loop_done_fn)(mw_loop_job *job, const mw_loop_result *res, void *userdata);
/* After each message is committed to the store (and, without a plan
 * callback, mw_store_sync returned 0): its number, its unique-id
 * ("" without UIDL) and its size.  Return 0 to go on; any other value ends
 * the job like mw_loop_cancel, with that value as its result. */
typedef int (*mw_loop_stored_fn)(mw_loop_job *job, uint64_t msg, const char *uid, uint64_t size,
                                 void *userdata);

/* A listed message, as the plan callback sees it. */
typedef struct mw_loop_msg {
    uint64_t num;    /* its number in this session (RFC 1939 §5) */
    uint64_t size;   /* octets, as LIST gave them */
    const char *uid; /* its unique-id (UIDL), or NULL without one */
} mw_loop_msg;
/* What to do with a listed message (bits of the plan's actions[]). */
#define MW_LOOP_GET  1 /* RETR it into the store */
#define MW_LOOP_DELE 2 /* delete it on the server (when also GET: only once stored) */
/* Called once after LIST and UIDL.  actions[i] (for msgs[i]) starts as
 * MW_LOOP_GET, plus MW_LOOP_DELE unless keep; the callback may change any
 * of them.  Return 0 to go on; another value ends the job with it (no
 * DELE sent).  With a plan callback, deletions are deferred: they go in
 * one pipeline after every RETR was answered and the commit callback
 * returned 0. */
typedef int (*mw_loop_plan_fn)(mw_loop_job *job, const mw_loop_msg *msgs, size_t n,
                               unsigned char *actions, void *userdata);
/* With a plan: called once, after the last message was stored, after
 * mw_store_sync (so every message committed is durable) and before the
 * first DELE.  Make durable whatever records the stored messages (a
 * UIDL state file), then return 0; another value ends the job with it and
 * nothing is deleted. */
typedef int (*mw_loop_commit_fn)(mw_loop_job *job, void *userdata);
#define MW_LOOP_POP3_OPTS_VERSION 4
typedef struct mw_loop_pop3_opts {
    unsigned version;
    const char *host; /* a numeric IPv4 or IPv6 address, or a name (looked up on the loop) */
    unsigned port;    /* 0: 110, or 995 with MW_TLS_IMPLICIT */
    int tls; /* enum mw_tls_mode: MW_TLS_STARTTLS (default), MW_TLS_IMPLICIT or MW_TLS_NONE */
    /* Every field, as the blocking session takes it (the same
     * configuration and checks, src/net/tls_conf.c); policy_userdata must
     * live as long as the job.  NULL: defaults. */
    const mw_tls_opts *tls_opts;
    const char *user;
    const char *password;
    int allow_plaintext;    /* 1: USER/PASS without TLS allowed */
    int keep;               /* 1: no DELE */
    int connect_timeout_ms; /* default 30000 */
    int io_timeout_ms;      /* longest wait without progress; default 60000 */
    int max_time_ms;        /* the whole job; default 0 = no bound beyond the others */
    unsigned window;        /* RETR commands in flight with PIPELINING; default 16, max 1024 */
    mw_store *store;        /* borrowed; one job per store at a time */
    mw_loop_stored_fn stored;
    void *stored_userdata;
    mw_trace_fn trace;
    void *trace_userdata;
    mw_loop_plan_fn plan;     /* NULL: fetch every message (and delete it unless keep) */
    mw_loop_commit_fn commit; /* with plan; NULL: none */
    void *plan_userdata;      /* for plan and commit */
    /* > 0: an idle session instead of a fetch: connect, TLS, log in, then
     * stay, a NOOP (RFC 1939 §5) every idle_noop_ms, until cancelled or
     * the server closes; store may be NULL.  For watching many mailboxes
     * at little cost; the job ends only with an error or MW_ECANCELED. */
    int idle_noop_ms;
    /* Version 2.  How to log in, as mw_pop3_opts says it (pop3.h):
     * MW_POP3_AUTH_USER (the default of version 1), _AUTO, _APOP, _SASL
     * with sasl_mechs, _NONE (cmds only); sasl_ir, authzid and
     * trace_secrets as there; token as mw_pop3_opts.token.  A token
     * provider: mw_loop_set_token_provider (asynchronous). */
    int auth;
    const char *sasl_mechs;
    const char *authzid;
    int sasl_ir;
    int trace_secrets;
    const char *token; /* an OAuth 2.0 bearer token for XOAUTH2 / OAUTHBEARER */
    /* Version 3.  Through a proxy, as mw_net_opts.proxy (net.h):
     * "socks5://", "socks5h://" (the proxy looks the host up) or "http://"
     * (CONNECT), with user and password if any.  The proxy's name is looked
     * up on the loop; the handshake runs on the loop after the connect to
     * it, within a connect timeout of its own, before TLS, which verifies
     * the mail server, never the proxy.  NULL or "": none. */
    const char *proxy;
    /* Version 4.  As mw_pop3_opts says them (pop3.h): msex (commands end
     * in a bare LF), retr_mode (how a command sequence's RETR learns the
     * size, falling back as there).  tls may then also be
     * MW_TLS_OPPORTUNISTIC (STLS when CAPA offers it). */
    int msex;
    int retr_mode;
} mw_loop_pop3_opts;
#define MW_LOOP_POP3_OPTS_INIT                                                                     \
    {                                                                                              \
        MW_LOOP_POP3_OPTS_VERSION, NULL, 0, MW_TLS_STARTTLS, NULL, NULL, NULL, 0, 0, 30000, 60000, \
            0, 16, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0 /* MW_POP3_AUTH_AUTO */,   \
            NULL, NULL, 1, 0, NULL, NULL, 0, MW_POP3_RETR_RETR                                     \
    }

/* Adds a fetch of one POP3 account: connect, STLS, USER/PASS, LIST and
 * UIDL, RETR of every message (pipelined when the server offers
 * PIPELINING) into opts->store, DELE of each message only after its
 * commit and mw_store_sync returned 0 (unless keep), QUIT.  As the
 * blocking fetch (fetch.h), a RETR the server refuses, or a message that
 * is not of the size its reply announced ("+OK n octets"), costs that
 * message only: it is neither stored nor deleted, the others go on, and
 * the first such failure is the job's result after QUIT.  After a refused
 * RETR the replies in flight are read and dropped and asked for again.  The strings
 * of opts are copied; the store is borrowed until the job ends.  *out
 * (may be NULL) is the job, valid until its done callback returned.
 * Returns 0 (the job runs; done will be called), or MW_EINVAL,
 * MW_EUNSUPPORTED, MW_ENOMEM, MW_ENET (no socket), MW_ETOOBIG (max_jobs);
 * then nothing was added, done will not be called, and err says why. */
MW_EXTERN int mw_loop_add_pop3_fetch(mw_loop *loop, mw_loop_job **out,
                                     const mw_loop_pop3_opts *opts, mw_loop_done_fn done,
                                     void *userdata, mw_error *err);

/* A POP3 command sequence (RFC 1939 §5): after the login and a STAT (as
 * mw_pop3_open does), the commands one after the other, then QUIT. */
enum mw_loop_pop3_op {
    MW_LOOP_POP3_STAT = 1,
    MW_LOOP_POP3_LIST, /* msg 0: every message; else that one */
    MW_LOOP_POP3_UIDL, /* msg 0: every message; else that one */
    MW_LOOP_POP3_RETR,
    MW_LOOP_POP3_TOP, /* msg, lines */
    MW_LOOP_POP3_DELE,
    MW_LOOP_POP3_NOOP,
    MW_LOOP_POP3_RSET,
    MW_LOOP_POP3_LAST,
    MW_LOOP_POP3_CAPA,
};
typedef struct mw_loop_pop3_cmd {
    int op; /* enum mw_loop_pop3_op */
    uint64_t msg;
    uint64_t lines;
    /* RETR, TOP, DELE: > 0 makes msg..last a run, pipelined (RFC 2449
     * §6.6) in the job's window when the server offers PIPELINING, as
     * mw_pop3_retr_range / mw_pop3_dele_range send it; last is cut to the
     * STAT count (UINT64_MAX: through the last message), and a run whose
     * msg is past it is empty.  A DELE run stops at the first -ERR. */
    uint64_t last;
} mw_loop_pop3_cmd;
/* A run's msg: LAST + 1 (RFC 1460), or 1 when LAST fails, as
 * mw_pop3_range's "next" (LAST is sent first); as its last: the same
 * message as msg (no mailbox holds that many). */
#define MW_LOOP_POP3_NEXT (UINT64_MAX - 1)
/* What arrived for command `index`, in order: the status (kind
 * MW_LOOP_POP3_STATUS: data is the text after "+OK"), then for a multi-line
 * reply each listing or CAPA line (_LINE) or each piece of a message
 * (_DATA: octets as the server holds them, dot-unstuffed, CR LF kept),
 * then _END.  msg/value: STAT count and octets, a listing entry's number
 * and size (uid: its unique-id), LAST's number; for RETR, TOP and DELE
 * msg is the message's number, and at a RETR's _END value is the octets
 * received and lines the size its reply announced (UINT64_MAX: none).
 * A run gives status .. _END for each of its messages, in order, then an
 * _END with msg 0 for the whole run.  A -ERR ends the job instead (no QUIT: nothing
 * the sequence deleted is applied), with the error mw_pop3_* gives. */
#define MW_LOOP_POP3_STATUS 1
#define MW_LOOP_POP3_LINE   2
#define MW_LOOP_POP3_DATA   3
#define MW_LOOP_POP3_END    4
typedef struct mw_loop_pop3_reply {
    size_t index; /* into the commands */
    int op;
    int kind;
    const char *data;
    size_t len;
    uint64_t msg, value;
    const char *uid;
    uint64_t lines;
} mw_loop_pop3_reply;
/* Returns 0 to go on; another value ends the job like mw_loop_cancel,
 * with that value as its result. */
typedef int (*mw_loop_pop3_reply_fn)(mw_loop_job *job, const mw_loop_pop3_reply *r, void *userdata);
/* Adds a POP3 session that runs cmds[0..n) (copied) after the login and
 * a STAT, then QUIT; the same bytes as the blocking calls (pop3.h) send
 * for them.  A message number over STAT's count is refused before it is
 * sent, as there.  opts->store and the fetch callbacks are not used.
 * Returns as mw_loop_add_pop3_fetch. */
MW_EXTERN int mw_loop_add_pop3_cmds(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                                    const mw_loop_pop3_cmd *cmds, size_t n,
                                    mw_loop_pop3_reply_fn reply, void *reply_userdata,
                                    mw_loop_done_fn done, void *userdata, mw_error *err);

/* The end of a fetch added with mw_loop_add_fetch: res and err as
 * mw_fetch_account gives them (err->code is 0 on success). */
typedef void (*mw_loop_fetch_done_fn)(mw_loop_job *job, const mw_fetch_result *res,
                                      const mw_error *err, void *userdata);
/* Adds a fetch of one account as mw_fetch_account does it (fetch.h): the
 * state's lock taken here, the UIDL state, keep, only_new,
 * delete_after_days, size_limit / size_delete, batch and progress; each
 * message durable in the store and its UID in a saved state before any
 * DELE, QUIT last.  o->pop3 gives the port, TLS (STARTTLS, IMPLICIT or
 * NONE; tls_opts as in mw_loop_pop3_opts), user and password, allow_plaintext,
 * net's connect_timeout_ms / io_timeout_ms / max_time_ms / family,
 * pipelining, window and trace, the login (auth, sasl_mechs, authzid,
 * sasl_ir, token, token_fn, msex), net's proxy.  The filter (o->filter)
 * runs as in mw_fetch_account: TOP n 0 pipelined, the command run on each
 * message's headers as they arrive; it runs beside the loop's other jobs
 * (its stdin and exit are events of the job, no signal handler), the job
 * waiting for its verdict, killed past filter_timeout_ms.  A token
 * provider (token_fn) is called synchronously: the loop's other jobs
 * wait while it runs; one set with mw_loop_set_token_provider right
 * after this call is used instead and need not block.  A RETR
 * or TOP reply far past its bound leaves that message on the server and,
 * as there, the job logs in again (a new connection) and goes on when the
 * new listing matches the plan.  net's rate floor is the job's
 * (mw_loop_set_speed_limit).  Not on the loop yet, refused with
 * MW_EUNSUPPORTED: a caller's stream.  A host name is
 * looked up on the loop, for net's family, not in this call; the
 * certificate is checked against that name.  Strings of o are used during
 * this call only.  Returns 0 (done will be called), or the codes of
 * mw_fetch_account's setup and of mw_loop_add_pop3_fetch; then nothing
 * was added and err says why. */
MW_EXTERN int mw_loop_add_fetch(mw_loop *loop, mw_loop_job **out, const mw_fetch_opts *o,
                                mw_loop_fetch_done_fn done, void *userdata, mw_error *err);
/* What a POP3 job (mw_loop_add_pop3_fetch, mw_loop_add_pop3_cmds)
 * learned before its login, as `mailwire pop3 serverinfo` shows it.
 * Valid during the job's reply callbacks (the first comes after the
 * login and STAT; with auth MW_POP3_AUTH_NONE right after the open's CAPA
 * and STLS), not in its done callback: the job is gone then.  For a job
 * of another kind, or NULL: NULL, 0, MW_EINVAL.
 * greeting: the text after "+OK" (printable), "" before it came.
 * capa_known: 1 when the last CAPA before the login (RFC 2449 §5; after
 *   STLS the one over TLS), or a MW_LOOP_POP3_CAPA_IF_NONE command sent
 *   since, said +OK; 0 when refused or not asked yet.
 * capa_count / capa_line: that CAPA's lines (printable, none empty, at
 *   most 128), for a command sequence only (a fetch keeps none: 0, NULL).
 * tls_info: the handshake's details as mw_stream_tls_info gives them
 *   (net.h), for a command sequence over TLS; MW_EUNSUPPORTED (and *out
 *   zeroed) without TLS or for a fetch. */
MW_EXTERN const char *mw_loop_pop3_greeting(const mw_loop_job *job);
MW_EXTERN int mw_loop_pop3_capa_known(const mw_loop_job *job);
MW_EXTERN size_t mw_loop_pop3_capa_count(const mw_loop_job *job);
MW_EXTERN const char *mw_loop_pop3_capa_line(const mw_loop_job *job, size_t i);
MW_EXTERN int mw_loop_pop3_tls_info(const mw_loop_job *job, mw_tls_info *out);
/* As a CAPA command's lines: CAPA is sent only when the session knows no
 * capability line (the open's CAPA was refused or empty); otherwise its
 * reply is the kept lines (status text ""), nothing sent.  A -ERR to it is
 * its answer, not an error: STATUS with value 1, END, the sequence goes
 * on.  With auth MW_POP3_AUTH_NONE, the moment to read the facts above
 * without another round trip when the server lists capabilities. */
#define MW_LOOP_POP3_CAPA_IF_NONE 1
#define MW_LOOP_SMTP_OPTS_VERSION 6
typedef struct mw_loop_smtp_opts {
    unsigned version;
    const char *host; /* a numeric IPv4 or IPv6 address, or a name (looked up on the loop) */
    unsigned port;    /* 0: 587, or 465 with MW_TLS_IMPLICIT */
    int tls; /* enum mw_tls_mode: MW_TLS_STARTTLS (default), IMPLICIT, NONE or OPPORTUNISTIC */
    const mw_tls_opts *tls_opts; /* as in mw_loop_pop3_opts */
    const char *user;            /* AUTH (RFC 4954) when set, or with a token */
    const char *password;
    int allow_plaintext; /* 1: AUTH without TLS allowed */
    const char *helo;    /* the EHLO name; default as mw_smtp_open's client */
    const char *from;    /* the envelope sender ("" for the null path) */
    const char *const *rcpt;
    size_t nrcpt;
    const char *message; /* the message (header and body, any line ends); borrowed
                            until the job ends */
    size_t message_len;
    int connect_timeout_ms; /* default 30000 */
    int io_timeout_ms;      /* default 60000 */
    int max_time_ms;        /* default 0 = none */
    mw_trace_fn trace;
    void *trace_userdata;
    /* Version 2.  msg: the message as mw_smtp_send takes it (smtp.h), its
     * envelope, header rewrite, DSN, SIZE, BODY, SMTPUTF8 and PIPELINING
     * as the blocking session does them, BDAT (CHUNKING, BINARYMIME)
     * included; from, rcpt and message are then unused.  Not on the loop
     * yet (MW_EUNSUPPORTED): bcc_digest.  Borrowed until the job ends; a
     * read callback or fd source is read from inside the loop (as long as
     * it takes). */
    const mw_smtp_msg *msg;
    /* Version 2, may be NULL: *result gets the transaction's result (free
     * it with mw_smtp_result_free), NULL when the job ended before the
     * transaction; *ready becomes 1 once greeting, EHLO, TLS and AUTH are
     * done (a failure before is the session's, after it the message's). */
    mw_smtp_result **result;
    int *ready;         /* -1: it failed in AUTH (mw_smtp_open would try no other server) */
    const char *auth;   /* version 2: as mw_smtp_opts.sasl_mechs; NULL: the strongest offered */
    int tx_max_time_ms; /* version 2: from MAIL to the last reply, as mw_smtp_set_maxtime; 0 none */
    int queue;          /* version 2: QUED when the server offers XQUE, as mw_smtp_opts.queue */
    const char *token;  /* version 2: an OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER) */
    /* Version 2: with msg->body MW_SMTP_BODY_BINARYMIME and a server that
     * offers not both BINARYMIME and CHUNKING, the message goes re-encoded
     * as 7-bit (mw_smtp_downgrade_7bit, read whole first: up to 256 MiB),
     * BODY=7BIT, instead of being refused. */
    int downgrade;
    const char *proxy; /* version 3: as in mw_loop_pop3_opts */
    /* Version 4: a token provider, as mw_smtp_opts.token_fn (token.h):
     * asked for the XOAUTH2/OAUTHBEARER token when token is NULL, and once
     * more with refused = 1 after the server refused it, then AUTH again
     * on the same connection.  Called synchronously: the loop's other jobs
     * wait while it runs (token_async, version 6, need not block). */
    mw_token_fn token_fn;
    void *token_userdata;
    /* Version 5, as mw_smtp_opts says them (smtp.h): authzid (act as this
     * user), sasl_ir (1, the default: the initial response on the AUTH
     * line; 0: after the server's empty 334) and trace_secrets (1: AUTH
     * lines traced unmasked).  Older versions: NULL, 1, 0. */
    const char *authzid;
    int sasl_ir;
    int trace_secrets;
    /* Version 6: an asynchronous token provider (mw_loop_token_fn), used
     * instead of token_fn; the loop's other jobs run while it works. */
    mw_loop_token_fn token_async;
    void *token_async_userdata;
} mw_loop_smtp_opts;
#define MW_LOOP_SMTP_OPTS_INIT                                                                     \
    {                                                                                              \
        MW_LOOP_SMTP_OPTS_VERSION, NULL, 0, MW_TLS_STARTTLS, NULL, NULL, NULL, 0, NULL, NULL,      \
            NULL, 0, NULL, 0, 30000, 60000, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0,  \
            NULL, NULL, NULL, NULL, 1, 0, NULL, NULL                                               \
    }

/* Adds a send of one message, saying what mw_smtp_open and mw_smtp_send
 * say to one server: EHLO (HELO after a 5xx but 554), STARTTLS (RFC 3207)
 * and EHLO again, AUTH when a user, token or token_fn is set (the
 * mechanisms and the fallback of mw_smtp_open, the -PLUS ones bound to
 * the loop's TLS connection as there: RFC 9266, else RFC 5929), MAIL,
 * RCPT for each recipient, DATA with the message dot-stuffed and its line
 * ends made CRLF (RFC 5321 §4.5.2) or BDAT, pipelined when offered (RFC
 * 2920), RSET after a refusal, QUIT.  Without msg every recipient must be
 * accepted and AUTH is PLAIN whenever offered (opts.auth "PLAIN").
 * result.sent is 1 once the server accepted the data.  Returns as
 * mw_loop_add_pop3_fetch. */
MW_EXTERN int mw_loop_add_smtp_send(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                                    mw_loop_done_fn done, void *userdata, mw_error *err);

/* A batch of messages over one SMTP session, as mw_smtp_send_batch sends
 * them (smtp.h): the next message is asked for once the session is ready
 * and after each transaction; RSET after a failed one; with PIPELINING
 * (and no BDAT, Bcc digest or downgrade) the next envelope goes out in the
 * same write as the end of the previous message's data (RFC 2920 §3.1),
 * and while the replies to both are awaited that message's data is
 * encoded and the one after it asked for (so up to three are in hand).
 * next(job, index, msg, ud): fill *msg (it arrives as MW_SMTP_MSG_INIT),
 *   return 1; 0 when there are no more (QUIT follows); a negative mw_code
 *   ends the batch with it.  What msg points to must stay valid until the
 *   message's done was called.
 * done(job, index, rc, result, err, ud): exactly once for every message
 *   next gave, in order, with what mw_smtp_send would return for it;
 *   result (NULL when the transaction never reached the envelope) and
 *   err are valid only during the call.  A message in hand when the
 *   session dies gets MW_ESTATE.  mw_loop_smtp_alive says whether the
 *   session goes on after it (mw_smtp_alive). */
typedef int (*mw_loop_smtp_next_fn)(mw_loop_job *job, size_t index, mw_smtp_msg *msg,
                                    void *userdata);
typedef void (*mw_loop_smtp_msg_fn)(mw_loop_job *job, size_t index, int rc,
                                    const mw_smtp_result *result, const mw_error *err,
                                    void *userdata);
#define MW_LOOP_SMTP_BATCH_VERSION 1
typedef struct mw_loop_smtp_batch {
    unsigned version;
    mw_loop_smtp_next_fn next;
    mw_loop_smtp_msg_fn done;
    void *userdata;            /* for next and done */
    int no_message_pipelining; /* 1: each envelope waits for the previous final reply */
} mw_loop_smtp_batch;
#define MW_LOOP_SMTP_BATCH_INIT                                                                    \
    {                                                                                              \
        MW_LOOP_SMTP_BATCH_VERSION, NULL, NULL, NULL, 0                                            \
    }
/* Adds a batch: the session of mw_loop_add_smtp_send (opts: its
 * connection, TLS, AUTH, tx_max_time_ms for each message, ready; msg,
 * from, rcpt, message and result are not used), then the messages of
 * b->next.  The job's result: 0 when every message was tried (each one's
 * outcome went to b->done), next's negative code, or the failure that
 * ended the session (before it was ready: no message was asked for);
 * res->messages counts the messages taken, res->sent those accepted.
 * Returns as mw_loop_add_pop3_fetch. */
MW_EXTERN int mw_loop_add_smtp_batch(mw_loop *loop, mw_loop_job **out,
                                     const mw_loop_smtp_opts *opts, const mw_loop_smtp_batch *b,
                                     mw_loop_done_fn done, void *userdata, mw_error *err);
/* 1 while a batch job's session can take another message (from inside
 * its callbacks: not dead, QUIT not sent), else 0. */
MW_EXTERN int mw_loop_smtp_alive(const mw_loop_job *job);
/* The session of an SMTP job (send or batch) as the blocking accessors
 * read one: mw_smtp_greeting, mw_smtp_ehlo_text, mw_smtp_esmtp,
 * mw_smtp_server, mw_smtp_is_tls, mw_smtp_auth_mech, and for a batch
 * mw_smtp_tls_info, say of it what they say of mw_smtp_open's session
 * (a batch's next callback, asked once the session is ready, sees it
 * whole: `mailwire smtp capa` prints it there).  Valid during the job's
 * callbacks; NULL for a job of another kind.  Not for mw_smtp_send,
 * mw_smtp_quit or mw_smtp_free. */
MW_EXTERN const mw_smtp *mw_loop_smtp_session(mw_loop_job *job);

#ifdef __cplusplus
}
#endif
#endif
