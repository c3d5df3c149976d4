/* Internal: the POP3 job of the loop, shared by its files.
 *   pop3_job.c    the session: connect, greeting, CAPA, STLS, the reply
 *                 dispatch, the job's hooks and constructors;
 *   pop3_login.c  USER/PASS, APOP and SASL (over src/sasl/driver.h);
 *   pop3_fetch.c  a fetch into a store: LIST/UIDL, RETR window, DELE;
 *   pop3_cmds.c   a command sequence (mw_loop_add_pop3_cmds), or the
 *                 commands of a held job, one call at a time;
 *   pop3_top.c    the fetch filter's TOP runs;
 *   pop3_reopen.c a fetch's next session after a reply cut past its bound;
 *   pop3_drive.c  the job over a blocking stream (mw_fetch_account, pop3.h);
 *   pop3_held.c   the blocking POP3 API's job, held between its commands.
 * One state variable, changed only by mwi_p3l_set_state (traced). */
#ifndef MW_LOOP_POP3_JOB_H
#define MW_LOOP_POP3_JOB_H

#include "loop/lconn.h"
#include "loop/loop_int.h"
#include "proto/pop3_codec.h"
#include "util/buf.h"

#include <stdint.h>

#define P3L_IN_CAP      (32 * 1024) /* input buffer: a few reads' worth */
#define P3L_IDLE_IN_CAP 2048        /* an idle session's input buffer */
#define P3L_LINE_MAX    8192        /* a status or listing line */
#define P3L_CMD_MAX     255         /* RFC 2449 §4 */
#define P3L_WINDOW_MAX  1024
#define P3L_MAX_MSGS    (1000u * 1000)
#define P3L_READ_BUDGET (256 * 1024) /* bytes per step before yielding to other jobs */

enum p3l_state {
    S_CONNECTING,
    S_HANDSHAKE,
    S_GREETING,
    S_CAPA,
    S_STLS,
    S_USER,
    S_PASS,
    S_LIST,
    S_TRANSFER,
    S_QUIT,
    S_IDLE,
    S_DONE,
    S_AUTH,
    S_STAT,
    S_COMMANDS,
    S_TOP,  /* the fetch filter's TOP runs (pop3_top.c) */
    S_HELD, /* waiting for the owner's next command (pop3_held.c) */
};

/* What a command in flight was (the reply is matched to it). */
enum p3l_kind {
    K_GREET,
    K_CAPA,
    K_STLS,
    K_USER,
    K_PASS,
    K_LIST,
    K_UIDL,
    K_RETR,
    K_DELE,
    K_QUIT,
    K_NOOP,
    K_LAST,
    K_AUTH, /* a line of a SASL exchange */
    K_APOP,
    K_STAT,
    K_CMD, /* a command of the caller's sequence (pop3_cmds.c) */
    K_TOP, /* TOP n 0 for the fetch filter; arg: index into msgs */
};
extern const char *const mwi_p3l_kind_name[];

enum p3l_mode { P3L_FETCH, P3L_IDLE, P3L_CMDS };
/* Sent before a command of a sequence (pop3_cmds.c): LIST n or LIST
 * (retr_mode list), LAST (a run from MW_LOOP_POP3_NEXT). */
enum p3l_pre { P3L_PRE_NONE, P3L_PRE_LIST_ONE, P3L_PRE_LIST_ALL, P3L_PRE_LAST };

typedef struct p3l_msg {
    uint64_t num, size;
    char *uid;
    unsigned char act; /* MW_LOOP_GET | MW_LOOP_DELE */
    unsigned char stored;
    unsigned char seen; /* in a new session's listing (pop3_reopen.c) */
} p3l_msg;

typedef struct p3l_cmd {
    int kind;
    uint64_t arg;
} p3l_cmd;

struct mwi_sasld;

