/* Internal: the loop's SMTP send job, in four files: smtp_job.c the
 * session (connect, greeting, EHLO/HELO, STARTTLS, AUTH PLAIN, QUIT, the
 * connection hooks, adding the job), smtp_auth.c AUTH through the SASL
 * driver, smtp_tx.c the transaction (MAIL,
 * RCPT, DATA, pipelined as RFC 2920 allows, RSET), and smtp_batch.c the
 * messages of a batch one after another on the session.  Both say what the
 * blocking session (src/smtp/) says: the transaction is prepared by its
 * own I/O-free code (mwi_smtp_tx_prepare, envelope.c, message.c's
 * encoder) run on `sh`, a session shell without a connection, so the
 * commands, the result and the error texts are the same. */
#ifndef MW_LOOP_SMTP_JOB_H
#define MW_LOOP_SMTP_JOB_H

#include "loop/lconn.h"
#include "loop/loop_int.h"
#include "smtp/smtp_int.h"

enum sj_state {
    S_CONNECTING,
    S_HANDSHAKE,
    S_GREETING,
    S_EHLO,
    S_HELO,
    S_STARTTLS,
    S_QUED,
    S_AUTH,
    S_ENVELOPE, /* the replies to MAIL, RCPT..., DATA */
    S_DATA,     /* DATA sent alone (no pipelining, or after the RCPTs) */
    S_BODY,
    S_RSET,
    S_QUIT,
    S_BYE,  /* QUIT sent after a failure to open: no reply awaited */
    S_HELD, /* a held batch between messages: nothing in flight (smtp_batch.c) */
    S_DONE
};

typedef struct sj {
    mw_loop_job *job;
    int state;
    mwi_lconn c; /* the connection half: socket, TLS, buffers, deadlines */
    mw_smtp *sh; /* the shell: caps, err, rep (= reply), server, hostname */
    char *user, *password, *auth, *token;
    mw_token_fn token_fn; /* version 4: the token provider (token.h) */
    void *token_ud;
    char *authzid;     /* version 5: as mw_smtp_opts.authzid */
    int no_ir;         /* version 5: !sasl_ir */
    int trace_secrets; /* version 5: AUTH lines traced unmasked */
    /* A held driver's (smtp_held.c): mw_smtp_opts.tlspolicy, asked when
     * STARTTLS is missing or refused, as src/smtp asked it. */
    mw_smtp_tlspolicy_fn tlspolicy;
    void *tlspolicy_ud;
    struct mwi_sasld *sd; /* AUTH in progress (smtp_auth.c) */
    int tls_mode, allow_plaintext, connect_timeout_ms;
    int ready, dead;     /* dead: a 421 or a broken connection: no QUIT */
    int in_auth;         /* AUTH started: a failure now stops a failover */
    int queue;           /* QUED when XQUE is offered */
    int downgrade;       /* opts.downgrade: a binary message re-encoded when needed */
    char *whole, *seven; /* --downgrade: the message read whole, and as 7-bit */
    size_t whole_len, seven_len;
    int plain_ok;   /* opportunistic TLS: STARTTLS not offered or refused */
    int after_stls; /* EHLO after STARTTLS: its text is mw_smtp_ehlo_text(s, 1) */
    int tx_max_time_ms;
    mw_smtp_reply *reply;
    const char *waiting; /* what the reply awaited answers (error texts) */
    /* The message: the caller's (v2), or one made of from/rcpt/message. */
    const mw_smtp_msg *msg;
    mw_smtp_msg own;
    char **own_rcpt, *own_from; /* own's envelope, copied */
    size_t nown;
    const char *auth_more; /* the mechanism to try after PLAIN */
    mwi_smtp_tx t;
    char *chunk; /* MWI_SMTP_CHUNK octets: a stream source is read into it */
    size_t owed, rcpt_sent, rcpt_got;
    int mail_code, body_queued, end_rc;
    /* BDAT (RFC 3030): replies owed, chunks sent, the first refusal. */
    size_t bdat_owed, bdat_chunks;
    int bdat_rc;
    mw_error bdat_err;
    /* A batch: a BDAT transfer failed, RSET goes before the next MAIL
     * (RFC 3030 §2); that RSET's reply is owed first. */
    int bdat_dirty, rset_owed;
    mw_error mail_err, end_err; /* MAIL's refusal; the outcome kept through RSET/QUIT */
    /* The Bcc digest (bcc.c), a second transaction after the first: 1
     * while it runs, 2 once done; the first's result, outcome and envelope
     * (its Bcc list) kept meanwhile. */
    int bcc_state, bcc_sent;
    char *bcc_built;
    mw_smtp_msg bcc_msg;
    mw_smtp_result *main_res;
    int main_rc;
    mw_error main_err;
    mw_smtp_env main_env;
    mw_smtp_result **result_out;
    int *ready_out;
    struct sjb *b; /* a batch (smtp_batch.c), or NULL: one message */
} sj;