typedef struct p3l {
    mw_loop_job *job;
    int state;
    int mode;    /* enum p3l_mode */
    mwi_lconn c; /* the connection half: socket, TLS, buffers, deadlines */
    char *user, *password, *authzid, *sasl_mechs, *token;
    int auth; /* enum mw_pop3_auth_mode (pop3.h) */
    int sasl_ir, trace_secrets;
    int tls_mode, allow_plaintext, keep;
    int connect_timeout_ms;
    int idle_noop_ms; /* > 0: an idle session (loop.h) */
    unsigned window;
    char timestamp[256];  /* APOP: the greeting's, brackets included, or "" */
    char greeting[512];   /* its text, printable */
    char *sasl_offered;   /* CAPA's SASL line (its mechanisms), or NULL */
    int capa_resp_codes;  /* CAPA lists AUTH-RESP-CODE (RFC 3206 §6) */
    struct mwi_sasld *sd; /* the SASL exchange under way */
    int in_auth;          /* server "+ " lines are masked in traces */
    /* fetch (pop3_fetch.c) */
    mw_store *store;
    mw_loop_stored_fn stored;
    void *stored_ud;
    mw_loop_plan_fn plan;     /* set: deletions deferred until commit (below) */
    mw_loop_commit_fn commit; /* called once before the first deferred DELE */
    void *plan_ud;
    int committed;    /* the commit callback said 0 */
    size_t next_dele; /* deferred DELE cursor into msgs */
    int capa_stls, capa_pipelining, capa_uidl;
    int capa_known; /* CAPA said +OK */
    int capa_lines;
    int ml;      /* in a multi-line reply of this kind (K_CAPA, K_LIST, K_UIDL, K_CMD), or -1 */
    int in_body; /* in a RETR body */
    mw_pop3_body body;
    size_t body_msg; /* index into msgs */
    p3l_cmd *q;      /* commands in flight, a ring of q_cap */
    size_t q_cap, q_head, q_len;
    p3l_msg *msgs;
    size_t nmsgs, msgs_cap;
    size_t next_retr;
    int list_done, uidl_done;
    mw_error first_err; /* the first message-level failure (pop3_fetch.c) */
    mwi_loop_msg_error_fn msg_error;
    mwi_loop_msg_error_fn store_error; /* with msg_error_ud */
    mw_token_fn token_fn;              /* called synchronously (pop3_login.c) */
    void *token_ud;
    void *msg_error_ud;
    int uid_mode;  /* 2: UIDL answered, 1: LAST instead, 0: neither (RFC 1460) */
    uint64_t last; /* LAST's answer */
    int uidl_refused;
    /* The size a RETR reply announced ("+OK 120 octets"), checked against
     * what came; UINT64_MAX: none.  After a reply without one, no more
     * checks: src/pop3 then switches to LIST sizes for good (retr_mode). */
    uint64_t declared;
    int no_retr_size;
    /* After a refused RETR, as src/fetch: the replies in flight are read
     * and dropped (body_discard), then the RETRs start again after it. */
    int retr_drain, body_discard;
    size_t retr_restart;
    /* the fetch filter's TOP runs (pop3_top.c): a run is top_lo..top_hi
     * (indexes into msgs), TOPs sent up to top_next, answered up to
     * top_got; after a failure none past top_end, the run going on after
     * top_bad */
    mwi_loop_headers_fn headers;
    mwi_loop_top_fail_fn top_fail;
    void *headers_ud;
    size_t top_lo, top_hi, top_next, top_got, top_end, top_bad;
    int top_stopped, in_top;
    mwi_loop_hdr_wait_fn headers_wait; /* a filter that decides later */
    mwi_loop_hdr_drop_fn headers_drop;
    int top_wait; /* msgs[body_msg] waits for headers_wait: no reply taken */
    mw_buf hdr;   /* the headers of the TOP being read, bounded */
    /* a new session after a reply cut past its bound (pop3_reopen.c) */
    uint64_t max_message;  /* the caller's cap on a message's octets (0: none) */
    int reopen_pending;    /* close and reconnect once process() is out */
    int relist;            /* the new session's LIST/UIDL is being checked */
    int reopen_top;        /* the cut reply was a TOP: go on with the filter */
    size_t reopen_after;   /* go on from this index into msgs */
    size_t max_line;       /* a status or listing line (mwi_loop_pop3_set_max_line) */
    uint64_t window_bytes; /* RETR: LIST sizes in flight at most (0: commands only) */
    int given_fd;          /* the caller's connection (the _fd constructors): none again */
    /* a command sequence (pop3_cmds.c) */
    mw_loop_pop3_cmd *cmds;
    size_t ncmds, next_cmd;
    mw_loop_pop3_reply_fn reply;
    void *reply_ud;
    uint64_t count; /* STAT's */
    int have_count;
    size_t ml_n; /* entries of the listing being read */
    /* a run of RETR/TOP/DELE (mw_loop_pop3_cmd.last) */
    uint64_t run_next, run_got, run_end; /* next to send, next to answer, last */
    mw_error run_err;                    /* a DELE run's first -ERR */
    /* retr_mode (pop3.h), falling back as src/pop3's: RETR without a
     * size in its reply -> LIST, LIST n refused -> SLOW, for good */
    int retr_mode;
    int pre;            /* P3L_PRE_*: what was sent before the caller's command */
    uint64_t list_size; /* LIST n's answer for the RETR that follows */
    /* held (pop3_held.c): after the login the job waits for its owner's
     * next command instead of sending QUIT; CAPA's lines are kept */
    int held, no_stat;
    int quiet; /* traces only what src/pop3 traced (no states, no connects) */
    char **capa_kept;
    size_t ncapa_kept;
    char auth_used[48];              /* "USER", "APOP", "SASL PLAIN", "" */
    int want_pipe;                   /* mw_pop3_opts.pipelining: LIST and UIDL go out together */
    mw_error cmd_err;                /* the last command's failure that left the job held */
    int stop_rc;                     /* the owner's callback said stop: a run sends no more */
    const mw_pop3_listing *run_list; /* a run over these (indexes 1..run_n), borrowed */
    size_t run_n;
    int run_go_on;                     /* a run goes on after an -ERR (mw_pop3_dele_msgs) */
    uint64_t run_bytes, run_max_bytes; /* LIST sizes in flight, and the most (0: no limit) */
    unsigned run_max_cmds;             /* commands in flight at most (0: the window) */
    int lenient_uidl;   /* a UIDL line with a bad unique-id gives uid "" (mw_pop3_list_uidl) */
    size_t sent_ahead;  /* the command sent with the one before it (0: none) */
    uint64_t announced; /* the size a RETR reply is bounded by (UINT64_MAX: none) */
    char cur_cmd[64];   /* the caller's command or login line in flight, as errors name it */
    char body_what[48]; /* "RETR 2", "TOP 2": the message being read */
} p3l;

/* pop3_drive.c: the job over a blocking stream (external I/O, lconn.h).
 * Set p, host, tls_opts, net (while connecting), io_timeout_ms, cancel,
 * given (the caller's stream, taken), command_timeout_ms (the greeting
 * to the login as a whole; 0: none) and deadline (MW_NO_DEADLINE). */
typedef struct p3l_drive {
    p3l *p;
    const char *host;
    const mw_tls_opts *tls_opts;
    const mw_net_opts *net;
    int io_timeout_ms, command_timeout_ms;
    mw_cancel *cancel;
    mw_stream *s, *given;
    int used_given;
    int64_t deadline; /* the command's as a whole, or MW_NO_DEADLINE */
} p3l_drive;
/* Runs the job until it ends, or until until(p) says 1 (NULL: never)
 * with nothing left to write. */
void mwi_p3l_drive(p3l_drive *d, int (*until)(const p3l *p));
/* After the job was given a command: writes it, then lets the job take
 * what came before it was sent (a held job leaves it waiting). */
void mwi_p3l_drive_resume(p3l_drive *d);
/* Frees the stream (and a caller's stream never used). */
void mwi_p3l_drive_free(p3l_drive *d);

/* pop3_job.c: a command-sequence job for a driver, held after its
 * login (pop3_held.c). */
int mwi_p3l_held_new(mw_loop_job **out, const mw_loop_pop3_opts *opts, mw_error *err);
/* A held job's event (mw_loop_pop3_reply.kind) for a command that failed
 * and left it usable: its error is p->cmd_err. */