/* ---- smtp_job.c ---- */
void mwi_sj_set_state(sj *p, int st);
/* Queues one command; `shown` is what the trace and mw_error show. */
int mwi_sj_send(sj *p, int st, const char *line, size_t len, const char *shown, const char *what);
/* The job's end after the session was ready: code and sh->err kept, then
 * RSET (reset) and QUIT unless the connection is dead. */
void mwi_sj_finish(sj *p, int code, int reset);
/* Ends the job now with sh->err (code 0: success). */
void mwi_sj_end(sj *p, int code);

/* The session is ready (after AUTH, if any): the transaction starts. */
void mwi_sj_session_ready(sj *p);
/* A failure before the session was ready, as mw_smtp_open's failover says
 * it ("HOST port N: why"), QUIT when the server can still hear. */
void mwi_sj_open_fail(sj *p, int code);

/* A job for a blocking driver (smtp_held.c): external I/O (lconn.h), not
 * attached to a loop; freed with mwi_sj_external_free. */
int mwi_sj_external_new(mw_loop_job **out, const mw_loop_smtp_opts *opts,
                        const mw_loop_smtp_batch *b, mw_error *err);
void mwi_sj_external_free(mw_loop_job *j);

/* The send or batch job's state (also once over), or NULL (another kind). */
sj *mwi_sj_of(const mw_loop_job *job);

/* ---- smtp_auth.c ---- */
/* AUTH through the SASL driver: started, a reply fed, freed. */
void mwi_sj_auth_start(sj *p);
/* smtp_auth.c: the token providers of o (token_fn; token_async, ltoken.h). */
void mwi_sj_auth_opts(sj *p, const mw_loop_smtp_opts *o);
void mwi_sj_auth_reply(sj *p);
void mwi_sj_auth_free(sj *p);

/* ---- smtp_tx.c ---- */
/* The session is ready: prepare the transaction and send its envelope. */
void mwi_sj_tx_start(sj *p);
/* The envelope of the transaction prepared in p->t, from MAIL on. */
void mwi_sj_tx_send(sj *p);
/* A complete reply in the transaction's states. */
void mwi_sj_tx_reply(sj *p);
/* Keeps the output fed with the message while in S_BODY. */
void mwi_sj_tx_feed(sj *p);
/* After a failed write during the data: the server's reply, when it sent
 * one before closing, is the outcome (1: the job ends with it), or 0. */
int mwi_sj_salvage_reply(sj *p, const char *why);
/* The transaction is over (after RSET when one was owed): the Bcc copy
 * when the message asks for one, else QUIT. */
void mwi_sj_tx_after(sj *p);
/* Hands the result out and frees the transaction's parts. */
void mwi_sj_tx_free(sj *p);

/* ---- smtp_batch.c ---- */
/* Sets up a batch on p (the callbacks checked).  0, or an error code. */
int mwi_sjb_new(sj *p, const mw_loop_smtp_batch *b, mw_error *err);
void mwi_sjb_free(sj *p);
/* The session is ready: the first message. */
void mwi_sjb_start(sj *p);
/* The transaction (and its Bcc copy) is over, with p->end_rc and
 * p->end_err: the message is reported, the next one starts or QUIT. */
void mwi_sjb_after(sj *p);
/* The end of a message's data is queued: the next envelope behind it,
 * when RFC 2920 §3.1 allows. */
void mwi_sjb_cross(sj *p);
/* The job ends with code: the messages in hand are reported. */
void mwi_sjb_abandon(sj *p, int code);
/* Nothing to write, replies awaited: the next messages' work done ahead
 * (smtp_batch.c; lconn's ahead hook, impl an sj). */
void mwi_sjb_ahead(void *impl);
/* 1 once the job is ending (mw_loop_smtp_alive). */
int mwi_sjb_ending(const sj *p);
/* A held batch (loop_int.h, mwi_loop_smtp_hold): next's 0 means "none
 * yet" and the session waits in S_HELD; push asks next again, release
 * sends QUIT.  0, or MW_ESTATE (not held, or not waiting). */
int mwi_sjb_hold(sj *p);
int mwi_sjb_push(sj *p);
int mwi_sjb_release(sj *p);
/* Whether the next envelope may go behind the data (RFC 2920 §3.1). */
void mwi_sjb_message_pipelining(sj *p, int on);
/* 1: the next message is asked for (and prepared) while a final reply is
 * awaited even when not crossed, as mw_smtp_send_batch promises (smtp.h);
 * a loop batch asks only for crossing (loop.h). */
void mwi_sjb_ask_ahead(sj *p, int on);

#endif