#define P3L_FAIL 5
/* pop3_cmds.c: the owner's next command (n 1), or LIST and UIDL together
 * (n 2, pipelined when offered and wanted); the job must be held. */
void mwi_p3l_push(p3l *p, const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                  void *ud);
/* QUIT now, then the end. */
void mwi_p3l_held_quit(p3l *p);
/* pop3_job.c: the job's hooks (a job is a POP3 job when its ops are these). */
extern const mwi_job_ops mwi_p3l_ops;
/* pop3_held.c: CAPA's lines, kept for a command sequence (held or not). */
void mwi_p3l_capa_keep(p3l *p, const char *l, size_t len);
void mwi_p3l_capa_forget(p3l *p);

void mwi_p3l_set_state(p3l *p, int st);
/* Ends the job (no QUIT unless answered already); the message is made
 * with printf. */
void mwi_p3l_end(p3l *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Queues a command line (CR LF added); arg: RETR's index into msgs, DELE's
 * number, a K_CMD's index into cmds.  `shown` (NULL: the line) is what
 * the trace and errors show.  Returns 0, or -1 when the job ended. */
int mwi_p3l_send(p3l *p, int kind, const char *line, uint64_t arg, const char *shown);
void mwi_p3l_err_command(p3l *p, const p3l_cmd *c);
/* A -ERR ends the job with the blocking session's error for it. */
void mwi_p3l_refuse(p3l *p, const p3l_cmd *c, const mw_pop3_status *st, int code);
void mwi_p3l_trace_recv(p3l *p, const char *l, size_t len);

/* pop3_login.c: after CAPA (and STLS): log in as opts say, then
 * mwi_p3l_logged_in. */
void mwi_p3l_login(p3l *p);
/* The reply to a login command (K_USER, K_PASS, K_APOP, K_AUTH). */
void mwi_p3l_login_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st);
void mwi_p3l_logged_in(p3l *p);
void mwi_p3l_login_free(p3l *p);

/* pop3_fetch.c */
void mwi_p3l_fetch_start(p3l *p);
void mwi_p3l_fetch_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st);
void mwi_p3l_fetch_line(p3l *p, const char *l, size_t len);
void mwi_p3l_fetch_ml_end(p3l *p, int kind);
void mwi_p3l_fetch_body(p3l *p, size_t *pos);
void mwi_p3l_msg_failed(p3l *p, uint64_t num, int code, const char *command, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void mwi_p3l_fill_window(p3l *p);
/* The listed message of that number (msgs is in ascending order), or NULL. */
p3l_msg *mwi_p3l_find_msg(p3l *p, uint64_t num);

void mwi_p3l_transfer(p3l *p);

/* pop3_reopen.c */
uint64_t mwi_p3l_bound(uint64_t announced, uint64_t cap);
/* src/pop3's words for a reply past its bound, into why. */
void mwi_p3l_past_bound(const p3l *p, uint64_t announced, uint64_t bound, char *why, size_t cap);
/* The reply to msgs[idx] was cut: that message is left, and with a plan
 * a new session goes on after it (top: in the filter's TOP runs). */
void mwi_p3l_reopen_after(p3l *p, size_t idx, int top);
void mwi_p3l_reopen(p3l *p);
void mwi_p3l_relist_line(p3l *p, const char *l, size_t len);
void mwi_p3l_relist_end(p3l *p, int kind);

/* pop3_top.c */
void mwi_p3l_top_start(p3l *p);
void mwi_p3l_top_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st);
void mwi_p3l_top_body(p3l *p, size_t *pos);
/* The TOP runs again from msgs[from], in a new session. */
void mwi_p3l_top_resume(p3l *p, size_t from);
/* The job's step: lconn.c's, unless a filter's decision is awaited. */
void mwi_p3l_top_step(p3l *p, int events);

/* pop3_cmds.c */
void mwi_p3l_cmds_start(p3l *p);
void mwi_p3l_cmds_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st);
void mwi_p3l_cmds_line(p3l *p, const char *l, size_t len);
void mwi_p3l_cmds_ml_end(p3l *p);
void mwi_p3l_cmds_body(p3l *p, size_t *pos);

#endif
